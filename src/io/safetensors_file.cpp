// SafeTensorsFile: a validated view over a memory-mapped (or in-memory) SafeTensors image.
#include <algorithm>
#include <variant>

#include "io/mapped_file.h"
#include "io/safetensors_header.h"
#include "meganeura/error.h"
#include "meganeura/safetensors.h"

namespace meganeura {

struct SafeTensorsFile::Impl {
  std::string path;
  std::variant<std::unique_ptr<io::MappedFile>, std::vector<std::byte>> storage;
  std::vector<TensorInfo> tensors;          // data order
  std::vector<size_t> by_name;              // indices into tensors, sorted by name
  std::map<std::string, std::string> metadata;

  std::span<const std::byte> bytes() const {
    if (const auto* mapped = std::get_if<0>(&storage)) return (*mapped)->bytes();
    const auto& owned = std::get<1>(storage);
    return {owned.data(), owned.size()};
  }

  void index() {
    const io::ParsedHeader header = io::parse_safetensors(bytes(), path);
    const std::byte* data = bytes().data() + header.data_offset;
    tensors.reserve(header.tensors.size());
    for (const auto& entry : header.tensors)
      tensors.push_back({entry.name, entry.dtype, entry.shape,
                         std::span<const std::byte>(data + entry.begin, entry.end - entry.begin)});
    metadata = header.metadata;
    by_name.resize(tensors.size());
    for (size_t i = 0; i < by_name.size(); ++i) by_name[i] = i;
    std::sort(by_name.begin(), by_name.end(), [&](size_t a, size_t b) { return tensors[a].name < tensors[b].name; });
  }

  const TensorInfo* find(std::string_view name) const {
    auto it = std::lower_bound(by_name.begin(), by_name.end(), name,
                               [&](size_t i, std::string_view n) { return tensors[i].name < n; });
    if (it == by_name.end() || tensors[*it].name != name) return nullptr;
    return &tensors[*it];
  }
};

SafeTensorsFile::SafeTensorsFile(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

SafeTensorsFile SafeTensorsFile::open(const std::string& path) {
  auto impl = std::make_shared<Impl>();
  impl->path = path;
  impl->storage = std::make_unique<io::MappedFile>(path);
  impl->index();
  return SafeTensorsFile(std::move(impl));
}

SafeTensorsFile SafeTensorsFile::from_bytes(std::span<const std::byte> bytes, const std::string& label) {
  auto impl = std::make_shared<Impl>();
  impl->path = label;
  impl->storage = std::vector<std::byte>(bytes.begin(), bytes.end());
  impl->index();
  return SafeTensorsFile(std::move(impl));
}

const std::string& SafeTensorsFile::path() const { return impl_->path; }
const std::vector<TensorInfo>& SafeTensorsFile::tensors() const { return impl_->tensors; }
const std::map<std::string, std::string>& SafeTensorsFile::metadata() const { return impl_->metadata; }
bool SafeTensorsFile::contains(std::string_view name) const { return impl_->find(name) != nullptr; }

const TensorInfo& SafeTensorsFile::tensor(std::string_view name) const {
  if (const TensorInfo* found = impl_->find(name)) return *found;
  throw Error(impl_->path + ": no tensor named '" + std::string(name) + "' (the file holds " +
              std::to_string(impl_->tensors.size()) + " tensors; `meganeura inspect` lists them)");
}

std::vector<float> SafeTensorsFile::to_f32(std::string_view name) const {
  try {
    return tensor_to_f32(tensor(name));
  } catch (const Error& e) {
    if (std::string_view(e.what()).starts_with(impl_->path)) throw;
    throw Error(impl_->path + ": " + e.what());
  }
}

std::vector<int32_t> SafeTensorsFile::to_i32(std::string_view name) const {
  try {
    return tensor_to_i32(tensor(name));
  } catch (const Error& e) {
    if (std::string_view(e.what()).starts_with(impl_->path)) throw;
    throw Error(impl_->path + ": " + e.what());
  }
}

}  // namespace meganeura
