// Session: the step split in two for gradient accumulation, and optimizer state for checkpoints.
#include "codegen/optimizer.h"
#include "gpu/transfer.h"
#include "meganeura/error.h"
#include "meganeura/trace.h"
#include "runtime/session_impl.h"

namespace meganeura {

namespace {

const char* const kScalarsName = "optimizer.scalars";

void require_optimizer(const Session::Impl& s, const char* what) {
  if (!s.training) throw Error(std::string(what) + ": an inference session has no backward pass; use build_session");
  if (!s.optimizer) throw Error(std::string(what) + ": no optimizer set; call set_optimizer first");
}

std::string state_name(const std::string& parameter, size_t k) { return parameter + (k == 0 ? ".m" : ".v"); }

}  // namespace

void Session::compute_gradients() {
  Impl& s = *impl_;
  require_optimizer(s, "compute_gradients");
  if (!s.gradients_only) {
    // The plan's kernels are forward + backward; the update is only in the whole-step recording.
    s.gradients_only = std::make_unique<gpu::Recording>(s.context, s.recording_options());
    for (size_t i = 0; i < s.plan.kernels.size(); ++i) {
      const compile::Kernel& kernel = s.plan.kernels[i];
      if (kernel.barrier_before) s.gradients_only->barrier();
      s.gradients_only->dispatch(*s.kernel_pipelines[i], *s.descriptor_sets[i], {}, kernel.workgroups, kernel.label);
    }
    s.gradients_only->finish();
  }
  {
    trace::Scope trace_scope("compute_gradients");
    s.gradients_only->run(1);
  }
  s.note_replay(*s.gradients_only, 1, "gradient passes (compute_gradients)");
}

void Session::set_gradient(const std::string& name, std::span<const float> data) {
  Impl& s = *impl_;
  require_optimizer(s, "set_gradient");
  auto it = s.gradient_nodes.find(name);
  if (it == s.gradient_nodes.end()) throw Error("set_gradient(\"" + name + "\"): not a trainable parameter");
  const Node& node = s.plan.graph.node(it->second);
  if (data.size() != static_cast<size_t>(num_elements(node.shape))) {
    throw Error("set_gradient(\"" + name + "\"): expected " + std::to_string(num_elements(node.shape)) +
                " floats for shape " + format_shape(node.shape) + ", got " + std::to_string(data.size()));
  }
  s.upload_node(it->second, std::as_bytes(data));
}

void Session::apply_update() {
  Impl& s = *impl_;
  require_optimizer(s, "apply_update");
  if (!s.update_only) {
    s.update_only = std::make_unique<gpu::Recording>(s.context, s.recording_options());
    for (const Impl::Dispatch& d : s.optimizer_dispatches) {
      if (d.barrier_before) s.update_only->barrier();
      s.update_only->dispatch(*d.pipeline, *d.set, std::as_bytes(std::span(d.push)), d.groups, d.label);
    }
    s.update_only->finish();
  }
  {
    trace::Scope trace_scope("apply_update");
    s.update_only->run(1);
  }
  s.note_parameters_changed();  // sessions that borrow these parameters refresh their derived copies
  s.note_replay(*s.update_only, 1, "updates (apply_update)");
}

std::map<std::string, std::vector<float>> Session::read_optimizer_state() const {
  const Impl& s = *impl_;
  require_optimizer(s, "read_optimizer_state");
  std::map<std::string, std::vector<float>> state;
  std::vector<float> scalars(codegen::hyper_count);
  gpu::download(*s.hyper, 0, std::as_writable_bytes(std::span(scalars)));
  state[kScalarsName] = std::move(scalars);
  for (const auto& [name, buffers] : s.optimizer_state) {
    for (size_t k = 0; k < buffers.size(); ++k) {
      std::vector<float> values(buffers[k]->size() / 4);
      gpu::download(*buffers[k], 0, std::as_writable_bytes(std::span(values)));
      state[state_name(name, k)] = std::move(values);
    }
  }
  return state;
}

void Session::write_optimizer_state(const std::map<std::string, std::vector<float>>& state) {
  Impl& s = *impl_;
  require_optimizer(s, "write_optimizer_state");
  // Check everything before writing anything, so a bad checkpoint leaves the session untouched.
  auto find = [&](const std::string& name, size_t count) -> const std::vector<float>& {
    auto it = state.find(name);
    if (it == state.end()) {
      throw Error("write_optimizer_state: no \"" + name +
                  "\"; was the state saved with a different optimizer or model?");
    }
    if (it->second.size() != count) {
      throw Error("write_optimizer_state: \"" + name + "\" has " + std::to_string(it->second.size()) +
                  " values, the session expects " + std::to_string(count));
    }
    return it->second;
  };
  const std::vector<float>& saved = find(kScalarsName, codegen::hyper_count);
  for (const auto& [name, buffers] : s.optimizer_state) {
    for (size_t k = 0; k < buffers.size(); ++k) find(state_name(name, k), buffers[k]->size() / 4);
  }
  // Only the counters come from the checkpoint; hyperparameters stay those of the current spec.
  std::vector<float> scalars(codegen::hyper_count);
  gpu::download(*s.hyper, 0, std::as_writable_bytes(std::span(scalars)));
  for (codegen::Hyper index : {codegen::hyper_step, codegen::hyper_beta1_power, codegen::hyper_beta2_power}) {
    scalars[index] = saved[index];
  }
  gpu::upload(*s.hyper, 0, std::as_bytes(std::span(scalars)));
  for (const auto& [name, buffers] : s.optimizer_state) {
    for (size_t k = 0; k < buffers.size(); ++k) {
      gpu::upload(*buffers[k], 0, std::as_bytes(std::span(find(state_name(name, k), buffers[k]->size() / 4))));
    }
  }
}

}  // namespace meganeura
