// Session internals: the compiled plan, its GPU buffers, pipelines and the recorded step. Tests use
// build_session_for_caps to run under hand-made DeviceCaps and reach the plan and buffers.
//
//   compile::DeviceCaps caps = gpu::Context::shared()->caps();
//   caps.subgroup_size = 64;
//   Session s = runtime::build_session_for_caps(graph, {}, caps, /*training=*/false);
//   const compile::Plan& plan = s.impl().plan;
#pragma once

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "compile/plan.h"
#include "gpu/buffer.h"
#include "gpu/context.h"
#include "gpu/pipeline.h"
#include "gpu/recording.h"
#include "meganeura/session.h"
#include "runtime/kernel_profile.h"

namespace meganeura {

struct Session::Impl {
  std::shared_ptr<gpu::Context> context;
  compile::DeviceCaps caps;
  compile::Plan plan;
  bool training = false;
  SessionOptions options;

  // One per plan buffer; parameters may be shared with another session.
  std::vector<std::shared_ptr<gpu::Buffer>> buffers;
  std::vector<bool> borrowed;  // parameter and derived-weight buffers that belong to another session

  // Pipelines by generated source (identical kernels share one).
  std::map<std::string, std::unique_ptr<gpu::Pipeline>> pipelines;
  std::vector<gpu::Pipeline*> kernel_pipelines;  // per plan kernel
  std::vector<std::unique_ptr<gpu::DescriptorSet>> descriptor_sets;
  ShaderBuildStats build_stats;

  // Training: graph outputs of user-visible results (same order as the user's graph), gradients.
  std::vector<int32_t> user_outputs;             // ids in plan.graph
  std::map<std::string, int32_t> gradient_nodes;  // parameter name → id in plan.graph
  std::vector<std::string> trainable;             // parameter names updated by the optimizer

  // Optimizer.
  std::optional<OptimizerSpec> optimizer;
  std::unique_ptr<gpu::Buffer> hyper;
  std::unique_ptr<gpu::Buffer> clip_partials;
  std::map<std::string, std::vector<std::unique_ptr<gpu::Buffer>>> optimizer_state;  // by parameter
  struct Dispatch {
    gpu::Pipeline* pipeline = nullptr;
    gpu::DescriptorSet* set = nullptr;
    std::vector<uint32_t> push;
    std::array<uint32_t, 3> groups{1, 1, 1};
    std::string label;
    bool barrier_before = false;
    bool at_step_start = false;  // recorded before the first kernel (the step counter: nothing there reads it)
    bool fused_into_step = false;  // the whole step runs it inside the gradient's kernel (see fused_kernels)
    int after_kernel = -1;  // >= 0: the whole step records it right after this plan kernel (early_update_kernel)
  };
  std::vector<Dispatch> optimizer_dispatches;
  std::vector<std::unique_ptr<gpu::DescriptorSet>> optimizer_sets;
  // Plan kernels that, in the whole step, also update a parameter (runtime/fused_update.h): the
  // variant's pipeline and bindings by kernel index. compute_gradients keeps the plain kernels.
  struct FusedKernel {
    gpu::Pipeline* pipeline = nullptr;
    std::unique_ptr<gpu::DescriptorSet> set;
    std::string label;
  };
  std::map<size_t, FusedKernel> fused_kernels;

  // Inference: the plan's refresh kernels (derived copies such as stacked weights), replayed before
  // a step when the parameters changed since the last refresh. The generation counts parameter
  // changes; sessions that share parameters share it, so one session's upload refreshes the other.
  std::unique_ptr<gpu::Recording> refresh;
  std::shared_ptr<uint64_t> parameter_generation = std::make_shared<uint64_t>(1);
  uint64_t refreshed_generation = 0;
  void note_parameters_changed() { ++*parameter_generation; }
  void refresh_derived();

  std::unique_ptr<gpu::Recording> recording;       // the whole step
  std::unique_ptr<gpu::Recording> forward_only;    // training sessions: run() without backward/update
  std::unique_ptr<gpu::Recording> gradients_only;  // compute_gradients(): built on first use
  std::unique_ptr<gpu::Recording> update_only;     // apply_update(): built on first use
  bool forward_recorded_with_timestamps = false;
  // MEGANEURA_PROFILE=1: kernel times of every replay, by kind of replay ("training steps").
  std::map<std::string, runtime::KernelProfile> kernel_profiles;

  // Timestamps when asked for, or while tracing or profiling; otherwise none are recorded.
  gpu::RecordingOptions recording_options() const;
  // After a replay of `used`: adds its kernel times to kernel_profile (MEGANEURA_PROFILE=1).
  void note_replay(const gpu::Recording& used, uint32_t replays, const std::string& kind);

  gpu::Pipeline& pipeline_for(const std::string& source, uint32_t bindings, uint32_t push_bytes,
                              const std::string& label);
  // Compiles the sources not seen yet on several threads (build time is mostly shaderc); pipeline_for
  // then takes the SPIR-V from here.
  void precompile(const std::vector<std::string>& sources);
  std::map<std::string, std::vector<uint32_t>> spirv_by_source;
  void record();
  const gpu::Buffer& buffer_of(int32_t node) const;
  int32_t parameter_node(const std::string& name, const char* what) const;
  void upload_node(int32_t node, std::span<const std::byte> bytes);
  std::vector<float> download_node(int32_t node) const;
};

namespace runtime {

Session build_session_for_caps(const Graph& graph, const SessionOptions& options, const compile::DeviceCaps& caps,
                               bool training);

}  // namespace runtime
}  // namespace meganeura
