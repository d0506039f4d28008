// Session: uploads, the recorded step, readback, optimizer and checkpoints.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>

#include "codegen/codegen.h"
#include "codegen/optimizer.h"
#include "compile/hazards.h"
#include "gpu/transfer.h"
#include "meganeura/error.h"
#include "meganeura/safetensors.h"
#include "meganeura/trace.h"
#include "runtime/fused_update.h"
#include "runtime/session_impl.h"
#include "runtime/weight_packing.h"

namespace meganeura {

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;
Session::~Session() {
  if (!impl_) return;  // moved from
  for (const auto& [kind, profile] : impl_->kernel_profiles) std::fputs(profile.table(kind).c_str(), stderr);
}

gpu::RecordingOptions Session::Impl::recording_options() const {
  return {.timestamps = options.timestamps || trace::enabled() || runtime::profile_requested()};
}

void Session::Impl::note_replay(const gpu::Recording& used, uint32_t replays, const std::string& kind) {
  if (!runtime::profile_requested()) return;
  kernel_profiles[kind].add(used.names(), used.labels(), used.dispatch_durations_ns(), replays);
}

namespace {

std::span<const std::byte> bytes_of(std::span<const uint32_t> words) { return std::as_bytes(words); }

// Kernels run in order; a barrier goes where one reads or overwrites what an earlier one wrote.
std::vector<bool> barriers_for(const compile::Plan& plan, const std::vector<size_t>& kernels) {
  std::vector<compile::KernelAccess> accesses;
  for (size_t index : kernels) {
    const compile::Kernel& kernel = plan.kernels[index];
    compile::KernelAccess access;
    for (size_t b = 0; b < kernel.bindings.size(); ++b) {
      const compile::Storage& s = kernel.bindings[b];
      (b >= kernel.inputs.size() ? access.writes : access.reads).push_back({s.buffer, s.offset, s.bytes});
    }
    accesses.push_back(std::move(access));
  }
  return compile::place_barriers(accesses);
}

std::string expected_message(const char* what, const std::string& name, const Node& node, size_t given,
                             const char* unit) {
  return std::string(what) + "(\"" + name + "\"): expected " + std::to_string(num_elements(node.shape)) + " " + unit +
         " for shape " + format_shape(node.shape) + ", got " + std::to_string(given);
}

}  // namespace

void Session::Impl::record() {
  // Whole step: every kernel, then (training with an optimizer) the update.
  trace::Scope trace_scope("record");
  recording = std::make_unique<gpu::Recording>(context, recording_options());
  const bool updates = training && optimizer;
  for (const Dispatch& d : optimizer_dispatches) {
    if (updates && d.at_step_start) recording->dispatch(*d.pipeline, *d.set, bytes_of(d.push), d.groups, d.label);
  }
  // Refresh kernels leave the step; both parts get their own barriers (a removed kernel's barrier
  // may have been the one a later kernel relied on).
  std::vector<size_t> per_step, refreshed;
  for (size_t i = 0; i < plan.kernels.size(); ++i) (plan.kernels[i].refresh ? refreshed : per_step).push_back(i);
  const std::vector<bool> step_barriers =
      refreshed.empty() ? std::vector<bool>() : barriers_for(plan, per_step);
  for (size_t j = 0; j < per_step.size(); ++j) {
    const size_t i = per_step[j];
    const compile::Kernel& kernel = plan.kernels[i];
    if (refreshed.empty() ? kernel.barrier_before : step_barriers[j]) recording->barrier();
    const auto fused = updates ? fused_kernels.find(i) : fused_kernels.end();
    if (fused != fused_kernels.end()) {
      recording->dispatch(*fused->second.pipeline, *fused->second.set, {}, kernel.workgroups, fused->second.label);
    } else {
      recording->dispatch(*kernel_pipelines[i], *descriptor_sets[i], {}, kernel.workgroups, kernel.label);
    }
    for (const Dispatch& d : optimizer_dispatches) {
      if (updates && d.after_kernel == static_cast<int>(i)) {
        recording->dispatch(*d.pipeline, *d.set, bytes_of(d.push), d.groups, d.label);
      }
    }
  }
  refresh.reset();
  if (!refreshed.empty()) {
    const std::vector<bool> barriers = barriers_for(plan, refreshed);
    refresh = std::make_unique<gpu::Recording>(context, gpu::RecordingOptions{});
    for (size_t j = 0; j < refreshed.size(); ++j) {
      const compile::Kernel& kernel = plan.kernels[refreshed[j]];
      if (barriers[j]) refresh->barrier();
      refresh->dispatch(*kernel_pipelines[refreshed[j]], *descriptor_sets[refreshed[j]], {}, kernel.workgroups,
                        kernel.label);
    }
    refresh->finish();
    refreshed_generation = 0;
  }
  if (updates) {
    // The first update recorded waits for the backward pass, whichever updates were folded away.
    bool first = true;
    for (const Dispatch& d : optimizer_dispatches) {
      if (d.at_step_start || d.fused_into_step || d.after_kernel >= 0) continue;
      if (d.barrier_before || first) recording->barrier();
      first = false;
      recording->dispatch(*d.pipeline, *d.set, bytes_of(d.push), d.groups, d.label);
    }
  }
  recording->finish();
  gradients_only.reset();
  update_only.reset();

  // Forward only (run() on a training session): the kernels the user's outputs need.
  forward_only.reset();
  if (training) {
    std::vector<bool> needed(plan.graph.size(), false);
    std::vector<int32_t> stack = user_outputs;
    while (!stack.empty()) {
      const int32_t id = stack.back();
      stack.pop_back();
      if (needed[id]) continue;
      needed[id] = true;
      for (int32_t input : plan.graph.node(id).inputs) stack.push_back(input);
    }
    std::vector<size_t> subset;
    // A kernel with extra outputs (a classifier head's logits) runs when any of its values is needed.
    for (size_t i = 0; i < plan.kernels.size(); ++i) {
      const compile::Kernel& kernel = plan.kernels[i];
      const bool extra = std::any_of(kernel.extra_outputs.begin(), kernel.extra_outputs.end(),
                                     [&](int32_t id) { return needed[id]; });
      if (needed[kernel.root] || extra) subset.push_back(i);
    }
    const std::vector<bool> barriers = barriers_for(plan, subset);
    forward_only = std::make_unique<gpu::Recording>(context, recording_options());
    for (size_t j = 0; j < subset.size(); ++j) {
      const compile::Kernel& kernel = plan.kernels[subset[j]];
      if (barriers[j]) forward_only->barrier();
      forward_only->dispatch(*kernel_pipelines[subset[j]], *descriptor_sets[subset[j]], {}, kernel.workgroups,
                             kernel.label);
    }
    forward_only->finish();
  }
}

void Session::Impl::refresh_derived() {
  if (!refresh || refreshed_generation == *parameter_generation) return;
  trace::Scope trace_scope("refresh derived weights");
  refresh->run(1);
  refreshed_generation = *parameter_generation;
}

int32_t Session::Impl::parameter_node(const std::string& name, const char* what) const {
  if (!plan.graph.contains(name) || plan.graph.node(plan.graph.find(name)).op != Op::parameter) {
    std::string known;
    for (int32_t id : plan.graph.parameters()) known += (known.empty() ? "" : ", ") + plan.graph.node(id).name;
    throw Error(std::string(what) + "(\"" + name + "\"): no parameter of that name; parameters: " + known);
  }
  return plan.graph.find(name);
}

void Session::Impl::upload_node(int32_t node, std::span<const std::byte> bytes) {
  const compile::Storage& s = plan.storage.at(node);
  if (plan.graph.node(node).op == Op::parameter) note_parameters_changed();
  if (s.element != compile::ElementStorage::bits32) {
    // Weights stored as 16-bit: the caller's f32 values are rounded to nearest even here.
    std::vector<float> values(bytes.size() / 4);
    std::memcpy(values.data(), bytes.data(), values.size() * 4);
    gpu::upload(*buffers.at(s.buffer), s.offset, runtime::pack_weights(values, s.element));
    return;
  }
  gpu::upload(*buffers.at(s.buffer), s.offset, bytes);
}

std::vector<float> Session::Impl::download_node(int32_t node) const {
  const Node& n = plan.graph.node(node);
  const compile::Storage& s = plan.storage.at(node);
  const size_t count = static_cast<size_t>(num_elements(n.shape));
  std::vector<float> values(count);
  if (s.bytes == 0 && count > 0) throw Error("read: the value of node " + std::to_string(node) + " is not kept");
  if (s.element != compile::ElementStorage::bits32) {
    std::vector<std::byte> packed(s.bytes);
    gpu::download(*buffers.at(s.buffer), s.offset, std::span(packed));
    return runtime::unpack_weights(packed, count, s.element);
  }
  gpu::download(*buffers.at(s.buffer), s.offset, std::as_writable_bytes(std::span(values)));
  if (n.dtype == DType::i32) {
    for (float& v : values) {
      int32_t i;
      std::memcpy(&i, &v, 4);
      v = static_cast<float>(i);
    }
  }
  return values;
}

bool Session::is_training() const { return impl_->training; }

void Session::set_input(const std::string& name, std::span<const float> data) {
  const Graph& g = impl_->plan.graph;
  if (!g.contains(name) || g.node(g.find(name)).op != Op::input) {
    std::string known;
    for (int32_t id : g.inputs()) known += (known.empty() ? "" : ", ") + g.node(id).name;
    throw Error("set_input(\"" + name + "\"): no input of that name; inputs: " + known);
  }
  const int32_t id = g.find(name);
  const Node& node = g.node(id);
  if (node.dtype == DType::i32) {
    throw Error("set_input(\"" + name + "\"): the input is i32 " + format_shape(node.shape) +
                "; pass int32_t data, not floats");
  }
  if (data.size() != static_cast<size_t>(num_elements(node.shape))) {
    throw Error(expected_message("set_input", name, node, data.size(), "floats"));
  }
  impl_->upload_node(id, std::as_bytes(data));
}

void Session::set_input(const std::string& name, std::span<const int32_t> data) {
  const Graph& g = impl_->plan.graph;
  if (!g.contains(name) || g.node(g.find(name)).op != Op::input) {
    throw Error("set_input(\"" + name + "\"): no input of that name");
  }
  const int32_t id = g.find(name);
  const Node& node = g.node(id);
  if (node.dtype != DType::i32) {
    throw Error("set_input(\"" + name + "\"): the input is " + dtype_name(node.dtype) + " " + format_shape(node.shape) +
                "; pass float data, not int32_t");
  }
  if (data.size() != static_cast<size_t>(num_elements(node.shape))) {
    throw Error(expected_message("set_input", name, node, data.size(), "ints"));
  }
  impl_->upload_node(id, std::as_bytes(data));
}

void Session::set_inputs_from_outputs(const Session& source,
                                      const std::vector<std::pair<size_t, std::string>>& pairs) {
  const Graph& g = impl_->plan.graph;
  const Session::Impl& from = source.impl();
  std::vector<gpu::BufferCopy> copies;
  for (const auto& [output, name] : pairs) {
    const std::string what = "set_inputs_from_outputs(output " + std::to_string(output) + " -> \"" + name + "\")";
    if (output >= from.user_outputs.size()) {
      throw Error(what + ": the source session has " + std::to_string(from.user_outputs.size()) + " outputs");
    }
    if (!g.contains(name) || g.node(g.find(name)).op != Op::input) throw Error(what + ": no input of that name");
    const int32_t out_node = from.user_outputs[output], in_node = g.find(name);
    const Node& out = from.plan.graph.node(out_node);
    const Node& in = g.node(in_node);
    if (out.shape != in.shape || out.dtype != in.dtype) {
      throw Error(what + ": the output is " + dtype_name(out.dtype) + " " + format_shape(out.shape) + ", the input " +
                  dtype_name(in.dtype) + " " + format_shape(in.shape) + "; they must match");
    }
    const compile::Storage& s = from.plan.storage.at(out_node);
    const compile::Storage& d = impl_->plan.storage.at(in_node);
    if (s.element != compile::ElementStorage::bits32 || d.element != compile::ElementStorage::bits32 || s.bytes != d.bytes) {
      throw Error(what + ": the values are stored differently on each side; copy them with read_output and set_input");
    }
    copies.push_back({{from.buffers.at(s.buffer).get(), s.offset, s.bytes}, {impl_->buffers.at(d.buffer).get(), d.offset, d.bytes}});
  }
  trace::Scope trace_scope("set_inputs_from_outputs", std::to_string(copies.size()) + " copies");
  if (from.context != impl_->context) {
    // Sessions of different contexts (devices): through the host.
    for (const gpu::BufferCopy& c : copies) {
      std::vector<std::byte> bytes(c.source.size);
      gpu::download(*c.source.buffer, c.source.offset, bytes);
      gpu::upload(*c.destination.buffer, c.destination.offset, bytes);
    }
    return;
  }
  gpu::copy(copies);
}

void Session::set_parameter(const std::string& name, std::span<const float> data) {
  const int32_t id = impl_->parameter_node(name, "set_parameter");
  const Node& node = impl_->plan.graph.node(id);
  if (data.size() != static_cast<size_t>(num_elements(node.shape))) {
    throw Error(expected_message("set_parameter", name, node, data.size(), "floats"));
  }
  impl_->upload_node(id, std::as_bytes(data));
}

void Session::set_parameter(const std::string& name, std::span<const uint16_t> bits, DType dtype) {
  if (dtype != DType::f16 && dtype != DType::bf16) {
    throw Error("set_parameter(\"" + name + "\"): 16-bit data must be f16 or bf16, got " + dtype_name(dtype));
  }
  const int32_t id = impl_->parameter_node(name, "set_parameter");
  const compile::Storage& storage = impl_->plan.storage.at(id);
  const bool same_format = (dtype == DType::f16 && storage.element == compile::ElementStorage::packed_f16) ||
                           (dtype == DType::bf16 && storage.element == compile::ElementStorage::packed_bf16);
  if (same_format && bits.size() == static_cast<size_t>(num_elements(impl_->plan.graph.node(id).shape))) {
    gpu::upload(*impl_->buffers.at(storage.buffer), storage.offset, runtime::pack_weight_bits(bits));  // exact
    impl_->note_parameters_changed();
    return;
  }
  std::vector<float> widened(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) widened[i] = dtype == DType::f16 ? f16_to_f32(bits[i]) : bf16_to_f32(bits[i]);
  set_parameter(name, std::span<const float>(widened));
}

void Session::set_optimizer(const OptimizerSpec& spec) {
  Impl& s = *impl_;
  if (!s.training) throw Error("set_optimizer: an inference session has no backward pass; use build_session");
  if (spec.learning_rate < 0 || spec.clip_global_norm < 0) {
    throw Error("set_optimizer: the learning rate and clipping norm must not be negative");
  }
  s.optimizer = spec;
  s.optimizer_dispatches.clear();
  s.optimizer_sets.clear();
  s.optimizer_state.clear();
  s.fused_kernels.clear();

  const float hyper_values[codegen::hyper_count] = {
      static_cast<float>(spec.learning_rate), static_cast<float>(spec.beta1), static_cast<float>(spec.beta2),
      static_cast<float>(spec.eps),           static_cast<float>(spec.weight_decay),
      static_cast<float>(spec.momentum),      0.0f,
      1.0f,                                   static_cast<float>(spec.clip_global_norm),
      1.0f,                                   1.0f};
  s.hyper = std::make_unique<gpu::Buffer>(s.context, sizeof hyper_values, gpu::MemoryKind::DeviceLocal, "hyperparameters");
  gpu::upload(*s.hyper, 0, std::as_bytes(std::span(hyper_values)));

  const uint32_t local = 256;
  const bool clip = spec.clip_global_norm > 0;
  const uint32_t state_count = codegen::optimizer_state_buffers(spec);
  auto add = [&](gpu::Pipeline& pipeline, std::vector<gpu::BufferRange> ranges, std::vector<uint32_t> push,
                 std::array<uint32_t, 3> groups, std::string label, bool barrier_before) {
    s.optimizer_sets.push_back(std::make_unique<gpu::DescriptorSet>(pipeline, ranges));
    s.optimizer_dispatches.push_back({&pipeline, s.optimizer_sets.back().get(), std::move(push), groups,
                                      std::move(label), barrier_before});
  };

  // The step counter runs beside the first forward kernels (they do not read the hyperparameters), so
  // it costs no barrier of its own; after the backward pass come the gradient norms when clipping.
  gpu::Pipeline& counter = s.pipeline_for(codegen::optimizer_step_counter(), 1, 0, "optimizer step counter");
  add(counter, {{s.hyper.get()}}, {}, {1, 1, 1}, "optimizer step", false);
  s.optimizer_dispatches.back().at_step_start = true;
  if (clip) {
    s.clip_partials = std::make_unique<gpu::Buffer>(s.context, std::max<size_t>(s.trainable.size(), 1) * 4,
                                                    gpu::MemoryKind::DeviceLocal, "gradient norms");
    gpu::Pipeline& partial = s.pipeline_for(codegen::optimizer_clip_partial(local), 2, 8, "gradient norm");
    for (size_t p = 0; p < s.trainable.size(); ++p) {
      const int32_t grad = s.gradient_nodes.at(s.trainable[p]);
      const compile::Storage& g = s.plan.storage[grad];
      add(partial, {{s.buffers[g.buffer].get(), g.offset, g.bytes}, {s.clip_partials.get()}},
          {static_cast<uint32_t>(g.bytes / 4), static_cast<uint32_t>(p)}, {1, 1, 1}, "gradient norm", p == 0);
    }
    gpu::Pipeline& finish = s.pipeline_for(codegen::optimizer_clip_finish(), 2, 4, "clip scale");
    add(finish, {{s.clip_partials.get()}, {s.hyper.get()}}, {static_cast<uint32_t>(s.trainable.size())}, {1, 1, 1},
        "clip scale", true);
  }
  // Last phase: every parameter's update (independent of each other). An update without state (SGD
  // without momentum) folds into its gradient's kernel where nothing later reads the parameter
  // (runtime/fused_update.h), unless clipping needs every gradient first; apply_update still runs
  // every update on its own. Updates with state stay apart: their moments add four accesses per
  // element to the gradient kernel's stores (SmolLM2's AdamW step went 33.1 -> 33.4 ms on an H100),
  // more than the stage they save.
  gpu::Pipeline& update = s.pipeline_for(codegen::optimizer_update(spec, local), 3 + state_count, 8, "optimizer update");
  struct Fusion {
    size_t kernel;
    compile::Kernel variant;
    std::vector<gpu::BufferRange> ranges;
  };
  std::vector<Fusion> fusions;
  bool first = true;
  for (const std::string& name : s.trainable) {
    const int32_t param = s.plan.graph.find(name);
    const int32_t grad = s.gradient_nodes.at(name);
    const compile::Storage& p = s.plan.storage[param];
    const compile::Storage& g = s.plan.storage[grad];
    std::vector<gpu::BufferRange> ranges = {{s.buffers[p.buffer].get(), p.offset, p.bytes},
                                            {s.buffers[g.buffer].get(), g.offset, g.bytes},
                                            {s.hyper.get()}};
    auto& states = s.optimizer_state[name];
    for (uint32_t k = 0; k < state_count; ++k) {
      states.push_back(std::make_unique<gpu::Buffer>(s.context, p.bytes, gpu::MemoryKind::DeviceLocal,
                                                     name + (k == 0 ? ".m" : ".v")));
      gpu::fill(*states.back(), 0);
      ranges.push_back({states.back().get()});
    }
    const uint64_t count = p.bytes / 4;
    const uint64_t groups = (count + local - 1) / local;
    const uint32_t max_x = s.caps.max_compute_workgroup_count[0];
    const uint32_t gx = static_cast<uint32_t>(std::min<uint64_t>(groups, max_x));
    const uint32_t gy = static_cast<uint32_t>((groups + gx - 1) / gx);
    add(update, ranges, {static_cast<uint32_t>(count), gx * local}, {gx, gy, 1}, "update " + name, first);
    first = false;
    const int fusible = clip || state_count > 0 ? -1 : runtime::fusible_gradient_kernel(s.plan, param, grad);
    // Not folded: recorded beside the backward pass when nothing after its gradient reads the
    // parameter (runtime/fused_update.h), else after it.
    if (fusible < 0 && !clip) s.optimizer_dispatches.back().after_kernel = runtime::early_update_kernel(s.plan, param, grad);
    if (fusible >= 0) {
      const size_t k = static_cast<size_t>(fusible);
      Fusion fusion{k, s.plan.kernels[k], {}};
      fusion.variant.store_function =
          codegen::fused_update_store(spec, static_cast<uint32_t>(fusion.variant.bindings.size()));
      fusion.variant.label += " + update";
      for (const compile::Storage& b : fusion.variant.bindings) {
        fusion.ranges.push_back({s.buffers[b.buffer].get(), b.offset, std::max<uint64_t>(b.bytes, 4)});
      }
      fusion.ranges.insert(fusion.ranges.end(), ranges.begin(), ranges.end());
      fusion.ranges.erase(fusion.ranges.begin() + static_cast<std::ptrdiff_t>(fusion.variant.bindings.size()) + 1);
      fusions.push_back(std::move(fusion));
      s.optimizer_dispatches.back().fused_into_step = true;
    }
  }
  std::vector<std::string> sources;
  for (const Fusion& fusion : fusions) sources.push_back(codegen::generate(s.plan.graph, fusion.variant, s.caps));
  s.precompile(sources);
  for (size_t f = 0; f < fusions.size(); ++f) {
    gpu::Pipeline& pipeline = s.pipeline_for(sources[f], static_cast<uint32_t>(fusions[f].ranges.size()), 0,
                                             compile::archetype_name(fusions[f].variant.archetype));
    s.fused_kernels[fusions[f].kernel] = {&pipeline, std::make_unique<gpu::DescriptorSet>(pipeline, fusions[f].ranges),
                                          fusions[f].variant.label};
  }
  s.record();
}

void Session::set_learning_rate(double learning_rate) {
  if (!impl_->optimizer) throw Error("set_learning_rate: call set_optimizer first");
  if (learning_rate < 0) throw Error("set_learning_rate: the learning rate must not be negative");
  impl_->optimizer->learning_rate = learning_rate;
  const float lr = static_cast<float>(learning_rate);
  gpu::upload(*impl_->hyper, codegen::hyper_learning_rate * 4, std::as_bytes(std::span(&lr, 1)));
}

void Session::step() { step_n(1); }

void Session::step_n(uint32_t steps) {
  if (impl_->training && !impl_->optimizer) {
    throw Error("step: no optimizer set; call set_optimizer (or pass SessionOptions::optimizer)");
  }
  if (steps == 0) return;
  trace::Scope trace_scope("step", steps > 1 ? std::to_string(steps) + " replays" : std::string());
  impl_->refresh_derived();
  impl_->recording->run(steps);
  if (impl_->training) impl_->note_parameters_changed();  // for sessions that borrow these parameters
  impl_->note_replay(*impl_->recording, steps, impl_->training ? "training steps" : "forward passes");
}

void Session::run() {
  trace::Scope trace_scope("run");
  gpu::Recording& used = *(impl_->forward_only ? impl_->forward_only : impl_->recording);
  impl_->refresh_derived();
  used.run(1);
  impl_->note_replay(used, 1, "forward passes");
}

std::vector<float> Session::read_output(size_t index) const {
  if (index >= impl_->user_outputs.size()) {
    throw Error("read_output(" + std::to_string(index) + "): the graph has " +
                std::to_string(impl_->user_outputs.size()) + " outputs");
  }
  return impl_->download_node(impl_->user_outputs[index]);
}

std::vector<float> Session::read_output(const std::string& name) const {
  const Graph& g = impl_->plan.graph;
  std::string known;
  for (size_t i = 0; i < impl_->user_outputs.size(); ++i) {
    const std::string& output_name = g.node(impl_->user_outputs[i]).name;
    if (output_name == name) return read_output(i);
    known += (known.empty() ? "" : ", ") + (output_name.empty() ? "#" + std::to_string(i) : output_name);
  }
  throw Error("read_output(\"" + name + "\"): no output of that name; outputs: " + known);
}

std::vector<int32_t> Session::read_output_i32(size_t index) const {
  std::vector<float> values = read_output(index);
  return std::vector<int32_t>(values.begin(), values.end());
}

float Session::read_loss() const {
  const Node& node = impl_->plan.graph.node(impl_->user_outputs.at(0));
  if (num_elements(node.shape) != 1) {
    throw Error("read_loss: the first output has shape " + format_shape(node.shape) + ", not a scalar");
  }
  return read_output(0)[0];
}

std::vector<float> Session::read_parameter(const std::string& name) const {
  return impl_->download_node(impl_->parameter_node(name, "read_parameter"));
}

std::vector<float> Session::read_gradient(const std::string& name) const {
  auto it = impl_->gradient_nodes.find(name);
  if (it == impl_->gradient_nodes.end()) {
    throw Error("read_gradient(\"" + name + "\"): " +
                (impl_->training ? "not a trainable parameter" : "an inference session computes no gradients"));
  }
  return impl_->download_node(it->second);
}

void Session::save_parameters(const std::string& path) const {
  std::vector<std::vector<float>> values;
  std::vector<TensorToSave> tensors;
  const Graph& g = impl_->plan.graph;
  for (int32_t id : g.parameters()) values.push_back(impl_->download_node(id));
  size_t k = 0;
  for (int32_t id : g.parameters()) {
    tensors.push_back(tensor_view(g.node(id).name, g.node(id).shape, std::span<const float>(values[k++])));
  }
  save_safetensors(path, tensors, {{"format", "pt"}});
}

void Session::load_parameters(const std::string& path) {
  SafeTensorsFile file = SafeTensorsFile::open(path);
  const Graph& g = impl_->plan.graph;
  for (int32_t id : g.parameters()) {
    const Node& node = g.node(id);
    if (!file.contains(node.name)) {
      throw Error("load_parameters(\"" + path + "\"): the file has no tensor \"" + node.name + "\"");
    }
    const TensorInfo& info = file.tensor(node.name);
    if (info.shape != node.shape) {
      throw Error("load_parameters(\"" + path + "\"): \"" + node.name + "\" is " + format_shape(info.shape) +
                  " in the file, the graph expects " + format_shape(node.shape));
    }
    set_parameter(node.name, std::span<const float>(file.to_f32(node.name)));
  }
}

std::vector<std::string> Session::input_names() const {
  std::vector<std::string> names;
  for (int32_t id : impl_->plan.graph.inputs()) names.push_back(impl_->plan.graph.node(id).name);
  return names;
}

std::vector<std::string> Session::parameter_names() const {
  std::vector<std::string> names;
  for (int32_t id : impl_->plan.graph.parameters()) names.push_back(impl_->plan.graph.node(id).name);
  return names;
}

MemorySummary Session::memory_summary() const {
  MemorySummary summary;
  const compile::Plan& plan = impl_->plan;
  std::set<int32_t> gradient_ids;
  for (const auto& [name, id] : impl_->gradient_nodes) gradient_ids.insert(id);
  for (size_t i = 0; i < plan.buffers.size(); ++i) {
    const compile::PlanBuffer& b = plan.buffers[i];
    switch (b.kind) {
      case compile::BufferKind::parameter:
        (impl_->borrowed[i] ? summary.shared_parameters : summary.parameters) += b.bytes;
        break;
      case compile::BufferKind::input: summary.inputs += b.bytes; break;
      case compile::BufferKind::output:
        (gradient_ids.count(b.node) ? summary.gradients : summary.outputs) += b.bytes;
        break;
      case compile::BufferKind::state:
      case compile::BufferKind::workspace: summary.state += b.bytes; break;
      case compile::BufferKind::derived:
        (impl_->borrowed[i] ? summary.shared_parameters : summary.derived) += b.bytes;
        break;
      case compile::BufferKind::constant: summary.inputs += b.bytes; break;
      case compile::BufferKind::arena: summary.arena += plan.arena_bytes; break;
    }
  }
  summary.arena_unshared = plan.unshared_bytes;
  for (const auto& [name, states] : impl_->optimizer_state) {
    for (const auto& state : states) summary.optimizer_state += state->size();
  }
  return summary;
}

std::string MemorySummary::to_string() const {
  std::ostringstream out;
  out << "parameters " << parameters << " B";
  if (shared_parameters) out << " (+" << shared_parameters << " B shared)";
  if (derived) out << ", derived weights " << derived << " B";
  out << ", gradients " << gradients << " B, optimizer state " << optimizer_state << " B, inputs " << inputs
      << " B, outputs " << outputs << " B, state " << state << " B, arena " << arena << " B (" << arena_unshared << " B unshared); total "
      << total() << " B";
  return out.str();
}

ShaderBuildStats Session::build_stats() const { return impl_->build_stats; }
size_t Session::dispatch_count() const { return impl_->recording->command_count(); }
size_t Session::barrier_count() const { return impl_->recording->barrier_count(); }
std::vector<std::string> Session::kernel_labels() const { return impl_->recording->labels(); }
std::string Session::plan_summary() const { return impl_->plan.summary(); }

std::vector<KernelTime> Session::profile(uint32_t steps) {
  if (!impl_->caps.supports_timestamps && !impl_->context->caps().supports_timestamps) {
    throw Error("profile: the device has no timestamp queries");
  }
  if (!impl_->options.timestamps) {
    impl_->options.timestamps = true;
    impl_->record();
  }
  if (impl_->training && impl_->optimizer) {
    step_n(std::max<uint32_t>(steps, 1));
  } else {
    for (uint32_t i = 0; i < std::max<uint32_t>(steps, 1); ++i) run();
  }
  gpu::Recording& used = (impl_->training && impl_->optimizer) || !impl_->forward_only ? *impl_->recording
                                                                                         : *impl_->forward_only;
  const std::vector<uint64_t> ns = used.dispatch_durations_ns();
  std::vector<KernelTime> times;
  for (size_t i = 0; i < ns.size() && i < used.labels().size(); ++i) {
    times.push_back({used.labels()[i], static_cast<double>(ns[i]) / 1000.0});
  }
  return times;
}

}  // namespace meganeura
