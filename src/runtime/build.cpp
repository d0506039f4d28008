// Building sessions: optimize → differentiate → optimize → compile → codegen → pipelines → record.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <future>
#include <thread>

#include "codegen/codegen.h"
#include "codegen/optimizer.h"
#include "compile/hazards.h"
#include "compile/split_sums.h"
#include "gpu/shader_compiler.h"
#include "gpu/transfer.h"
#include "meganeura/autodiff.h"
#include "meganeura/error.h"
#include "meganeura/optimize.h"
#include "meganeura/trace.h"
#include "runtime/cooperative_self_test.h"
#include "runtime/session_impl.h"
#include "runtime/weight_packing.h"

namespace meganeura {

namespace {

// One compiler per process: its counters tell how many shaders each build compiled or found cached.
gpu::ShaderCompiler& shader_compiler() {
  static gpu::ShaderCompiler compiler;
  return compiler;
}

std::vector<std::byte> initial_bytes(const Node& node, uint64_t seed, compile::ElementStorage element) {
  std::vector<float> values = initial_values(node.init, node.shape, parameter_seed(seed, node.name));
  if (element != compile::ElementStorage::bits32) return runtime::pack_weights(values, element);
  std::vector<std::byte> bytes(values.size() * 4);
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

std::vector<std::byte> constant_bytes(const Node& node) {
  const int64_t count = num_elements(node.shape);
  std::vector<std::byte> bytes(static_cast<size_t>(count) * 4);
  for (int64_t i = 0; i < count; ++i) {
    const double value = node.op == Op::scalar ? node.attrs.value : node.data.at(static_cast<size_t>(i));
    if (node.dtype == DType::i32) {
      const int32_t v = static_cast<int32_t>(value);
      std::memcpy(bytes.data() + i * 4, &v, 4);
    } else {
      const float v = static_cast<float>(value);
      std::memcpy(bytes.data() + i * 4, &v, 4);
    }
  }
  return bytes;
}

// Whether node `a_id` of plan `a` and `b_id` of `b` compute the same values from the same
// parameters (by name, stored alike) and constants: a derived weight a lender already keeps.
bool same_derivation(const compile::Plan& a, int32_t a_id, const compile::Plan& b, int32_t b_id) {
  const Node& x = a.graph.node(a_id);
  const Node& y = b.graph.node(b_id);
  if (x.op != y.op || x.shape != y.shape || x.dtype != y.dtype || !(x.attrs == y.attrs) ||
      x.inputs.size() != y.inputs.size()) {
    return false;
  }
  if (x.op == Op::parameter) {
    return x.name == y.name && a.storage.at(a_id).element == b.storage.at(b_id).element;
  }
  if (x.op == Op::constant && x.data != y.data) return false;
  for (size_t i = 0; i < x.inputs.size(); ++i) {
    if (!same_derivation(a, x.inputs[i], b, y.inputs[i])) return false;
  }
  return true;
}

}  // namespace

gpu::Pipeline& Session::Impl::pipeline_for(const std::string& source, uint32_t bindings, uint32_t push_bytes,
                                           const std::string& label) {
  auto found = pipelines.find(source);
  if (found != pipelines.end()) return *found->second;
  codegen::dump_shader(source, label);
  if (!spirv_by_source.count(source)) precompile({source});
  const std::vector<uint32_t>& spirv = spirv_by_source.at(source);
  ++build_stats.unique_shaders;
  auto pipeline = std::make_unique<gpu::Pipeline>(
      context, gpu::PipelineDesc{.spirv = spirv, .storage_buffers = bindings, .push_constant_bytes = push_bytes,
                                 .label = label});
  gpu::Pipeline& result = *pipeline;
  pipelines.emplace(source, std::move(pipeline));
  return result;
}

void Session::Impl::precompile(const std::vector<std::string>& sources) {
  std::vector<std::string> fresh;
  for (const std::string& source : sources) {
    if (!spirv_by_source.count(source) && std::find(fresh.begin(), fresh.end(), source) == fresh.end()) {
      fresh.push_back(source);
    }
  }
  // Each shader's own slice is on its worker thread's track.
  trace::Scope trace_scope("shaders", std::to_string(fresh.size()) + " to compile or load");
  gpu::ShaderCompiler& compiler = shader_compiler();
  const gpu::ShaderCacheStats before = compiler.stats();
  const size_t threads = std::max<size_t>(1, std::min<size_t>(fresh.size(), std::thread::hardware_concurrency()));
  std::vector<std::vector<uint32_t>> spirv(fresh.size());
  std::atomic<size_t> next{0};
  std::vector<std::future<void>> workers;
  for (size_t t = 0; t < threads; ++t) {
    workers.push_back(std::async(std::launch::async, [&] {
      for (size_t i = next++; i < fresh.size(); i = next++) spirv[i] = compiler.compile(fresh[i], {.name = "kernel"});
    }));
  }
  for (auto& worker : workers) worker.get();  // rethrows a compile error
  for (size_t i = 0; i < fresh.size(); ++i) spirv_by_source[fresh[i]] = std::move(spirv[i]);
  const gpu::ShaderCacheStats after = compiler.stats();
  build_stats.cache_hits += after.hits - before.hits;
  build_stats.compiled += after.misses - before.misses;
}

const gpu::Buffer& Session::Impl::buffer_of(int32_t node) const {
  return *buffers.at(plan.storage.at(node).buffer);
}

namespace runtime {

Session build_session_for_caps(const Graph& graph, const SessionOptions& options, const compile::DeviceCaps& caps,
                               bool training) {
  trace::Scope trace_scope(training ? "build_session" : "build_inference_session",
                           std::to_string(graph.size()) + " nodes");
  auto impl = std::make_unique<Session::Impl>();
  impl->context = gpu::Context::shared();
  impl->caps = caps;
  // Offsets must satisfy the real device whatever the hand-made caps say.
  impl->caps.min_storage_buffer_offset_alignment =
      std::max(caps.min_storage_buffer_offset_alignment, impl->context->caps().min_storage_buffer_offset_alignment);
  impl->training = training;
  impl->options = options;
  if (!graph.has_outputs()) throw Error("build_session: the graph has no outputs; call set_outputs first");
  const size_t user_output_count = graph.outputs().size();

  compile::CompileOptions compile_options;
  compile_options.fuse = options.fuse;
  compile_options.weight_storage = options.weight_storage;
  if (training && options.weight_storage != DType::f32) {
    throw Error(std::string("build_session: SessionOptions::weight_storage = ") + dtype_name(options.weight_storage) +
                " is for inference sessions (build_inference_session); training keeps f32 weights");
  }
  Graph final_graph;
  if (training) {
    const Graph forward = options.optimize ? optimize(graph).graph : graph;
    GradientGraph gradients = differentiate(forward);
    final_graph = options.optimize ? optimize(gradients.graph).graph : std::move(gradients.graph);
    impl->trainable = gradients.parameters;
    compile_options.purpose = compile::Purpose::training;
  } else {
    // Stacked weights and other parameter-only values are refreshed on upload, not per step; with
    // 16-bit weights they would be 32-bit copies, so the optimizer prices them as per-step work.
    OptimizeOptions optimize_options;
    optimize_options.inference = options.weight_storage == DType::f32;
    final_graph = options.optimize ? optimize(graph, optimize_options).graph : graph;
  }
  // Weight gradients that would leave the GPU idle become parallel partial sums.
  final_graph = compile::split_long_sums(final_graph);
  const auto& outputs = final_graph.outputs();
  if (outputs.size() < user_output_count) throw Error("build_session: the optimized graph lost outputs");
  impl->user_outputs.assign(outputs.begin(), outputs.begin() + static_cast<std::ptrdiff_t>(user_output_count));
  for (const std::string& name : impl->trainable) {
    impl->gradient_nodes[name] = final_graph.find(gradient_name(name));
  }
  {
    trace::Scope compile_scope("compile");
    impl->plan = compile::compile(final_graph, impl->caps, compile_options);
  }
  // A cooperative-matrix kernel is used only once the device passed the numeric self-test.
  const bool cooperative = std::any_of(impl->plan.kernels.begin(), impl->plan.kernels.end(),
                                       [](const compile::Kernel& k) { return k.cooperative_matrix; });
  if (cooperative && !runtime::cooperative_self_test_running() &&
      runtime::cooperative_self_test(impl->caps).outcome != runtime::CooperativeSelfTest::Outcome::passed) {
    trace::Scope compile_scope("compile", "scalar matmuls: the cooperative-matrix self-test failed");
    impl->caps.supports_cooperative_matrix = false;
    impl->plan = compile::compile(final_graph, impl->caps, compile_options);
  }
  const compile::Plan& plan = impl->plan;

  // Buffers.
  const Session::Impl* lender = options.share_parameters_with ? &options.share_parameters_with->impl() : nullptr;
  if (lender != nullptr) impl->parameter_generation = lender->parameter_generation;
  impl->buffers.resize(plan.buffers.size());
  impl->borrowed.assign(plan.buffers.size(), false);
  for (size_t i = 0; i < plan.buffers.size(); ++i) {
    const compile::PlanBuffer& planned = plan.buffers[i];
    if (planned.kind == compile::BufferKind::parameter && lender != nullptr) {
      const auto& lender_graph = lender->plan.graph;
      if (lender_graph.contains(planned.name)) {
        const int32_t other = lender_graph.find(planned.name);
        if (lender_graph.node(other).op == Op::parameter &&
            lender_graph.node(other).shape == plan.graph.node(planned.node).shape &&
            lender->plan.storage.at(other).element == plan.storage.at(planned.node).element) {
          impl->buffers[i] = lender->buffers.at(lender->plan.storage.at(other).buffer);
          impl->borrowed[i] = true;
          continue;
        }
      }
    }
    // A derived weight (stacked for one wider product) the lender keeps the same way: its
    // buffer, refreshed by either session when the shared parameters change.
    if (planned.kind == compile::BufferKind::derived && lender != nullptr) {
      const auto& lent = lender->plan.buffers;
      const auto match = std::find_if(lent.begin(), lent.end(), [&](const compile::PlanBuffer& other) {
        return other.kind == compile::BufferKind::derived && other.bytes == planned.bytes &&
               lender->plan.storage.at(other.node).element == plan.storage.at(planned.node).element &&
               same_derivation(plan, planned.node, lender->plan, other.node);
      });
      if (match != lent.end()) {
        impl->buffers[i] = lender->buffers.at(static_cast<size_t>(match - lent.begin()));
        impl->borrowed[i] = true;
        continue;
      }
    }
    const std::string label = planned.kind == compile::BufferKind::arena ? "arena" : planned.name;
    // Inputs (a batch, token ids) and tiny outputs (a loss, a sampled token) in memory the host
    // maps where the device has such memory: set_input and their reads are then a memcpy, not a
    // copy on the queue with a fence wait each. Larger outputs stay in plain device memory: the host
    // reads write-combined memory across the bus far slower than a staging copy delivers it.
    const bool host_writable = (planned.kind == compile::BufferKind::input && planned.bytes <= (16u << 20)) ||
                               (planned.kind == compile::BufferKind::output && planned.bytes <= 4096);
    impl->buffers[i] = std::make_shared<gpu::Buffer>(impl->context, std::max<uint64_t>(planned.bytes, 4),
                                                     host_writable ? gpu::MemoryKind::HostWritable
                                                                   : gpu::MemoryKind::DeviceLocal,
                                                     label);
    const Node* node = planned.node >= 0 ? &plan.graph.node(planned.node) : nullptr;
    if (planned.kind == compile::BufferKind::parameter) {
      gpu::upload(*impl->buffers[i], 0, initial_bytes(*node, options.seed, plan.storage.at(planned.node).element));
    } else if (planned.kind == compile::BufferKind::constant) {
      gpu::upload(*impl->buffers[i], 0, constant_bytes(*node));
    } else {
      gpu::fill(*impl->buffers[i], 0);  // defined contents before the first set_input
    }
  }

  // Pipelines and descriptor sets; the shaders compile in parallel first.
  std::vector<std::string> sources;
  {
    trace::Scope codegen_scope("codegen", std::to_string(plan.kernels.size()) + " kernels");
    for (const compile::Kernel& kernel : plan.kernels) sources.push_back(codegen::generate(plan.graph, kernel, impl->caps));
  }
  impl->precompile(sources);
  for (size_t k = 0; k < plan.kernels.size(); ++k) {
    const compile::Kernel& kernel = plan.kernels[k];
    const std::string& source = sources[k];
    gpu::Pipeline& pipeline = impl->pipeline_for(source, static_cast<uint32_t>(kernel.bindings.size()), 0,
                                                 compile::archetype_name(kernel.archetype));
    std::vector<gpu::BufferRange> ranges;
    for (const compile::Storage& s : kernel.bindings) {
      ranges.push_back({impl->buffers[s.buffer].get(), s.offset, std::max<uint64_t>(s.bytes, 4)});
    }
    impl->kernel_pipelines.push_back(&pipeline);
    impl->descriptor_sets.push_back(std::make_unique<gpu::DescriptorSet>(pipeline, ranges));
  }
  impl->build_stats.kernels = plan.kernels.size();
  if (training && options.optimizer) impl->optimizer = options.optimizer;
  Session session(std::move(impl));
  if (training && options.optimizer) {
    session.set_optimizer(*options.optimizer);
  } else {
    session.impl().record();
  }
  return session;
}

}  // namespace runtime

Session build_session(const Graph& graph, const SessionOptions& options) {
  return runtime::build_session_for_caps(graph, options, gpu::Context::shared()->caps(), true);
}

Session build_inference_session(const Graph& graph, const SessionOptions& options) {
  return runtime::build_session_for_caps(graph, options, gpu::Context::shared()->caps(), false);
}

}  // namespace meganeura
