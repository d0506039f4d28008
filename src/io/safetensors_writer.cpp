// Writing SafeTensors files.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <unistd.h>

#include "meganeura/error.h"
#include "meganeura/safetensors.h"

namespace meganeura {

TensorToSave tensor_view(std::string name, std::vector<int64_t> shape, std::span<const float> data) {
  return {std::move(name), SafeTensorsDType::F32, std::move(shape), std::as_bytes(data)};
}

TensorToSave tensor_view(std::string name, std::vector<int64_t> shape, std::span<const int32_t> data) {
  return {std::move(name), SafeTensorsDType::I32, std::move(shape), std::as_bytes(data)};
}

void save_safetensors(const std::string& path, const std::vector<TensorToSave>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorToSave*> order;
  for (const auto& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) { return a->name < b->name; });

  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const TensorToSave& t = *order[i];
    if (t.name.empty() || t.name == "__metadata__")
      throw Error("save_safetensors(" + path + "): invalid tensor name '" + t.name + "'");
    if (i > 0 && order[i - 1]->name == t.name)
      throw Error("save_safetensors(" + path + "): tensor '" + t.name + "' is given twice");
    uint64_t bytes = dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      if (d < 0) throw Error("save_safetensors(" + path + "): tensor '" + t.name + "' has negative shape " + format_shape(t.shape));
      bytes *= static_cast<uint64_t>(d);
    }
    if (bytes != t.bytes.size())
      throw Error("save_safetensors(" + path + "): tensor '" + t.name + "' of " + std::string(dtype_name(t.dtype)) +
                  " shape " + format_shape(t.shape) + " needs " + std::to_string(bytes) + " bytes, got " +
                  std::to_string(t.bytes.size()));
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned
  const uint64_t length = text.size();

  // Write beside the target and rename, so a reader never sees half a file.
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("save_safetensors: cannot create " + temporary + " (" + std::strerror(errno) + ")");
    out.write(reinterpret_cast<const char*>(&length), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto* t : order)
      out.write(reinterpret_cast<const char*>(t->bytes.data()), static_cast<std::streamsize>(t->bytes.size()));
    out.flush();
    if (!out) {
      std::remove(temporary.c_str());
      throw Error("save_safetensors: writing " + temporary + " failed (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  if (ec) {
    std::remove(temporary.c_str());
    throw Error("save_safetensors: cannot move " + temporary + " to " + path + " (" + ec.message() + ")");
  }
}

}  // namespace meganeura
