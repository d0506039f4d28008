// ShardedSafeTensors: one tensor namespace over the shards that model.safetensors.index.json lists.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "meganeura/error.h"
#include "meganeura/safetensors.h"

namespace meganeura {

struct ShardedSafeTensors::Impl {
  std::string path;
  std::vector<SafeTensorsFile> shards;
  std::map<std::string, const TensorInfo*, std::less<>> tensors;
  std::map<std::string, std::string> metadata;
};

namespace {

namespace fs = std::filesystem;

// Shard names come from a downloaded file: only plain relative paths that stay in the folder.
void check_shard_name(const std::string& index_path, const std::string& shard) {
  const fs::path p(shard);
  bool escapes = shard.empty() || p.is_absolute() || shard.find('\0') != std::string::npos;
  for (const auto& part : p)
    if (part == "..") escapes = true;
  if (escapes) throw Error(index_path + ": shard file name '" + shard + "' is not a file inside the checkpoint folder");
}

nlohmann::json read_index(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the shard index");
  std::stringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": shard index is not valid JSON (" + e.what() + ")");
  }
}

}  // namespace

ShardedSafeTensors::ShardedSafeTensors(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

ShardedSafeTensors ShardedSafeTensors::open(const std::string& path) {
  auto impl = std::make_shared<Impl>();
  impl->path = path;
  if (!path.ends_with(".json")) {
    impl->shards.push_back(SafeTensorsFile::open(path));
    for (const auto& t : impl->shards.back().tensors()) impl->tensors.emplace(t.name, &t);
    impl->metadata = impl->shards.back().metadata();
    return ShardedSafeTensors(std::move(impl));
  }

  const nlohmann::json index = read_index(path);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw Error(path + ": shard index needs a \"weight_map\" object mapping tensor names to shard files");
  if (index.contains("metadata")) {
    const auto& metadata = index["metadata"];
    if (!metadata.is_object()) throw Error(path + ": \"metadata\" of the shard index must be an object");
    for (const auto& [key, value] : metadata.items())
      impl->metadata[key] = value.is_string() ? value.get<std::string>() : value.dump();
  }

  const fs::path folder = fs::path(path).parent_path();
  std::map<std::string, size_t> shard_index;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) throw Error(path + ": weight_map entry '" + name + "' must name a shard file");
    const std::string file = shard.get<std::string>();
    check_shard_name(path, file);
    if (!shard_index.count(file)) {
      shard_index[file] = impl->shards.size();
      impl->shards.push_back(SafeTensorsFile::open((folder / file).string()));
    }
    const SafeTensorsFile& opened = impl->shards[shard_index[file]];
    if (!opened.contains(name))
      throw Error(path + ": the index places '" + name + "' in " + file + ", which has no such tensor");
    impl->tensors.emplace(name, &opened.tensor(name));
  }
  for (const auto& shard : impl->shards)
    for (const auto& t : shard.tensors()) {
      const auto it = impl->tensors.find(t.name);
      if (it == impl->tensors.end() || it->second != &t)
        throw Error(path + ": " + shard.path() + " holds '" + t.name + "', which the index does not assign to it");
    }
  return ShardedSafeTensors(std::move(impl));
}

std::vector<std::string> ShardedSafeTensors::names() const {
  std::vector<std::string> names;
  for (const auto& [name, _] : impl_->tensors) names.push_back(name);
  return names;
}

bool ShardedSafeTensors::contains(std::string_view name) const { return impl_->tensors.find(name) != impl_->tensors.end(); }

const TensorInfo& ShardedSafeTensors::tensor(std::string_view name) const {
  const auto it = impl_->tensors.find(name);
  if (it == impl_->tensors.end())
    throw Error(impl_->path + ": no tensor named '" + std::string(name) + "' in any of " +
                std::to_string(impl_->shards.size()) + " shard(s)");
  return *it->second;
}

std::vector<float> ShardedSafeTensors::to_f32(std::string_view name) const {
  try {
    return tensor_to_f32(tensor(name));
  } catch (const Error& e) {
    if (std::string_view(e.what()).starts_with(impl_->path)) throw;
    throw Error(impl_->path + ": " + e.what());
  }
}

std::vector<int32_t> ShardedSafeTensors::to_i32(std::string_view name) const {
  try {
    return tensor_to_i32(tensor(name));
  } catch (const Error& e) {
    if (std::string_view(e.what()).starts_with(impl_->path)) throw;
    throw Error(impl_->path + ": " + e.what());
  }
}

const std::map<std::string, std::string>& ShardedSafeTensors::metadata() const { return impl_->metadata; }
const std::vector<SafeTensorsFile>& ShardedSafeTensors::shards() const { return impl_->shards; }

}  // namespace meganeura
