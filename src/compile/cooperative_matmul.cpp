#include "compile/cooperative_matmul.h"

#include <algorithm>

#include "compile/grouping.h"

namespace meganeura::compile {

namespace {

using Tiles = CooperativeMatmulTiles;

uint32_t ceil_div(uint64_t a, uint64_t b) { return static_cast<uint32_t>((a + b - 1) / b); }

// Bytes of one staged operand tile: `outer` rows of `inner` f16 values plus the padding.
uint32_t staged_bytes(uint32_t outer, uint32_t inner) { return outer * (inner + Tiles::pad) * 2; }

}  // namespace

uint32_t cooperative_matmul_shared_bytes(bool transpose_a, bool transpose_b) {
  const uint32_t a = transpose_a ? staged_bytes(Tiles::depth, Tiles::rows) : staged_bytes(Tiles::rows, Tiles::depth);
  const uint32_t b = transpose_b ? staged_bytes(Tiles::columns, Tiles::depth) : staged_bytes(Tiles::depth, Tiles::columns);
  const uint32_t subgroups = Tiles::invocations / 32;
  return 2 * (a + b) + subgroups * 16 * 16 * 4;
}

bool device_runs_cooperative_matmul(const DeviceCaps& caps) {
  using C = MatrixComponent;
  return caps.has_cooperative_matrix_shape({16, 16, 16, C::Float16, C::Float16, C::Float32, C::Float32}) &&
         caps.subgroup_size == 32 && caps.min_subgroup_size == 32 && caps.max_subgroup_size == 32 &&
         caps.max_workgroup_invocations >= Tiles::invocations && caps.max_workgroup_size[0] >= Tiles::invocations &&
         caps.max_shared_memory_bytes >= cooperative_matmul_shared_bytes(true, true) &&
         caps.max_shared_memory_bytes >= cooperative_matmul_shared_bytes(false, false);
}

bool cooperative_tiles_fill_device(int64_t m, int64_t n, int64_t batch, const DeviceCaps& caps) {
  const uint64_t tiles = static_cast<uint64_t>(ceil_div(static_cast<uint64_t>(m), Tiles::rows)) *
                         ceil_div(static_cast<uint64_t>(n), Tiles::columns) * static_cast<uint64_t>(batch);
  return 2 * tiles >= caps.compute_units;
}

bool takes_cooperative_matmul(const Plan& plan, const Kernel& kernel, const DeviceCaps& caps) {
  if (kernel.archetype != Archetype::matmul || kernel.partner >= 0 || !device_runs_cooperative_matmul(caps)) return false;
  const Graph& graph = plan.graph;
  const Node& mm = graph.node(kernel.anchor);
  const Shape& out = mm.shape;
  const int64_t m = out[out.size() - 2], n = out.back();
  const Shape& a_shape = graph.node(mm.inputs[0]).shape;
  const int64_t k = mm.attrs.transpose_a ? a_shape[a_shape.size() - 2] : a_shape.back();
  if (m < 16 || n < 16 || k < 16) return false;  // GEMV and slivers: the scalar forms do better
  // Rows normalized in the kernel (grouping.h: normalizes_product_rows): the scalar forms only.
  if (std::binary_search(kernel.nodes.begin(), kernel.nodes.end(), mm.inputs[0])) return false;
  // Rows rotated into a cache: the 64×64-tile form only.
  if (rotated_cache_store(graph, kernel) >= 0) return false;
  const int64_t batch = num_elements(out) / (m * n);
  if (!cooperative_tiles_fill_device(m, n, batch, caps)) return false;
  if (ceil_div(n, Tiles::columns) > caps.max_compute_workgroup_count[0] ||
      ceil_div(m, Tiles::rows) > caps.max_compute_workgroup_count[1] ||
      static_cast<uint64_t>(batch) > caps.max_compute_workgroup_count[2]) {
    return false;
  }
  auto slot_of = [&](int32_t node) {
    return static_cast<size_t>(std::find(kernel.inputs.begin(), kernel.inputs.end(), node) - kernel.inputs.begin());
  };
  const size_t a_slot = slot_of(mm.inputs[0]), b_slot = slot_of(mm.inputs[1]);
  if (a_slot >= kernel.inputs.size() || b_slot >= kernel.inputs.size()) return false;
  const ElementStorage a_element = kernel.bindings[a_slot].element, b_element = kernel.bindings[b_slot].element;
  if (a_element == ElementStorage::packed_bf16 || b_element == ElementStorage::packed_bf16) return false;
  const bool a_f16 = graph.node(mm.inputs[0]).dtype == DType::f16 || a_element == ElementStorage::packed_f16;
  const bool b_f16 = graph.node(mm.inputs[1]).dtype == DType::f16 || b_element == ElementStorage::packed_f16;
  return (a_f16 && b_f16) || b_element == ElementStorage::packed_f16;
}

void select_cooperative_matmuls(Plan& plan, const DeviceCaps& caps) {
  for (Kernel& kernel : plan.kernels) {
    if (!takes_cooperative_matmul(plan, kernel, caps)) continue;
    const Node& mm = plan.graph.node(kernel.anchor);
    const int64_t m = mm.shape[mm.shape.size() - 2], n = mm.shape.back();
    // The tensor-core form does not split K: its partial-sum and counter bindings stay unused (the
    // planner reserved their space before the form was chosen).
    if (kernel.split_k > 1) {
      kernel.bindings.resize(kernel.bindings.size() - 2);
      kernel.split_k = 1;
      kernel.arrival_counters = 0;
      kernel.partial_floats = 0;
    }
    kernel.cooperative_matrix = true;
    kernel.local_size = {Tiles::invocations, 1, 1};
    kernel.register_tile = {Tiles::rows, Tiles::columns};
    kernel.workgroups = {ceil_div(n, Tiles::columns), ceil_div(m, Tiles::rows),
                         static_cast<uint32_t>(num_elements(mm.shape) / (m * n))};
  }
}

}  // namespace meganeura::compile
