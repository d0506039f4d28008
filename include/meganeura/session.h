// meganeura/session.h — run a graph on the GPU: the whole step recorded once, replayed per call.
//
//   meganeura::Graph g;
//   auto x = g.input("x", {32, 784});
//   auto labels = g.input("labels", {32}, meganeura::DType::i32);
//   auto w = g.parameter("fc.weight", {10, 784}, meganeura::Init::kaiming());
//   auto b = g.parameter("fc.bias", {10});
//   g.set_outputs({g.cross_entropy_loss(g.matmul(x, w, false, true) + b, labels)});
//
//   meganeura::Session session = meganeura::build_session(g, {.seed = 7});
//   session.set_optimizer(meganeura::OptimizerSpec::adamw(1e-3, 0.01));
//   session.set_input("x", images);        // 25088 floats, else an Error naming the shape
//   session.set_input("labels", classes);  // 32 ints
//   session.step();                        // forward, backward, update: one submission
//   float loss = session.read_loss();
//
// build_session: optimize(forward) → differentiate → optimize(whole) → compile → codegen →
// pipelines → one recorded command buffer. The optimizer update is a set of runtime kernels
// appended to the step (not graph ops); the learning rate lives in a small GPU buffer, so
// set_learning_rate never re-records. Errors are meganeura::Error with the name, the expected
// shape and what was given.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "meganeura/graph.h"

namespace meganeura {

struct OptimizerSpec {
  enum class Kind : uint8_t { sgd, adam, adamw };
  Kind kind = Kind::sgd;
  double learning_rate = 0.01;
  double momentum = 0.0;      // sgd
  double beta1 = 0.9;         // adam, adamw
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // sgd, adam: added to the gradient (L2); adamw: decoupled
  double clip_global_norm = 0.0;  // > 0: gradients scaled so their global L2 norm is at most this

  static OptimizerSpec sgd(double lr, double momentum = 0.0) {
    OptimizerSpec spec;
    spec.learning_rate = lr;
    spec.momentum = momentum;
    return spec;
  }
  static OptimizerSpec adam(double lr, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8) {
    OptimizerSpec spec;
    spec.kind = Kind::adam;
    spec.learning_rate = lr;
    spec.beta1 = beta1;
    spec.beta2 = beta2;
    spec.eps = eps;
    return spec;
  }
  static OptimizerSpec adamw(double lr, double weight_decay = 0.01, double beta1 = 0.9, double beta2 = 0.999,
                             double eps = 1e-8) {
    OptimizerSpec spec = adam(lr, beta1, beta2, eps);
    spec.kind = Kind::adamw;
    spec.weight_decay = weight_decay;
    return spec;
  }
};

class Session;

struct SessionOptions {
  uint64_t seed = 0;            // parameters start at initial_values(init, shape, parameter_seed(seed, name))
  bool optimize = true;         // run the e-graph optimizer (fusions) before compiling
  bool fuse = true;             // group nodes into fused kernels (false: one kernel per node)
  std::optional<OptimizerSpec> optimizer = std::nullopt;  // training sessions: the update recorded from the start
  // Use this session's parameter buffers for parameters of the same name and shape (a decode session
  // over the weights of a prefill session). The other session must outlive this one's use of them.
  const Session* share_parameters_with = nullptr;
  bool timestamps = false;      // record GPU timestamps around every dispatch (profile() needs them)
  // Inference only: f16 or bf16 stores the weights that matmuls and embeddings read as 16-bit values
  // (half the bytes a decode step reads), widened to f32 in the kernels. set_parameter rounds to
  // them; read_parameter returns them as f32. f32, the default, is the parity reference.
  DType weight_storage = DType::f32;
};

struct MemorySummary {
  uint64_t parameters = 0;       // bytes of parameter buffers this session owns
  uint64_t shared_parameters = 0;  // bytes of parameter buffers borrowed from another session
  uint64_t derived = 0;          // weights derived from parameters (stacked for one wider product), own
  uint64_t gradients = 0;
  uint64_t optimizer_state = 0;
  uint64_t inputs = 0;
  uint64_t outputs = 0;          // graph outputs other than gradients
  uint64_t state = 0;            // persistent state updated in place (KV caches, kernels' counters)
  uint64_t arena = 0;            // intermediates, shared by liveness
  uint64_t arena_unshared = 0;   // what intermediates would take without sharing
  uint64_t total() const { return parameters + derived + gradients + optimizer_state + inputs + outputs + state + arena; }
  std::string to_string() const;
};

struct KernelTime {
  std::string label = {};
  double microseconds = 0;
};

struct ShaderBuildStats {
  uint64_t kernels = 0;          // dispatches per step
  uint64_t unique_shaders = 0;   // distinct generated sources (identical layers share one)
  uint64_t cache_hits = 0;       // SPIR-V served from the disk cache during this build
  uint64_t compiled = 0;         // shaders compiled by shaderc during this build
};

class Session {
 public:
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;
  ~Session();

  bool is_training() const;

  // Inputs take f32 data, or i32 data for i32 inputs; the count must match the shape exactly.
  void set_input(const std::string& name, std::span<const float> data);
  void set_input(const std::string& name, std::span<const int32_t> data);
  void set_parameter(const std::string& name, std::span<const float> data);
  // f16 or bf16 bit patterns, widened to f32 on upload.
  void set_parameter(const std::string& name, std::span<const uint16_t> bits, DType dtype);

  // Training only. Records the update into the step (one re-record); state starts at zero.
  void set_optimizer(const OptimizerSpec& spec);
  // Takes effect at the next step without re-recording.
  void set_learning_rate(double learning_rate);

  // Gradient accumulation: compute_gradients() runs forward + backward without the update (the
  // gradients stay readable with read_gradient), set_gradient() overwrites one, apply_update() runs
  // only the optimizer (clipping included) on the gradients as they stand.
  void compute_gradients();
  void set_gradient(const std::string& name, std::span<const float> data);
  void apply_update();

  // Optimizer state for checkpoints, by name: "<parameter>.m" and "<parameter>.v" (moments; SGD with
  // momentum has only .m) and "optimizer.scalars" (step count, beta powers). Writing it back after
  // set_optimizer with the same spec continues the updates exactly; the learning rate is kept.
  std::map<std::string, std::vector<float>> read_optimizer_state() const;
  void write_optimizer_state(const std::map<std::string, std::vector<float>>& state);

  void step();                 // forward + backward + update (training), one submission
  void step_n(uint32_t steps); // `steps` replays in one submission (same inputs each time)
  void run();                  // forward only

  // Copies outputs of `source` (a session of this process's device that has run) into inputs of
  // this one on the GPU, all in one submission: a prefill session hands its KV caches to a decode
  // session without their values crossing to the host. Pairs are (source output index, input name);
  // shapes and dtypes must match.
  void set_inputs_from_outputs(const Session& source, const std::vector<std::pair<size_t, std::string>>& pairs);

  std::vector<float> read_output(const std::string& name) const;
  std::vector<float> read_output(size_t index) const;  // i32 outputs are converted to float
  std::vector<int32_t> read_output_i32(size_t index) const;
  float read_loss() const;  // the first output; Error unless it is a scalar
  std::vector<float> read_parameter(const std::string& name) const;
  std::vector<float> read_gradient(const std::string& name) const;  // training only

  void save_parameters(const std::string& path) const;  // safetensors, F32
  void load_parameters(const std::string& path);        // F32/F16/BF16; every parameter must be present

  std::vector<std::string> input_names() const;
  std::vector<std::string> parameter_names() const;
  MemorySummary memory_summary() const;
  ShaderBuildStats build_stats() const;
  size_t dispatch_count() const;
  size_t barrier_count() const;
  std::vector<std::string> kernel_labels() const;  // per dispatch: the fused nodes ("matmul+add+relu (fc1)")
  std::string plan_summary() const;                // one line per dispatch, barriers marked

  // Runs `steps` steps (or forward passes for inference sessions) with timestamps and returns the
  // per-dispatch times of the last one, in dispatch order. Needs device timestamps.
  std::vector<KernelTime> profile(uint32_t steps = 1);

  struct Impl;
  Impl& impl() { return *impl_; }
  const Impl& impl() const { return *impl_; }
  explicit Session(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

// Training session: the graph's first output is the loss.
Session build_session(const Graph& graph, const SessionOptions& options = {});
// Forward only (dropout is the identity).
Session build_inference_session(const Graph& graph, const SessionOptions& options = {});

}  // namespace meganeura
