// meganeura/safetensors.h — read and write SafeTensors checkpoints (the Hugging Face weight format).
//
//   auto file = meganeura::SafeTensorsFile::open("model.safetensors");   // memory-mapped, validated
//   for (const auto& t : file.tensors())
//     std::cout << t.name << " " << meganeura::dtype_name(t.dtype) << meganeura::format_shape(t.shape) << "\n";
//   std::vector<float> w = file.to_f32("model.norm.weight");            // F32, F16 or BF16 → f32
//
//   std::vector<float> six(6, 0.5f);
//   meganeura::save_safetensors("out.safetensors", {meganeura::tensor_view("w", {2, 3}, six)},
//                               {{"format", "pt"}});
//
//   // A whole checkpoint (one file or shards listed by model.safetensors.index.json) mapped onto
//   // the parameters a model expects, [out, in] linear weights transposed to [in, out]:
//   auto model = meganeura::SafeTensorsModel::open("path/to/checkpoint_dir");
//   meganeura::WeightMapping mapping;
//   mapping.rename = {{"model.", ""}};
//   mapping.transpose = {"*_proj.weight"};
//   auto params = model.load({{"norm.weight", {64}}, {"layers.0.mlp.up_proj.weight", {64, 128}}}, mapping);
//
// Every malformed file is rejected with a meganeura::Error naming the file and the problem.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meganeura {

// The element types SafeTensors defines (names as in the file: "F32", "BF16", "BOOL", ...).
enum class SafeTensorsDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool };

std::string_view dtype_name(SafeTensorsDType dtype);
size_t dtype_size(SafeTensorsDType dtype);
// Throws Error for a name that is not one of the ten above.
SafeTensorsDType safetensors_dtype_from_name(std::string_view name);

// Exact widening conversions and round-to-nearest-even narrowing ones (NaN stays NaN).
float f16_to_f32(uint16_t bits);
float bf16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float value);
uint16_t f32_to_bf16(float value);

// One tensor of an open file. `bytes` points into the file's memory map and stays valid as long as
// any copy of the SafeTensorsFile (or model) it came from is alive.
struct TensorInfo {
  std::string name;
  SafeTensorsDType dtype = SafeTensorsDType::F32;
  std::vector<int64_t> shape;  // [] is a scalar
  std::span<const std::byte> bytes;

  int64_t element_count() const;
};

// Converts a tensor's raw little-endian bytes. to_f32 accepts F64, F32, F16, BF16 and integer types
// whose values are exactly representable; to_i32 accepts integer and BOOL tensors whose values fit.
std::vector<float> tensor_to_f32(const TensorInfo& tensor);
std::vector<int32_t> tensor_to_i32(const TensorInfo& tensor);

class SafeTensorsFile {
 public:
  // Memory-maps and validates the whole header; throws Error naming `path` on any problem.
  static SafeTensorsFile open(const std::string& path);
  // Validates an in-memory image (copied); `label` names it in error messages.
  static SafeTensorsFile from_bytes(std::span<const std::byte> bytes, const std::string& label);

  const std::string& path() const;
  // In data order (ascending offsets).
  const std::vector<TensorInfo>& tensors() const;
  bool contains(std::string_view name) const;
  // Throws Error naming the file and the missing tensor.
  const TensorInfo& tensor(std::string_view name) const;
  // The `__metadata__` map (empty when absent).
  const std::map<std::string, std::string>& metadata() const;

  std::vector<float> to_f32(std::string_view name) const;
  std::vector<int32_t> to_i32(std::string_view name) const;

 private:
  struct Impl;
  explicit SafeTensorsFile(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

// A tensor to write: name, dtype, shape and its raw little-endian bytes (not owned).
struct TensorToSave {
  std::string name;
  SafeTensorsDType dtype = SafeTensorsDType::F32;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;
};
TensorToSave tensor_view(std::string name, std::vector<int64_t> shape, std::span<const float> data);
TensorToSave tensor_view(std::string name, std::vector<int64_t> shape, std::span<const int32_t> data);

// Writes a SafeTensors file (header padded to 8 bytes, tensors sorted by name) through a temporary
// file renamed into place. Throws Error for duplicate names or byte counts that do not match.
void save_safetensors(const std::string& path, const std::vector<TensorToSave>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Tensors spread over several files, listed by `model.safetensors.index.json`
// ({"metadata": {...}, "weight_map": {"tensor name": "shard file name"}}). Opening a plain
// .safetensors file gives a collection of one shard.
class ShardedSafeTensors {
 public:
  static ShardedSafeTensors open(const std::string& path);

  // Sorted by name.
  std::vector<std::string> names() const;
  bool contains(std::string_view name) const;
  const TensorInfo& tensor(std::string_view name) const;
  std::vector<float> to_f32(std::string_view name) const;
  std::vector<int32_t> to_i32(std::string_view name) const;
  // The index's "metadata" (numbers written as decimal text), or the single file's __metadata__.
  const std::map<std::string, std::string>& metadata() const;
  const std::vector<SafeTensorsFile>& shards() const;

 private:
  struct Impl;
  explicit ShardedSafeTensors(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

// A parameter a model expects: its name and shape (f32).
struct ParameterSpec {
  std::string name;
  std::vector<int64_t> shape;
};

class Graph;
// The name and shape of every parameter of a graph (meganeura/graph.h), in creation order.
std::vector<ParameterSpec> parameter_specs(const Graph& graph);

// How checkpoint tensors become parameters.
struct WeightMapping {
  // Applied in order to each checkpoint name: every occurrence of `first` becomes `second`.
  std::vector<std::pair<std::string, std::string>> rename;
  // Explicit sources, parameter name → checkpoint tensor name (e.g. a tied lm_head); they take
  // precedence over `rename`, and a checkpoint tensor may feed several parameters this way.
  std::map<std::string, std::string> sources;
  // Glob patterns (fnmatch) over parameter names: the stored 2-D tensor is [out, in] and the
  // parameter is [in, out].
  std::vector<std::string> transpose;
  // Glob patterns over checkpoint names that may be left unused without error.
  std::vector<std::string> ignore;
};

// A checkpoint directory (or file) as Hugging Face publishes it.
class SafeTensorsModel {
 public:
  // `path` is a directory holding model.safetensors.index.json or model.safetensors, or one of
  // those files itself.
  static SafeTensorsModel open(const std::string& path);
  // Downloads config, tokenizer and weight files of a Hub repository into the Hugging Face cache
  // and opens the snapshot. Defined in the meganeura_http library (link meganeura::meganeura_http).
  static SafeTensorsModel download(const std::string& repo_id, const std::string& revision = "main");

  // The folder holding the checkpoint (config.json and tokenizer files sit beside the weights).
  const std::string& directory() const;
  const ShardedSafeTensors& tensors() const;

  // Reads every expected parameter as f32 in its expected shape. Throws one Error listing all
  // missing, unexpected and shape-mismatched tensors together.
  std::map<std::string, std::vector<float>> load(const std::vector<ParameterSpec>& expected,
                                                 const WeightMapping& mapping = {}) const;
  // The same for every parameter of a graph: load(graph, mapping) == load(parameter_specs(graph), mapping).
  std::map<std::string, std::vector<float>> load(const Graph& graph, const WeightMapping& mapping = {}) const;

 private:
  SafeTensorsModel(std::string directory, ShardedSafeTensors tensors);
  std::string directory_;
  ShardedSafeTensors tensors_;
};

// The same mapping over any tensor collection (used by SafeTensorsModel::load).
std::map<std::string, std::vector<float>> load_parameters(const ShardedSafeTensors& tensors,
                                                          const std::vector<ParameterSpec>& expected,
                                                          const WeightMapping& mapping = {});

}  // namespace meganeura
