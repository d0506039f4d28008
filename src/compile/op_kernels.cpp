#include "compile/op_kernels.h"

#include <algorithm>
#include <string>

#include "meganeura/error.h"

namespace meganeura::compile {

namespace {

uint32_t floor_pow2(uint64_t v) {
  uint32_t p = 1;
  while (p * 2ull <= v) p *= 2;
  return p;
}

uint32_t ceil_pow2(uint64_t v) {
  uint32_t p = 1;
  while (p < v) p *= 2;
  return p;
}

uint32_t ceil_div(uint64_t a, uint64_t b) { return static_cast<uint32_t>((a + b - 1) / b); }

// Workgroups over x, then y when x alone exceeds the device limit; shaders rebuild the linear index.
std::array<uint32_t, 3> spread(uint64_t groups, const DeviceCaps& caps, const Node& node) {
  const uint64_t max_x = caps.max_compute_workgroup_count[0];
  if (groups <= max_x) return {static_cast<uint32_t>(std::max<uint64_t>(groups, 1)), 1, 1};
  const uint64_t y = (groups + max_x - 1) / max_x;
  if (y > caps.max_compute_workgroup_count[1]) {
    throw Error("compile: " + std::string(op_name(node.op)) + " " + format_shape(node.shape) + " needs " +
                std::to_string(groups) + " workgroups, more than the device allows; split the tensor");
  }
  return {static_cast<uint32_t>((groups + y - 1) / y), static_cast<uint32_t>(y), 1};
}

uint32_t flat_local_size(const DeviceCaps& caps) {
  return std::max<uint32_t>(floor_pow2(std::min<uint32_t>({256u, caps.max_workgroup_invocations, caps.max_workgroup_size[0]})), 1);
}

// Floats of shared memory a kernel may use after `reserved` floats of its own bookkeeping.
uint64_t shared_floats(const DeviceCaps& caps, uint64_t reserved) {
  const uint64_t total = caps.max_shared_memory_bytes / 4;
  return total > reserved ? total - reserved : 0;
}

void set_attention(const Graph& graph, const DeviceCaps& caps, Kernel& kernel) {
  const Node& node = graph.node(kernel.anchor);  // the root may be a permute it stores through
  const bool has_v = node.op != Op::attention_lse;  // attention_lse reads q and k only
  const Shape& q = graph.node(node.inputs[0]).shape;
  const Shape& k = graph.node(node.inputs[1]).shape;
  const uint64_t B = q[0], Hq = q[1], S = q[2], D = q[3], Hkv = k[1], Skv = k[2];
  const uint64_t Dv = has_v ? static_cast<uint64_t>(graph.node(node.inputs[2]).shape[3]) : D;
  // Shared-memory rows are vec4 columns, an odd number of them (codegen/attention.cpp).
  auto padded = [](uint64_t n) { return 4 * (((n + 3) / 4) | 1); };
  const uint64_t row_floats = padded(D) + (has_v ? padded(Dv) : 0);
  auto too_wide = [&]() {
    return Error("compile: attention head dims " + std::to_string(D) + "+" + std::to_string(Dv) +
                 " do not fit the device's " + std::to_string(caps.max_shared_memory_bytes) +
                 " bytes of shared memory; use smaller heads");
  };
  if (node.op == Op::attention || node.op == Op::attention_lse || node.op == Op::attention_grad_q) {
    // Query rows per workgroup; lanes split each row's keys (at least four, many more for short
    // query blocks such as decoding).
    const uint32_t max_rows = std::min<uint32_t>(caps.max_workgroup_size[1], 32);
    uint32_t rows = std::min<uint32_t>(ceil_pow2(S), max_rows);
    // Too few workgroups for the device's compute units (a prefill's one sequence: 9 heads × 4
    // blocks of 32 rows): shorter blocks, each row's keys split over more lanes. An H100 prefill
    // 0.08 ms faster with 144 workgroups of 8 rows; a training batch has enough already.
    const uint32_t natural_rows = rows;
    while (rows > 8 && static_cast<uint64_t>(ceil_div(S, rows)) * B * Hq < caps.compute_units) rows /= 2;
    // Shortened blocks also take twice the lanes per row: the keys' dot products and the softmax,
    // not the loads, take most of a prefill's attention (timing-only variants on an H100: 19.1 µs,
    // 7.7 without the key loop), and 16 lanes a row made the prefill 0.1 ms faster than 8.
    const uint32_t forward_threads = rows < natural_rows ? 128 : 64;
    uint32_t lanes = node.op == Op::attention_grad_q ? std::max<uint32_t>(1, 128 / rows)
                                                      : std::max<uint32_t>(4, forward_threads / rows);
    lanes = std::min<uint32_t>(lanes, caps.max_workgroup_size[0]);
    while (rows * lanes > caps.max_workgroup_invocations && lanes > 1) lanes /= 2;
    while (rows * lanes > caps.max_workgroup_invocations && rows > 1) rows /= 2;
    // Reserved: the lanes' merge buffers (two floats and a vec4 per thread).
    const uint64_t budget = shared_floats(caps, 6ull * rows * lanes + 16);
    if (budget < row_floats) throw too_wide();
    // Shortened blocks also take 32-key tiles: a block's causal keys end in finer steps (H100
    // prefill 3.35 -> 3.27 ms; a decode step and training keep 64, 0.015 ms slower per step at 32).
    const uint32_t keys = std::min<uint32_t>(floor_pow2(budget / row_floats), rows < natural_rows ? 32 : 64);
    kernel.local_size = {lanes, rows, 1};
    kernel.register_tile = {keys, rows};
    kernel.work_items = B * Hq * S;
    kernel.workgroups = spread(static_cast<uint64_t>(ceil_div(S, rows)) * B * Hq, caps, node);
    return;
  }
  // dK, dV: `keys` keys × `parts` threads per key; the parts split the query rows of each tile of
  // `rows` rows that passes through shared memory, and sum their results at the end. Narrow key
  // tiles keep many workgroups in flight on long sequences.
  const uint32_t threads = flat_local_size(caps);
  const uint32_t keys = std::min<uint32_t>({ceil_pow2(Skv), 16u, threads});
  // Reserved: the parts' partial sums (one vec4 per thread).
  const uint64_t budget = shared_floats(caps, 4ull * threads + 16);
  if (budget < row_floats + 5) throw too_wide();
  // Per query row: its q and dO rows, its log-sum-exp and four partial sums of Δ.
  const uint32_t rows = std::min<uint32_t>(floor_pow2(budget / (row_floats + 5)), 64);
  const uint32_t parts = floor_pow2(std::min<uint64_t>({threads / keys, rows, caps.max_workgroup_size[1]}));
  kernel.local_size = {keys, parts, 1};
  kernel.register_tile = {keys, rows};
  kernel.work_items = B * Hkv * Skv;
  kernel.workgroups = spread(static_cast<uint64_t>(ceil_div(Skv, keys)) * B * Hkv, caps, node);
}

// The implicit GEMM each conv op is: rows M, columns N (per group), as codegen/conv.cpp lays it out.
std::array<uint64_t, 2> conv_gemm_size(const Graph& graph, const Node& node) {
  const int64_t groups = node.attrs.groups;
  switch (node.op) {
    case Op::conv2d: {
      const Shape& w = graph.node(node.inputs[1]).shape;
      return {static_cast<uint64_t>(w[0] / groups), static_cast<uint64_t>(node.shape[0] * node.shape[2] * node.shape[3])};
    }
    case Op::conv2d_grad_input: {
      const Shape& w = graph.node(node.inputs[1]).shape;
      return {static_cast<uint64_t>(w[1]), static_cast<uint64_t>(node.shape[0] * node.shape[2] * node.shape[3])};
    }
    default:  // conv2d_grad_weight
      return {static_cast<uint64_t>(node.shape[0] / groups),
              static_cast<uint64_t>(node.shape[1] * node.shape[2] * node.shape[3])};
  }
}

void set_conv(const Graph& graph, const DeviceCaps& caps, Kernel& kernel) {
  const Node& node = graph.node(kernel.root);
  if (node.op != Op::conv2d && node.op != Op::conv2d_grad_input && node.op != Op::conv2d_grad_weight) {
    // Pooling, upsampling, global average: one thread per element of the result.
    const uint32_t local = flat_local_size(caps);
    kernel.local_size = {local, 1, 1};
    kernel.work_items = static_cast<uint64_t>(num_elements(node.shape));
    kernel.workgroups = spread(ceil_div(kernel.work_items, local), caps, node);
    return;
  }
  const auto [m, n] = conv_gemm_size(graph, node);
  const uint32_t side = caps.max_workgroup_invocations >= 256 && caps.max_workgroup_size[0] >= 16 &&
                                caps.max_workgroup_size[1] >= 16
                            ? 16u
                            : 8u;
  uint32_t reg = (m >= 64 && n >= 64) ? 4u : (m >= 32 && n >= 32 ? 2u : 1u);
  while (reg > 1 && (2ull * 16 * side * reg + 16) * 4 > caps.max_shared_memory_bytes) reg /= 2;  // + a padding float per row
  // Large products: the 128×128 wide tile (codegen/matmul_wide.cpp) where it still makes 128
  // workgroups.
  const uint64_t wide_tiles = ((m + 127) / 128) * ((n + 127) / 128) * static_cast<uint64_t>(node.attrs.groups);
  if (side == 16 && m >= 128 && n >= 128 && wide_tiles >= 128 && caps.max_shared_memory_bytes >= 2ull * 2 * 8 * 33 * 16) {
    reg = 8u;
  }
  kernel.local_size = {side, side, 1};
  kernel.register_tile = {reg, reg};
  kernel.work_items = m * n * static_cast<uint64_t>(node.attrs.groups);
  const uint64_t tile = static_cast<uint64_t>(side) * reg;
  kernel.workgroups = {ceil_div(n, tile), ceil_div(m, tile), static_cast<uint32_t>(node.attrs.groups)};
  for (int axis = 0; axis < 3; ++axis) {
    if (kernel.workgroups[axis] > caps.max_compute_workgroup_count[axis]) {
      throw Error("compile: " + std::string(op_name(node.op)) + " " + format_shape(node.shape) +
                  " needs more workgroups than the device allows; split the batch");
    }
  }
}

void set_nn(const Graph& graph, const DeviceCaps& caps, Kernel& kernel) {
  const Node& node = graph.node(kernel.anchor);  // the root is a fused epilogue's last node
  const uint32_t local = flat_local_size(caps);
  kernel.local_size = {local, 1, 1};
  if (node.op == Op::top_k_top_p_mask) {
    // Thresholds come from reductions over the whole row, so every workgroup of a row finds them
    // (the same values) and writes its own run of 2048 mask entries: one workgroup writing a
    // vocabulary's 49152 took 46 µs of a greedy decode step on an H100, thresholds unused.
    const uint64_t parts = (static_cast<uint64_t>(node.shape.back()) + 2047) / 2048;
    kernel.register_tile = {static_cast<uint32_t>(parts), 1};
    kernel.work_items = static_cast<uint64_t>(num_elements(node.shape) / node.shape.back()) * parts;
    kernel.workgroups = spread(kernel.work_items, caps, node);
    return;
  }
  if (node.op == Op::group_norm || node.op == Op::group_norm_grad) {
    // One workgroup per (sample, group): its channels are contiguous in NCHW.
    kernel.work_items = static_cast<uint64_t>(node.shape[0] * node.attrs.groups);
    kernel.workgroups = spread(kernel.work_items, caps, node);
    return;
  }
  kernel.work_items = static_cast<uint64_t>(num_elements(node.shape));
  kernel.workgroups = spread(ceil_div(kernel.work_items, local), caps, node);
}

}  // namespace

bool has_op_kernel(Op op) {
  switch (op_category(op)) {
    case OpCategory::attention:
    case OpCategory::conv:
      return true;
    default:
      return op == Op::group_norm || op == Op::group_norm_grad || op == Op::rope || op == Op::rope_grad ||
             op == Op::top_k_top_p_mask;
  }
}

Archetype op_kernel_archetype(Op op) {
  if (!has_op_kernel(op)) throw Error(std::string("compile: op '") + op_name(op) + "' has no kernel of its own");
  switch (op_category(op)) {
    case OpCategory::attention: return Archetype::attention;
    case OpCategory::conv: return Archetype::conv;
    default: return Archetype::nn;
  }
}

void set_op_kernel_dispatch(const Graph& graph, const DeviceCaps& caps, Kernel& kernel) {
  switch (kernel.archetype) {
    case Archetype::attention: set_attention(graph, caps, kernel); return;
    case Archetype::conv: set_conv(graph, caps, kernel); return;
    case Archetype::nn: set_nn(graph, caps, kernel); return;
    default: break;
  }
  throw Error(std::string("compile: archetype ") + archetype_name(kernel.archetype) + " is not an op kernel");
}

}  // namespace meganeura::compile
