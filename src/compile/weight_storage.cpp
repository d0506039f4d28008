#include "compile/weight_storage.h"

#include <algorithm>
#include <functional>
#include <string>

#include "meganeura/error.h"

namespace meganeura::compile {

uint64_t storage_bytes(uint64_t elements, ElementStorage element) {
  return element == ElementStorage::bits32 ? elements * 4 : (elements + 1) / 2 * 4;
}

bool reads_packed_weights(const Graph& graph, const Kernel& kernel, size_t slot) {
  const int32_t input = kernel.inputs.at(slot);
  size_t reads = 0;
  for (int32_t id : kernel.nodes) reads += std::count(graph.node(id).inputs.begin(), graph.node(id).inputs.end(), input);
  if (reads != 1) return false;
  const Node& anchor = graph.node(kernel.anchor);
  if (kernel.archetype == Archetype::matmul) {
    return anchor.inputs[0] == input || anchor.inputs[1] == input ||
           (kernel.partner >= 0 && graph.node(kernel.partner).inputs[1] == input);
  }
  if (kernel.archetype == Archetype::gather) return anchor.op == Op::embedding && anchor.inputs[0] == input;
  return false;
}

namespace {

// Packs the buffers `candidate` picks (parameters or inputs) that only packed-aware kernels read.
void pack_buffers(Plan& plan, ElementStorage element, const std::function<bool(const PlanBuffer&)>& candidate) {
  const size_t buffer_count = plan.buffers.size();
  std::vector<bool> eligible(buffer_count, false), read(buffer_count, false);
  for (size_t b = 0; b < buffer_count; ++b) eligible[b] = candidate(plan.buffers[b]);
  // A parameter stays 32-bit when any kernel reads it in a form that expects 32-bit elements, or
  // writes it, or when an output is read back through it.
  for (const Kernel& kernel : plan.kernels) {
    for (size_t slot = 0; slot < kernel.bindings.size(); ++slot) {
      const uint32_t b = kernel.bindings[slot].buffer;
      if (slot >= kernel.inputs.size() || !reads_packed_weights(plan.graph, kernel, slot)) {  // outputs: 32-bit
        eligible[b] = false;
      } else {
        read[b] = true;
      }
    }
  }
  for (int32_t output : plan.graph.outputs()) eligible[plan.storage[output].buffer] = false;
  for (size_t b = 0; b < buffer_count; ++b) {
    if (!eligible[b] || !read[b]) continue;
    const uint64_t bytes = storage_bytes(static_cast<uint64_t>(num_elements(plan.graph.node(plan.buffers[b].node).shape)), element);
    plan.buffers[b].bytes = bytes;
    auto pack = [&](Storage& storage) {
      if (storage.buffer != b || storage.bytes == 0) return;
      storage.bytes = bytes;
      storage.element = element;
    };
    for (Storage& storage : plan.storage) pack(storage);
    for (Kernel& kernel : plan.kernels) {
      for (Storage& storage : kernel.bindings) pack(storage);
    }
  }
}

}  // namespace

void store_weights_16bit(Plan& plan, DType weight_storage) {
  if (weight_storage == DType::f32) return;
  if (weight_storage != DType::f16 && weight_storage != DType::bf16) {
    throw Error(std::string("compile: weights can be stored as f32, f16 or bf16, not ") + dtype_name(weight_storage));
  }
  const ElementStorage element = weight_storage == DType::f16 ? ElementStorage::packed_f16 : ElementStorage::packed_bf16;
  pack_buffers(plan, element, [&](const PlanBuffer& buffer) {
    return buffer.kind == BufferKind::parameter && plan.graph.node(buffer.node).dtype != DType::i32;
  });
}

void store_f16_inputs_16bit(Plan& plan) {
  pack_buffers(plan, ElementStorage::packed_f16, [&](const PlanBuffer& buffer) {
    return buffer.kind == BufferKind::input && plan.graph.node(buffer.node).dtype == DType::f16;
  });
}

}  // namespace meganeura::compile
