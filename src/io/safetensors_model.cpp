// SafeTensorsModel: a checkpoint folder, and the mapping of its tensors onto a model's parameters.
#include <fnmatch.h>

#include <filesystem>
#include <set>

#include "meganeura/error.h"
#include "meganeura/safetensors.h"

namespace meganeura {
namespace {

namespace fs = std::filesystem;

bool matches_any(const std::vector<std::string>& patterns, const std::string& name) {
  for (const auto& pattern : patterns)
    if (::fnmatch(pattern.c_str(), name.c_str(), 0) == 0) return true;
  return false;
}

std::string renamed(std::string name, const WeightMapping& mapping) {
  for (const auto& [from, to] : mapping.rename) {
    if (from.empty()) continue;
    for (size_t at = name.find(from); at != std::string::npos; at = name.find(from, at + to.size()))
      name.replace(at, from.size(), to);
  }
  return name;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::vector<float> transposed(const std::vector<float>& data, int64_t rows, int64_t cols) {
  std::vector<float> out(data.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[c * rows + r] = data[r * cols + c];
  return out;
}

}  // namespace

std::map<std::string, std::vector<float>> load_parameters(const ShardedSafeTensors& tensors,
                                                          const std::vector<ParameterSpec>& expected,
                                                          const WeightMapping& mapping) {
  std::map<std::string, std::string> source_of;  // parameter → checkpoint tensor
  std::vector<std::string> problems_collision;
  for (const auto& name : tensors.names()) {
    const std::string parameter = renamed(name, mapping);
    const auto [it, inserted] = source_of.emplace(parameter, name);
    if (!inserted) problems_collision.push_back("'" + it->second + "' and '" + name + "' both become '" + parameter + "'");
  }
  for (const auto& [parameter, source] : mapping.sources) source_of[parameter] = source;

  std::vector<std::string> missing, mismatched, unreadable, unexpected;
  std::set<std::string> used;
  std::map<std::string, std::vector<float>> out;
  for (const auto& spec : expected) {
    const auto it = source_of.find(spec.name);
    if (it == source_of.end() || !tensors.contains(it->second)) {
      missing.push_back(spec.name + (it == source_of.end() ? "" : " (from '" + it->second + "')"));
      continue;
    }
    const std::string& source = it->second;
    used.insert(source);
    const TensorInfo& stored = tensors.tensor(source);
    const bool transpose = matches_any(mapping.transpose, spec.name);
    std::vector<int64_t> arriving = stored.shape;
    if (transpose && arriving.size() == 2) std::swap(arriving[0], arriving[1]);
    if ((transpose && stored.shape.size() != 2) || arriving != spec.shape) {
      mismatched.push_back(spec.name + " expects " + format_shape(spec.shape) + " but '" + source + "' is " +
                           format_shape(stored.shape) + (transpose ? " (before transposing [out, in] → [in, out])" : ""));
      continue;
    }
    try {
      std::vector<float> values = tensor_to_f32(stored);
      out[spec.name] = transpose ? transposed(values, stored.shape[0], stored.shape[1]) : std::move(values);
    } catch (const Error& e) {
      unreadable.push_back(e.what());
    }
  }
  for (const auto& name : tensors.names())
    if (!used.count(name) && !matches_any(mapping.ignore, name)) unexpected.push_back(name);

  if (problems_collision.empty() && missing.empty() && mismatched.empty() && unreadable.empty() && unexpected.empty())
    return out;
  std::string message = "checkpoint does not match the model's parameters:";
  auto section = [&](const char* title, const std::vector<std::string>& items) {
    if (!items.empty()) message += "\n  " + std::to_string(items.size()) + " " + title + ": " + join(items);
  };
  section("missing", missing);
  section("unexpected (add them to WeightMapping::ignore if intended)", unexpected);
  section("shape mismatch", mismatched);
  section("unreadable", unreadable);
  section("name collision after renaming", problems_collision);
  throw Error(message);
}

SafeTensorsModel::SafeTensorsModel(std::string directory, ShardedSafeTensors tensors)
    : directory_(std::move(directory)), tensors_(std::move(tensors)) {}

SafeTensorsModel SafeTensorsModel::open(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const char* candidate : {"model.safetensors.index.json", "model.safetensors"}) {
      const fs::path file = fs::path(path) / candidate;
      if (fs::exists(file, ec)) return SafeTensorsModel(path, ShardedSafeTensors::open(file.string()));
    }
    throw Error(path + ": no model.safetensors or model.safetensors.index.json in this folder");
  }
  if (!fs::exists(path, ec)) throw Error(path + ": no such checkpoint file or folder");
  std::string directory = fs::path(path).parent_path().string();
  return SafeTensorsModel(directory.empty() ? "." : directory, ShardedSafeTensors::open(path));
}

const std::string& SafeTensorsModel::directory() const { return directory_; }
const ShardedSafeTensors& SafeTensorsModel::tensors() const { return tensors_; }

std::map<std::string, std::vector<float>> SafeTensorsModel::load(const std::vector<ParameterSpec>& expected,
                                                                 const WeightMapping& mapping) const {
  try {
    return load_parameters(tensors_, expected, mapping);
  } catch (const Error& e) {
    throw Error(directory_ + ": " + e.what());
  }
}

}  // namespace meganeura
