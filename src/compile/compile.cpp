// compile(): groups → kernels with storage, dispatch sizes and barriers.
#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "compile/cooperative_matmul.h"
#include "compile/grouping.h"
#include "compile/hazards.h"
#include "compile/memory_plan.h"
#include "compile/op_kernels.h"
#include "compile/plan.h"
#include "compile/schedule.h"
#include "compile/weight_storage.h"
#include "meganeura/error.h"

namespace meganeura::compile {

const char* buffer_kind_name(BufferKind kind) {
  switch (kind) {
    case BufferKind::input: return "input";
    case BufferKind::parameter: return "parameter";
    case BufferKind::constant: return "constant";
    case BufferKind::output: return "output";
    case BufferKind::state: return "state";
    case BufferKind::derived: return "derived";
    case BufferKind::arena: return "arena";
    case BufferKind::workspace: return "workspace";
  }
  return "?";
}

const char* archetype_name(Archetype archetype) {
  switch (archetype) {
    case Archetype::pointwise: return "pointwise";
    case Archetype::reduction: return "reduction";
    case Archetype::matmul: return "matmul";
    case Archetype::gather: return "gather";
    case Archetype::attention: return "attention";
    case Archetype::conv: return "conv";
    case Archetype::nn: return "nn";
    case Archetype::classifier: return "classifier";
  }
  return "?";
}

uint32_t split_k_granularity(const Kernel& kernel) {
  // The prefetching tiles step K by 8 (codegen/matmul_wide.cpp), the others by 16 (matmul.cpp).
  return kernel.local_size[0] == 16 && kernel.register_tile[0] >= 4 ? 8 : 16;
}

uint64_t split_k_span(uint64_t k, uint32_t split, uint32_t granularity) {
  const uint64_t slices = (k + granularity - 1) / granularity;
  return (slices + split - 1) / split * granularity;
}

bool runs_paired_products(const DeviceCaps& caps) {
  return caps.max_workgroup_invocations >= 256 && caps.max_workgroup_size[0] >= 16 && caps.max_workgroup_size[1] >= 16 &&
         caps.max_shared_memory_bytes >= 2ull * 2 * 8 * 33 * 16;
}

// The 64×64-tile form with a rotating cache store's tile beside its two shared stages
// (grouping.h: rotated_cache_store).
bool runs_rotating_tiles(const DeviceCaps& caps) {
  return caps.max_workgroup_invocations >= 256 && caps.max_workgroup_size[0] >= 16 && caps.max_workgroup_size[1] >= 16 &&
         caps.max_shared_memory_bytes >= 2ull * 2 * 8 * 17 * 16 + rotated_cache_store_bytes;
}

uint32_t balanced_split_k(uint64_t tiles, uint64_t k, uint64_t longest, uint32_t compute_units, uint32_t granularity) {
  uint32_t best = 1;
  uint64_t best_terms = ~0ull;
  for (uint64_t split = 1; split <= std::max<uint64_t>(longest, 1); ++split) {
    const uint64_t span = split_k_span(k, static_cast<uint32_t>(split), granularity);
    const uint64_t used = (k + span - 1) / span;  // splits that get terms
    const uint64_t terms = (tiles * used + compute_units - 1) / compute_units * span;
    if (terms < best_terms) {
      best_terms = terms;
      best = static_cast<uint32_t>(used);
    }
  }
  return best;
}

uint64_t tensor_bytes(const Shape& shape) { return static_cast<uint64_t>(num_elements(shape)) * 4; }

size_t Plan::barrier_count() const {
  return static_cast<size_t>(std::count_if(kernels.begin(), kernels.end(), [](const Kernel& k) { return k.barrier_before; }));
}

std::string Plan::summary() const {
  std::ostringstream out;
  for (const Kernel& kernel : kernels) {
    out << (kernel.barrier_before ? "| " : "  ") << archetype_name(kernel.archetype) << " " << kernel.label << " ["
        << kernel.workgroups[0] << "x" << kernel.workgroups[1] << "x" << kernel.workgroups[2] << "]\n";
  }
  out << "arena " << arena_bytes << " bytes (" << unshared_bytes << " unshared), " << kernels.size() << " kernels, "
      << barrier_count() << " barriers\n";
  return out.str();
}

namespace {

uint32_t ceil_div(uint64_t a, uint64_t b) { return static_cast<uint32_t>((a + b - 1) / b); }

uint32_t floor_pow2(uint32_t v) {
  uint32_t p = 1;
  while (p * 2 <= v) p *= 2;
  return p;
}

// Threads per workgroup for one-thread-per-element kernels: 256 or less, a multiple of the subgroup.
uint32_t elementwise_local_size(const DeviceCaps& caps) {
  uint32_t size = std::min<uint32_t>({256u, caps.max_workgroup_invocations, caps.max_workgroup_size[0]});
  size = floor_pow2(size);
  return std::max<uint32_t>(size, 1);
}

// Spreads `groups` workgroups over x and y when x alone would exceed the device limit; shaders
// rebuild the linear index from both.
std::array<uint32_t, 3> spread(uint64_t groups, const DeviceCaps& caps) {
  const uint64_t max_x = caps.max_compute_workgroup_count[0];
  if (groups <= max_x) return {static_cast<uint32_t>(std::max<uint64_t>(groups, 1)), 1, 1};
  const uint64_t y = (groups + max_x - 1) / max_x;
  if (y > caps.max_compute_workgroup_count[1]) {
    throw Error("compile: " + std::to_string(groups) + " workgroups exceed the device's dispatch limits");
  }
  return {static_cast<uint32_t>((groups + y - 1) / y), static_cast<uint32_t>(y), 1};
}

// The subgroup size when kernels may add up values with subgroupAdd, knowing each subgroup's
// invocations: one fixed size, a power of two from 4 to 32; else 0.
uint32_t summing_subgroup(const DeviceCaps& caps) {
  const bool fixed = caps.supports_subgroup_arithmetic && caps.min_subgroup_size == caps.max_subgroup_size &&
                     caps.subgroup_size == caps.min_subgroup_size;
  const uint32_t size = caps.subgroup_size;
  return fixed && size >= 4 && size <= 32 && (size & (size - 1)) == 0 ? size : 0;
}

// Rows of a reduction-archetype node: how many independent reductions it performs.
uint64_t reduction_rows(const Graph& graph, const Node& node) {
  const Shape& in = graph.node(node.inputs[0]).shape;
  switch (node.op) {
    case Op::sum: case Op::mean: case Op::max: case Op::argmax: case Op::softmax: case Op::log_softmax:
    case Op::softmax_grad: case Op::log_softmax_grad: {
      const int64_t axis = node.attrs.axis;
      return static_cast<uint64_t>(num_elements(in) / std::max<int64_t>(in.empty() ? 1 : in[axis], 1));
    }
    case Op::layer_norm: case Op::layer_norm_grad: case Op::rms_norm: case Op::rms_norm_grad:
    case Op::cross_entropy_grad:
      return static_cast<uint64_t>(num_elements(in) / std::max<int64_t>(in.empty() ? 1 : in.back(), 1));
    default:
      return 1;  // losses and full reductions: one workgroup
  }
}

}  // namespace

uint32_t reduction_row_split(const Graph& graph, const Node& node) {
  const bool all = node.op == Op::sum_all || node.op == Op::mean_all;
  if (!all && node.op != Op::sum && node.op != Op::mean && node.op != Op::max && node.op != Op::argmax) return 1;
  const Shape& in = graph.node(node.inputs[0]).shape;
  if (in.empty()) return 1;
  const int64_t length = all ? num_elements(in) : in[node.attrs.axis];
  const int64_t rows = num_elements(in) / std::max<int64_t>(length, 1);
  if (rows > 64 || length < 8 * static_cast<int64_t>(reduction_span)) return 1;
  return static_cast<uint32_t>(std::min<uint64_t>((static_cast<uint64_t>(length) + reduction_span - 1) / reduction_span, 1024));
}

bool cross_entropy_loss_by_rows(const Graph& graph, const Node& node) {
  return node.op == Op::cross_entropy_loss && graph.node(node.inputs[0]).shape.size() == 2 &&
         graph.node(node.inputs[0]).shape[1] > 64;
}

bool reduces_rows_serially(const Graph& graph, const Node& node) {
  if (node.op != Op::sum && node.op != Op::mean && node.op != Op::max) return false;
  const Shape& in = graph.node(node.inputs[0]).shape;
  if (in.empty()) return false;
  const int64_t length = in[node.attrs.axis];
  const bool last_axis = static_cast<size_t>(node.attrs.axis) + 1 == in.size();
  const int64_t rows = num_elements(in) / std::max<int64_t>(length, 1);
  // A workgroup per row would leave most invocations idle and pay its tree reduction's barriers;
  // along the last axis each invocation walks a contiguous run, so only short rows qualify.
  // From 1024 rows of up to 256 terms (an MLP's bias gradients over a batch of 256) the serial
  // form is slower alone (5.8 -> 7.5 µs on an H100) but takes 4 workgroups instead of 1024 from
  // the products running beside it: mlp_large_step 0.1505 -> 0.1470 ms.
  if (rows >= 1024 && !last_axis && length <= 256) return true;
  return rows >= 2048 && length <= (last_axis ? 64 : 1024);
}

namespace {

void set_dispatch(const Graph& graph, const DeviceCaps& caps, Kernel& kernel) {
  const Node& root = graph.node(kernel.root);
  switch (kernel.archetype) {
    case Archetype::pointwise:
    case Archetype::gather: {
      const uint32_t local = elementwise_local_size(caps);
      kernel.local_size = {local, 1, 1};
      const Shape& covered = root.op == Op::kv_cache_write ? graph.node(root.inputs[1]).shape : root.shape;
      kernel.work_items = static_cast<uint64_t>(num_elements(covered));
      kernel.workgroups = spread(ceil_div(kernel.work_items, local), caps);
      break;
    }
    case Archetype::reduction: {
      const Node& anchor = graph.node(kernel.anchor);
      kernel.work_items = reduction_rows(graph, anchor);
      if (reduces_rows_serially(graph, anchor)) {
        // Many short rows: one invocation per row; neighbouring invocations read neighbouring
        // addresses when the reduced axis is not the last.
        const uint32_t local = elementwise_local_size(caps);
        kernel.local_size = {local, 1, 1};
        kernel.register_tile = {local, 1};
        kernel.workgroups = spread(ceil_div(kernel.work_items, local), caps);
        break;
      }
      const uint32_t local = std::max<uint32_t>(caps.subgroup_size, elementwise_local_size(caps) / 2);
      kernel.local_size = {floor_pow2(std::min(local, caps.max_workgroup_invocations)), 1, 1};
      if (const uint32_t split = reduction_row_split(graph, anchor); split > 1) {
        // A greedy decoder's argmax over 49152 logits took 47 µs as one workgroup on an H100.
        kernel.arrival_counters = static_cast<uint32_t>(kernel.work_items);
        kernel.partial_floats = 2 * kernel.work_items * split;  // a value (and an index) per workgroup
        kernel.work_items *= split;
      }
      if (cross_entropy_loss_by_rows(graph, anchor)) {
        // A workgroup per row, the last to finish adds the rows' losses (one workgroup walking
        // 512 rows of 49152 logits took 35 ms of a 72 ms SmolLM2-135M training step on an H100).
        kernel.work_items = static_cast<uint64_t>(graph.node(anchor.inputs[0]).shape[0]);
        kernel.arrival_counters = 1;
        kernel.partial_floats = 2 * kernel.work_items;  // each row's loss and whether it counts
      }
      kernel.workgroups = spread(kernel.work_items, caps);
      break;
    }
    case Archetype::matmul: {
      const Node& mm = graph.node(kernel.anchor);
      const Shape& out = mm.shape;
      const int64_t m = out[out.size() - 2], n = out.back();
      const int64_t batch = num_elements(out) / (m * n);
      // GEMV (one row times weights stored [N, K], as a decode step's linear layers): 32
      // invocations per output column read its weight row with contiguous loads and add up their
      // partial sums, so every weight is read once, coalesced, instead of by a 16×16 tile of which
      // one row of invocations would work.
      // With subgroup sums on a device whose subgroups have one fixed size of at most 32, a column's
      // lanes are one subgroup and add up with subgroupAdd instead of a shared-memory tree and its
      // five barriers (register_tile: lanes per column, 1 when they sum as a subgroup).
      const uint32_t gemv_local = std::min<uint32_t>(256, floor_pow2(caps.max_workgroup_invocations));
      const bool subgroup_sum = summing_subgroup(caps) > 0;
      const uint32_t lanes = subgroup_sum ? caps.subgroup_size : 32;
      // A product rotating its rows into a cache takes 64×64 tiles, which hold whole heads.
      const bool rotates = rotated_cache_store(graph, kernel) >= 0;
      if (m == 1 && !rotates && mm.attrs.transpose_b && gemv_local >= 32 && caps.max_workgroup_size[0] >= gemv_local &&
          ceil_div(static_cast<uint64_t>(n), gemv_local / lanes) <= caps.max_compute_workgroup_count[0] &&
          static_cast<uint64_t>(batch) <= caps.max_compute_workgroup_count[2]) {
        kernel.local_size = {gemv_local, 1, 1};
        kernel.register_tile = {lanes, subgroup_sum ? 1u : 0u};
        kernel.workgroups = {ceil_div(static_cast<uint64_t>(n), gemv_local / lanes), 1, static_cast<uint32_t>(batch)};
        break;
      }
      // The tiled forms compute a fused RMSNorm of their rows (grouping.h: normalizes_product_rows),
      // no other operand.
      const bool normalizes = std::binary_search(kernel.nodes.begin(), kernel.nodes.end(), mm.inputs[0]);
      if (normalizes && graph.node(mm.inputs[0]).op != Op::rms_norm) {
        throw Error("compile: " + format_shape(out) + " product of a computed operand needs the GEMV form, which "
                    "this device's workgroup limits do not allow; compile without fusion");
      }
      // 16x16 threads when the device allows, else 8x8; 4x4 outputs per thread for big enough
      // matrices when the tiles fit in shared memory (two tiles of (16·register·side) floats).
      const uint32_t side = caps.max_workgroup_invocations >= 256 && caps.max_workgroup_size[0] >= 16 &&
                                    caps.max_workgroup_size[1] >= 16
                                ? 16u
                                : 8u;
      uint32_t reg = (m >= 64 && n >= 64) ? 4u : 1u;
      const Shape& a_shape = graph.node(mm.inputs[0]).shape;
      const uint64_t k = static_cast<uint64_t>(mm.attrs.transpose_a ? a_shape[a_shape.size() - 2] : a_shape.back());
      // Fewer than 64 tiles of 64×64 leave most of a large GPU idle. With K long enough to split
      // (128 terms or more, below) split-K fills it and the prefetching 64×64 tiles stay (SmolLM2's
      // 128-token prefill, 18 tiles per product: 5.86 -> 4.91 ms on an H100 against 32×32 tiles);
      // with a shorter K, 2×2 outputs per invocation quadruple the workgroups instead.
      const uint64_t tiles64 = static_cast<uint64_t>((m + 63) / 64) * static_cast<uint64_t>((n + 63) / 64) *
                               static_cast<uint64_t>(batch);
      if (side == 16 && reg == 4 && tiles64 < 64 && k < 128) reg = 2u;
      // A short K (< 64: a classifier's gradient back through its few classes) leaves nothing to
      // split and little to compute per output: the product is bound by its stores and by how many
      // workgroups share them, so 32×32 tiles up to 256 of 64×64 (an H100 MLP step 0.166 -> 0.163 ms
      // for 256×1024 outputs over K = 10).
      if (side == 16 && reg == 4 && k < 64 && tiles64 < 256) reg = 2u;
      while (reg > 1 && 2ull * 16 * side * reg * 4 > caps.max_shared_memory_bytes) reg /= 2;
      // Large products: 128×128 tiles of 8×8 outputs per invocation (codegen/matmul_wide.cpp, two
      // shared stages of 8×128 floats per operand) where they still make 256 workgroups.
      const uint64_t wide_tiles = static_cast<uint64_t>((m + 127) / 128) * static_cast<uint64_t>((n + 127) / 128) *
                                  static_cast<uint64_t>(batch);
      if (side == 16 && wide_tiles >= 256 && caps.max_shared_memory_bytes >= 2ull * 2 * 8 * 33 * 16) reg = 8u;
      // A paired product: 128 rows × 64 columns of each product per workgroup, the 8×8 form's
      // columns split between the two weights.
      if (kernel.partner >= 0) reg = 8u;
      if (rotates) reg = 4u;
      kernel.local_size = {side, side, 1};
      kernel.register_tile = {reg, reg};
      const uint64_t tile = static_cast<uint64_t>(side) * reg;
      const uint64_t tile_columns = kernel.partner >= 0 ? tile / 2 : tile;
      kernel.workgroups = {ceil_div(static_cast<uint64_t>(n), tile_columns), ceil_div(static_cast<uint64_t>(m), tile),
                           static_cast<uint32_t>(batch)};
      if (kernel.workgroups[0] > caps.max_compute_workgroup_count[0] ||
          kernel.workgroups[1] > caps.max_compute_workgroup_count[1] ||
          kernel.workgroups[2] > caps.max_compute_workgroup_count[2]) {
        throw Error("compile: matmul " + format_shape(out) + " needs more workgroups than the device allows");
      }
      // Fewer than 128 output tiles with a long K (an MLP's 256-row layers, a classifier's few
      // columns): split K so that about 512 workgroups share the product, each summing at least 64
      // terms. On an H100 a 256×1024×1024 product took 75 µs as 64 tiles; the MLP step of such
      // layers went 0.325 -> 0.183 ms aiming at 256 workgroups, 0.175 ms at 512 (splitting 208
      // tiles in two instead made it slower, 0.197 ms).
      const uint64_t tiles = static_cast<uint64_t>(kernel.workgroups[0]) * kernel.workgroups[1] * kernel.workgroups[2];
      if (tiles < 128) {
        const uint64_t wanted = ceil_div(512, tiles), longest = k / 64;
        uint32_t split = static_cast<uint32_t>(std::min<uint64_t>(wanted, longest));
        // K too short for that many workgroups (a prefill's 128-row products): the most terms any
        // compute unit sums decides the time, not the count, so the split that spreads whole
        // waves evenly. An H100 prefill went 4.26 -> 3.93 ms (9 -> 7 splits of its 576-wide
        // products, 9 -> 8 for gate and up, 24 -> 22 for down); MLP layers that reach 512 are
        // faster as they are (0.151 -> 0.186 ms balanced), and so are the small tiles of few rows
        // (mlp_small_step 0.0250 -> 0.0258 ms balanced): many small workgroups share a unit well.
        if (wanted > longest && caps.compute_units > 0 && reg >= 4) {
          split = balanced_split_k(tiles, k, longest, caps.compute_units, split_k_granularity(kernel));
        }
        if (split > 1) split = ceil_div(k, split_k_span(k, split, split_k_granularity(kernel)));
        if (split > 1 && static_cast<uint64_t>(kernel.workgroups[2]) * split <= caps.max_compute_workgroup_count[2]) {
          kernel.split_k = split;
          kernel.workgroups[2] *= split;
          kernel.arrival_counters = static_cast<uint32_t>(tiles);
          // A normalizing kernel's parts also carry the sums of squares of their rows (one per row
          // of each invocation's outputs).
          kernel.partial_floats = tiles * split * (tile * tile + (normalizes ? side * side * reg : 0));
        }
      }
      break;
    }
    case Archetype::attention:
    case Archetype::conv:
    case Archetype::nn:
      set_op_kernel_dispatch(graph, caps, kernel);
      break;
    case Archetype::classifier: {
      // Whole rows per workgroup (codegen/classifier.cpp): one row each while that still makes
      // fewer than 128 workgroups, else more, as long as rows × classes partial sums per
      // invocation stay within classifier_max_classes (the workgroup's shared memory holds them all).
      const Shape& logits = graph.node(graph.node(kernel.anchor).inputs[0]).shape;
      const uint64_t m = static_cast<uint64_t>(logits[0]), classes = static_cast<uint64_t>(logits[1]);
      uint32_t local = elementwise_local_size(caps);
      while (local > 32 && (classes + 1) * local * 4 > caps.max_shared_memory_bytes) local /= 2;
      uint64_t rows = std::clamp<uint64_t>(m / 128, 1, static_cast<uint64_t>(classifier_max_classes) / classes);
      while (rows > 1 && (rows * classes + 1) * local * 4 > caps.max_shared_memory_bytes) --rows;
      kernel.local_size = {local, 1, 1};
      // register_tile[1]: the subgroup size when the partial sums meet through subgroupAdd first
      // (one barrier instead of a tree's eight), else 0.
      const uint32_t subgroup = summing_subgroup(caps);
      kernel.register_tile = {static_cast<uint32_t>(rows), local % std::max<uint32_t>(subgroup, 1) == 0 ? subgroup : 0};
      kernel.work_items = m;
      kernel.workgroups = spread(ceil_div(m, rows), caps);
      const bool has_loss = std::any_of(kernel.nodes.begin(), kernel.nodes.end(), [&](int32_t id) {
        return graph.node(id).op == Op::cross_entropy_loss;
      });
      if (has_loss) {
        // Each row's loss and whether it counts; the last workgroup to finish adds them in row order.
        kernel.arrival_counters = 1;
        kernel.partial_floats = 2 * m;
      }
      break;
    }
  }
}

std::string make_label(const Graph& graph, const Kernel& kernel) {
  std::string ops, names;
  for (int32_t id : kernel.nodes) {
    const Node& node = graph.node(id);
    if (!ops.empty()) ops += "+";
    ops += op_name(node.op);
    if (!node.name.empty()) names += (names.empty() ? "" : ", ") + node.name;
  }
  return names.empty() ? ops : ops + " (" + names + ")";
}

// A slice whose elements are one contiguous run of its input (every axis before the sliced one has
// extent 1) starting at a multiple of `alignment` bytes: its byte offset into the input.
std::optional<uint64_t> contiguous_slice_offset(const Graph& graph, const Node& node, uint64_t alignment) {
  const Shape& in = graph.node(node.inputs[0]).shape;
  const size_t axis = static_cast<size_t>(node.attrs.axis);
  if (axis >= in.size() || node.attrs.ints.size() != 2) return std::nullopt;
  int64_t outer = 1, inner = 1;
  for (size_t i = 0; i < axis; ++i) outer *= in[i];
  for (size_t i = axis + 1; i < in.size(); ++i) inner *= in[i];
  const uint64_t offset = static_cast<uint64_t>(node.attrs.ints[0] * inner) * 4;
  if (outer != 1 || offset % alignment != 0) return std::nullopt;
  return offset;
}

}  // namespace

Plan compile(const Graph& graph, const DeviceCaps& caps, const CompileOptions& options) {
  Plan plan;
  plan.graph = graph;
  const auto& nodes = graph.nodes();
  const int32_t count = static_cast<int32_t>(nodes.size());
  const bool inference = options.purpose == Purpose::inference;
  std::vector<Group> groups = group_nodes(graph, options.keep, options.fuse, inference, runs_rotating_tiles(caps));
  // A device without the paired form computes the partner in a kernel of its own, before.
  if (!runs_paired_products(caps)) {
    std::vector<Group> unpaired;
    for (Group& group : groups) {
      if (group.partner >= 0) {
        Group alone;
        alone.archetype = Archetype::matmul;
        alone.root = alone.anchor = group.partner;
        alone.nodes = {group.partner};
        // A norm of the shared rows (grouping.h: normalizes_product_rows) is computed by both.
        const int32_t rows = nodes[group.partner].inputs[0];
        if (std::binary_search(group.nodes.begin(), group.nodes.end(), rows)) alone.nodes.insert(alone.nodes.begin(), rows);
        group.nodes.erase(std::find(group.nodes.begin(), group.nodes.end(), group.partner));
        group.partner = -1;
        unpaired.push_back(std::move(alone));
      }
      unpaired.push_back(std::move(group));
    }
    groups = std::move(unpaired);
  }
  // The cooperative form (f16 weights on a device that runs it) does not normalize its rows: an
  // RMSNorm read by products that would take it keeps a kernel of its own (GEMVs still fold theirs).
  if (inference && options.weight_storage == DType::f16 && device_runs_cooperative_matmul(caps)) {
    std::set<int32_t> separate;
    for (const Group& group : groups) {
      if (group.archetype != Archetype::matmul || group.partner >= 0) continue;  // paired: scalar
      const Node& mm = nodes[group.anchor];
      const int32_t rows = mm.inputs[0];
      const int64_t m = mm.shape.size() >= 2 ? mm.shape[mm.shape.size() - 2] : 1, n = mm.shape.back();
      if (nodes[rows].op == Op::rms_norm && m >= 16 &&
          cooperative_tiles_fill_device(m, n, num_elements(mm.shape) / (m * n), caps) &&
          std::binary_search(group.nodes.begin(), group.nodes.end(), rows)) {
        separate.insert(rows);
      }
    }
    for (Group& group : groups) {
      std::erase_if(group.nodes, [&](int32_t id) { return separate.count(id) > 0 && id != group.anchor; });
    }
    for (int32_t norm : separate) {
      Group alone;
      alone.archetype = Archetype::reduction;
      alone.root = alone.anchor = norm;
      alone.nodes = {norm};
      groups.push_back(std::move(alone));
    }
    std::sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) { return a.position() < b.position(); });
  }
  std::vector<int32_t> persistent(graph.outputs().begin(), graph.outputs().end());
  persistent.insert(persistent.end(), options.keep.begin(), options.keep.end());
  const uint64_t alignment = std::max<uint64_t>(caps.min_storage_buffer_offset_alignment, 16);

  // Alias chains resolve to the node that owns the storage; a slice that is one aligned contiguous
  // run of a computed value (a row of a wider product) is an alias at an offset, not a copy.
  std::vector<int32_t> owner(count);
  std::vector<uint64_t> alias_offset(count, 0);
  std::vector<bool> narrowed(count, false);  // an alias to part of its owner
  std::vector<bool> slice_view(count, false);
  for (const Group& group : groups) {
    const Node& node = nodes[group.root];
    if (options.fuse && group.nodes.size() == 1 && node.op == Op::slice &&
        std::find(persistent.begin(), persistent.end(), group.root) == persistent.end() &&
        contiguous_slice_offset(graph, node, alignment)) {
      slice_view[group.root] = true;
    }
  }
  for (int32_t id = 0; id < count; ++id) {
    const Node& node = nodes[id];
    if (slice_view[id] && op_category(nodes[owner[node.inputs[0]]].op) == OpCategory::leaf) slice_view[id] = false;
    if (slice_view[id]) {
      owner[id] = owner[node.inputs[0]];
      alias_offset[id] = alias_offset[node.inputs[0]] + *contiguous_slice_offset(graph, node, alignment);
      narrowed[id] = true;
      continue;
    }
    // kv_cache_write updates its cache in place: its value lives in the cache's buffer.
    owner[id] = is_alias(graph, node, inference) || node.op == Op::kv_cache_write ? owner[node.inputs[0]] : id;
    if (owner[id] != id) {
      alias_offset[id] = alias_offset[node.inputs[0]];
      narrowed[id] = narrowed[node.inputs[0]];
    }
    if (node.op == Op::kv_cache_write && nodes[owner[id]].op != Op::input) {
      throw Error("compile: kv_cache_write needs its cache to be a graph input (persistent state), got " +
                  std::string(op_name(nodes[owner[id]].op)) + " " + format_shape(nodes[owner[id]].shape));
    }
  }

  // Buffers of their own: leaves, outputs and kept values (also when reached through an alias).
  std::vector<int32_t> own_buffer(count, -1);
  auto add_buffer = [&](BufferKind kind, int32_t node, const std::string& name) {
    own_buffer[node] = static_cast<int32_t>(plan.buffers.size());
    plan.buffers.push_back({kind, name, node, tensor_bytes(nodes[node].shape)});
  };
  std::set<int32_t> caches;
  for (int32_t id = 0; id < count; ++id) {
    if (nodes[id].op == Op::kv_cache_write) caches.insert(owner[id]);
  }
  for (int32_t id = 0; id < count; ++id) {
    const Node& node = nodes[id];
    if (node.op == Op::input) add_buffer(caches.count(id) ? BufferKind::state : BufferKind::input, id, node.name);
    if (node.op == Op::parameter) add_buffer(BufferKind::parameter, id, node.name);
    if (node.op == Op::constant || node.op == Op::scalar) add_buffer(BufferKind::constant, id, node.name);
  }
  for (int32_t id : persistent) {
    const int32_t root = owner[id];
    if (own_buffer[root] < 0) add_buffer(BufferKind::output, root, nodes[id].name);
  }
  groups.erase(std::remove_if(groups.begin(), groups.end(), [&](const Group& g) { return slice_view[g.root]; }),
               groups.end());
  // Inference: independent kernels side by side, one stage for each depth (SmolLM2's prefill: 456
  // -> 396 barriers). Training keeps the grouping's order: there it leaves each weight gradient in
  // the last stage, after every read of the weight, where the update can fold in (runtime/fused_update.h).
  if (inference) order_by_depth(graph, groups, owner);
  // Inference: kernels computed from parameters and constants alone (weights stacked for a wider
  // matmul) are derived copies with buffers of their own, run when the parameters change.
  std::vector<bool> derived(count, false);
  if (inference) {
    for (int32_t id = 0; id < count; ++id) {
      const Node& node = nodes[id];
      derived[id] = node.op == Op::parameter || node.op == Op::constant || node.op == Op::scalar ||
                    (!node.inputs.empty() && op_category(node.op) != OpCategory::leaf &&
                     std::all_of(node.inputs.begin(), node.inputs.end(), [&](int32_t in) { return derived[in]; }));
    }
    for (const Group& group : groups) {
      const int32_t root = owner[group.root];
      if (derived[group.root] && own_buffer[root] < 0) add_buffer(BufferKind::derived, root, nodes[group.root].name);
    }
  }
  plan.arena_buffer = static_cast<uint32_t>(plan.buffers.size());
  plan.buffers.push_back({BufferKind::arena, "", -1, 0});

  // Kernels, and the lifetimes of arena values (owner node → [first, last] kernel).
  std::map<int32_t, Lifetime> lifetimes;
  for (const Group& group : groups) {
    Kernel kernel;
    kernel.archetype = group.archetype;
    kernel.nodes = group.nodes;
    kernel.root = group.root;
    kernel.anchor = group.anchor;
    kernel.extra_outputs = group.extra_roots;
    kernel.partner = group.partner;
    const std::set<int32_t> members(group.nodes.begin(), group.nodes.end());
    for (int32_t id : group.nodes) {
      for (int32_t input : nodes[id].inputs) {
        // Expressions inline scalars as literals; gather kernels index their inputs directly.
        if (members.count(input) || (nodes[input].op == Op::scalar && group.archetype != Archetype::gather)) continue;
        // A cache write's cache is written, not read; an attention the write joined reads the rows
        // before the new ones through it (compile/grouping.h).
        if (nodes[id].op == Op::kv_cache_write && input == nodes[id].inputs[0] &&
            group.archetype != Archetype::attention) {
          continue;
        }
        if (std::find(kernel.inputs.begin(), kernel.inputs.end(), input) == kernel.inputs.end()) {
          kernel.inputs.push_back(input);
        }
      }
    }
    const int position = static_cast<int>(plan.kernels.size());
    for (int32_t input : kernel.inputs) {
      auto it = lifetimes.find(owner[input]);
      if (it != lifetimes.end()) it->second.last = position;
    }
    if (own_buffer[owner[group.root]] < 0) {
      lifetimes[group.root] = {tensor_bytes(nodes[group.root].shape), position, position};
    }
    for (int32_t extra : group.extra_roots) {
      if (own_buffer[owner[extra]] < 0) lifetimes[extra] = {tensor_bytes(nodes[extra].shape), position, position};
    }
    kernel.refresh = derived[group.root];
    set_dispatch(graph, caps, kernel);
    kernel.store_function = head_split_store(graph, kernel);
    kernel.label = make_label(graph, kernel);
    plan.kernels.push_back(std::move(kernel));
  }

  // Kernels with arrival counters: partial results in the arena for the kernel's own duration, the
  // counters in the workspace buffer (each kernel its own range: kernels of one stage run together).
  std::vector<Lifetime> partial_lifetimes;
  std::vector<Storage> arrivals;
  uint64_t workspace_bytes = 0;
  for (size_t k = 0; k < plan.kernels.size(); ++k) {
    const Kernel& kernel = plan.kernels[k];
    if (kernel.arrival_counters == 0) continue;
    partial_lifetimes.push_back({kernel.partial_floats * 4, static_cast<int>(k), static_cast<int>(k)});
    const uint64_t counters = static_cast<uint64_t>(kernel.arrival_counters) * 4;
    arrivals.push_back({0, workspace_bytes, counters});
    workspace_bytes += (counters + alignment - 1) / alignment * alignment;
  }

  // Arena placement, each lifetime widened to the runs of independent kernels it begins and ends
  // in, so that kernels which could share a stage never share space.
  std::vector<std::vector<int32_t>> kernel_reads, kernel_writes;
  for (const Kernel& kernel : plan.kernels) {
    std::vector<int32_t> reads, writes = {owner[kernel.root]};
    for (int32_t input : kernel.inputs) reads.push_back(owner[input]);
    for (int32_t extra : kernel.extra_outputs) writes.push_back(owner[extra]);
    kernel_reads.push_back(std::move(reads));
    kernel_writes.push_back(std::move(writes));
  }
  const std::vector<IndependentRun> runs = independent_runs(kernel_reads, kernel_writes);
  std::vector<int32_t> arena_nodes;
  std::vector<Lifetime> arena_lifetimes;
  for (const auto& [node, lifetime] : lifetimes) {
    arena_nodes.push_back(node);
    arena_lifetimes.push_back(lifetime);
  }
  arena_lifetimes.insert(arena_lifetimes.end(), partial_lifetimes.begin(), partial_lifetimes.end());
  for (Lifetime& lifetime : arena_lifetimes) {
    lifetime.first = runs[static_cast<size_t>(lifetime.first)].first;
    lifetime.last = runs[static_cast<size_t>(lifetime.last)].last;
  }
  const ArenaLayout layout = plan_arena(arena_lifetimes, alignment);
  plan.arena_bytes = layout.peak_bytes;
  plan.unshared_bytes = layout.total_bytes;
  plan.buffers[plan.arena_buffer].bytes = std::max<uint64_t>(layout.peak_bytes, 16);

  plan.storage.assign(count, Storage{});
  for (int32_t id = 0; id < count; ++id) {
    if (own_buffer[id] >= 0) {
      plan.storage[id] = {static_cast<uint32_t>(own_buffer[id]), 0, tensor_bytes(nodes[id].shape)};
    }
  }
  for (size_t i = 0; i < arena_nodes.size(); ++i) {
    plan.storage[arena_nodes[i]] = {plan.arena_buffer, layout.offsets[i], arena_lifetimes[i].bytes};
  }
  for (int32_t id = 0; id < count; ++id) {
    if (owner[id] == id) continue;
    plan.storage[id] = plan.storage[owner[id]];
    if (narrowed[id]) {
      plan.storage[id].offset += alias_offset[id];
      plan.storage[id].bytes = tensor_bytes(nodes[id].shape);
    }
  }

  // Bindings and barriers.
  uint32_t workspace_buffer = 0;
  if (workspace_bytes > 0) {
    workspace_buffer = static_cast<uint32_t>(plan.buffers.size());
    plan.buffers.push_back({BufferKind::workspace, "arrival counters", -1, workspace_bytes});
  }
  int arriving_kernels = 0;
  std::vector<KernelAccess> accesses;
  for (Kernel& kernel : plan.kernels) {
    KernelAccess access;
    for (int32_t input : kernel.inputs) {
      kernel.bindings.push_back(plan.storage[input]);
      access.reads.push_back({plan.storage[input].buffer, plan.storage[input].offset, plan.storage[input].bytes});
    }
    kernel.bindings.push_back(plan.storage[kernel.root]);
    for (int32_t extra : kernel.extra_outputs) kernel.bindings.push_back(plan.storage[extra]);
    if (kernel.arrival_counters > 0) {
      const size_t nth = static_cast<size_t>(arriving_kernels++);
      const size_t lifetime = arena_nodes.size() + nth;
      kernel.bindings.push_back({plan.arena_buffer, layout.offsets[lifetime], arena_lifetimes[lifetime].bytes});
      kernel.bindings.push_back(arrivals[nth]);
      kernel.bindings.back().buffer = workspace_buffer;
    }
    for (size_t b = kernel.inputs.size(); b < kernel.bindings.size(); ++b) {
      access.writes.push_back({kernel.bindings[b].buffer, kernel.bindings[b].offset, kernel.bindings[b].bytes});
    }
    accesses.push_back(std::move(access));
  }
  const std::vector<bool> barriers = place_barriers(accesses);
  for (size_t i = 0; i < plan.kernels.size(); ++i) plan.kernels[i].barrier_before = barriers[i];
  if (options.weight_storage != DType::f32 && !inference) {
    throw Error("compile: weights stored as " + std::string(dtype_name(options.weight_storage)) +
                " are for inference; train with f32 weights");
  }
  store_weights_16bit(plan, options.weight_storage);
  if (inference) store_f16_inputs_16bit(plan);
  select_cooperative_matmuls(plan, caps);
  return plan;
}

}  // namespace meganeura::compile
