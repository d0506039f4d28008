// Fused attention kernels, flash-attention style: K/V (or Q/dO) tiles pass through shared memory,
// softmax runs online (running max and sum), and no S×Skv matrix is ever stored.
//
// - attention, attention_lse: a workgroup holds `rows` query rows × `lanes` threads per row; lanes
//   split the keys of a tile (the one-query decode form uses 1 row × 64 lanes) and merge their
//   partial softmax states at the end. attention_lse keeps only the state: max + log(sum).
// - the backward takes the row log-sum-exp (attention_lse) as an input, so every kernel forms
//   P = exp(s − lse) directly and visits the other sequence once; Δ_i = dO_i · O_i is formed where
//   needed from O and dO (one dot product per row, next to the row's tile loads).
// - attention_grad_q: `lanes` threads per query row split the keys; their partial dQ rows are summed
//   at the end.
// - attention_grad_k / _v: a workgroup owns `keys` keys × `parts` threads per key; each thread keeps
//   its key (and value) row in registers, the parts split the query rows of every head of the key's
//   group (tiles through shared memory), and their partial dK/dV rows are summed at the end.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "codegen/archetypes.h"
#include "codegen/glsl.h"
#include "codegen/op_inputs.h"
#include "codegen/rope.h"
#include "meganeura/error.h"

namespace meganeura::codegen {

namespace {

// Input positions: q, k, v, then (backward) out, dout, lse; attention_lse reads q and k only.
size_t fixed_inputs(Op op) { return op == Op::attention ? 3 : (op == Op::attention_lse ? 2 : 6); }

// Whether a cache write joined the attention kernel (its k or v is a kv_cache_write among its nodes).
bool writes_cache(const Graph& graph, const compile::Kernel& kernel, const Node& attention) {
  if (attention.op != Op::attention) return false;
  for (size_t slot : {size_t{1}, size_t{2}}) {
    const int32_t operand = attention.inputs[slot];
    if (graph.node(operand).op == Op::kv_cache_write && std::binary_search(kernel.nodes.begin(), kernel.nodes.end(), operand)) {
      return true;
    }
  }
  return false;
}

// Element d of new row `r` of a cache write's update at kv head h (batch b), rotated when a rope
// joined the write: a GLSL expression over b, h, r, d.
std::string update_element(const Graph& graph, const compile::Kernel& kernel, const Node& write) {
  const Shape& update = graph.node(write.inputs[1]).shape;
  const std::string rows = uint_literal(update[2]), width = uint_literal(update[3]), heads = uint_literal(update[1]);
  const std::string at = "((b * " + heads + " + h) * " + rows + " + r) * " + width;
  const int32_t source = write.inputs[1];
  if (!std::binary_search(kernel.nodes.begin(), kernel.nodes.end(), source)) {
    return "float(" + input_buffer(kernel, write, 1) + ".data[" + at + " + d])";
  }
  const Node& rope = graph.node(source);
  return "rope_written_" + std::to_string(source) + "(" + at + ", " + int_scalar_read(graph, kernel, rope, 1) +
         " + int(r), d)";
}

// A cache write joined to the attention (compile/grouping.h): rows [offset, offset + T) come from
// the update, the others from the cache as the step found it (bound read-only; the new rows go out
// through the write's own binding). `written_offset` is read once at the start of main.
std::string written_operand_loader(const Graph& graph, const compile::Kernel& kernel, int32_t operand,
                                   const std::string& name, const std::string& width) {
  const Node& write = graph.node(operand);
  const int64_t rows = graph.node(write.inputs[1]).shape[2];
  std::ostringstream out;
  if (std::binary_search(kernel.nodes.begin(), kernel.nodes.end(), write.inputs[1])) {
    const Node& rope = graph.node(write.inputs[1]);
    out << rope_element_function("rope_written_" + std::to_string(write.inputs[1]), input_buffer(kernel, rope, 0),
                                 rope.shape.back(), rope.attrs.theta, false);
  }
  out << "#define " << name << "_buffer " << input_buffer(kernel, write, 0) << "\n"
      << "#define " << name << "_written " << output_binding(kernel, operand) << "\n"
      << "float " << name << "_new(uint b, uint h, uint r, uint d) { return d < " << width << " ? "
      << update_element(graph, kernel, write) << " : 0.0; }\n"
      << "vec4 load_" << name << "4(uint b, uint h, uint row, uint c) {\n"
      << "  int r = int(row) - written_offset;\n"
      << "  if (written_offset >= 0 && r >= 0 && r < " << rows << ") {\n"
      << "    return vec4(" << name << "_new(b, h, uint(r), c * 4u), " << name << "_new(b, h, uint(r), c * 4u + 1u), "
      << name << "_new(b, h, uint(r), c * 4u + 2u), " << name << "_new(b, h, uint(r), c * 4u + 3u));\n"
      << "  }\n"
      << "  return READ4(" << name << "_buffer, " << name << "_at(b, h, row), c, " << width << ");\n}\n";
  return out.str();
}

// For each cache write joined to the attention: the first workgroup of each kv head (query tile 0
// of the first query head of its group) stores the new rows in the cache; positions past its end
// are dropped, as kv_cache_write drops them. Expects b, h, kvh, tile, local_index, R, L.
std::string cache_writes(const Graph& graph, const compile::Kernel& kernel, const Node& attention) {
  std::ostringstream out;
  if (writes_cache(graph, kernel, attention)) {
    out << "  written_offset = " << int_scalar_read(graph, kernel, attention, attention.inputs.size() - 1) << ";\n";
  }
  for (size_t slot : {size_t{1}, size_t{2}}) {
    const int32_t operand = attention.inputs[slot];
    if (graph.node(operand).op != Op::kv_cache_write ||
        !std::binary_search(kernel.nodes.begin(), kernel.nodes.end(), operand)) {
      continue;
    }
    const Node& write = graph.node(operand);
    const Shape& update = graph.node(write.inputs[1]).shape;
    const std::string name = slot == 1 ? "k" : "v", width = slot == 1 ? "D" : "DV";
    out << "  if (tile == 0u && h % GROUP == 0u) {\n"
        << "    for (uint e = local_index; e < " << uint_literal(update[2] * update[3]) << "; e += R * L) {\n"
        << "      uint r = e / " << width << ", d = e % " << width << ";\n"
        << "      int position = written_offset + int(r);\n"
        << "      if (written_offset >= 0 && position < int(SKV)) " << name << "_written.data[" << name
        << "_at(b, kvh, uint(position)) + d] = " << name << "_new(b, kvh, r, d);\n"
        << "    }\n  }\n";
  }
  return out.str();
}

// The binding slot of input `slot` of `node` when its rows (of `width`) can be read as vec4s
// (glsl.h: vec4_input_readable), else -1. One 16-byte load instead of four.
int vec4_slot(const compile::Kernel& kernel, const Node& node, size_t slot, int64_t width) {
  const auto it = std::find(kernel.inputs.begin(), kernel.inputs.end(), node.inputs[slot]);
  if (it == kernel.inputs.end() || width % 4 != 0) return -1;
  const auto binding = static_cast<size_t>(it - kernel.inputs.begin());
  return vec4_input_readable(kernel, binding) ? static_cast<int>(binding) : -1;
}

std::string vec4_view(int binding) { return binding < 0 ? "" : "in" + std::to_string(binding) + "v4"; }

// Declarations of the vec4 views of `bindings` (each once; -1 for none).
std::string vec4_views(const std::vector<int>& bindings) {
  std::ostringstream out;
  std::vector<int> declared;
  for (int binding : bindings) {
    if (binding < 0 || std::find(declared.begin(), declared.end(), binding) != declared.end()) continue;
    declared.push_back(binding);
    out << vec4_input_declaration(static_cast<size_t>(binding));
  }
  return out.str();
}

// `vec4 load_<name>4(uint b, uint h, uint row, uint c)`: columns 4c..4c+3 of a row of the operand at
// input position `slot` (q or k), zeros past the head dim. A rope fused into the kernel
// (compile/grouping.h) rotates the row as it is read, at the rope's own position offset plus the
// row index.
std::string operand_loader(const Graph& graph, const compile::Kernel& kernel, const Node& node, size_t slot,
                           const std::string& name, const std::string& width) {
  const int32_t operand = node.inputs[slot];
  const std::string head = "vec4 load_" + name + "4(uint b, uint h, uint row, uint c) { ";
  if (!std::binary_search(kernel.nodes.begin(), kernel.nodes.end(), operand)) {
    const std::string view = vec4_view(vec4_slot(kernel, node, slot, graph.node(operand).shape.back()));
    const std::string read = view.empty() ? "READ4(" + name + "_buffer, " + name + "_at(b, h, row), c, " + width + ")"
                                          : view + ".data[" + name + "_at(b, h, row) / 4u + c]";
    return "#define " + name + "_buffer " + input_buffer(kernel, node, slot) + "\n" + head + "return " + read + "; }\n";
  }
  if (graph.node(operand).op == Op::kv_cache_write) return written_operand_loader(graph, kernel, operand, name, width);
  const Node& rope = graph.node(operand);
  if (rope.op != Op::rope) {
    throw Error(std::string("codegen: attention fuses only a rope or a cache write into its operands, not ") +
                op_name(rope.op));
  }
  const std::string rotate = "rope_" + name;
  std::ostringstream out;
  out << rope_element_function(rotate, input_buffer(kernel, rope, 0), rope.shape.back(), rope.attrs.theta, false)
      << head << "uint at = " << name << "_at(b, h, row); int position = " << int_scalar_read(graph, kernel, rope, 1)
      << " + int(row); return vec4(";
  // Written out, not looped: lavapipe counts every loop iteration against one budget (see below).
  for (int e = 0; e < 4; ++e) {
    const std::string d = "c * 4u + " + std::to_string(e) + "u";
    out << (e ? ", " : "") << "(" << d << " < " << width << " ? " << rotate << "(at, position, " << d << ") : 0.0)";
  }
  out << "); }\n";
  return out.str();
}

// Constants and helpers every attention kernel shares: sizes, positions, the mask, operand loads.
std::string attention_prelude(const Graph& graph, const compile::Kernel& kernel, const Node& node) {
  const bool has_v = node.op != Op::attention_lse;
  const Shape& q = graph.node(node.inputs[0]).shape;
  const Shape& k = graph.node(node.inputs[1]).shape;
  const int64_t B = q[0], Hq = q[1], S = q[2], D = q[3], Hkv = k[1], Skv = k[2];
  const int64_t Dv = has_v ? graph.node(node.inputs[2]).shape[3] : D;
  if (Hkv == 0 || Hq % Hkv != 0) throw Error("codegen: attention with " + std::to_string(Hq) + " query heads and " +
                                             std::to_string(Hkv) + " kv heads; query heads must be a multiple");
  const double scale = node.attrs.scale != 0.0 ? node.attrs.scale : 1.0 / std::sqrt(static_cast<double>(D));
  const size_t fixed = fixed_inputs(node.op);
  int mask_input = -1, offset_input = -1;
  for (size_t j = fixed; j < node.inputs.size(); ++j) {
    if (graph.node(node.inputs[j]).dtype == DType::i32) {
      offset_input = static_cast<int>(j);
    } else {
      mask_input = static_cast<int>(j);
    }
  }
  std::ostringstream out;
  out << "const uint B = " << uint_literal(B) << ", HQ = " << uint_literal(Hq) << ", HKV = " << uint_literal(Hkv)
      << ", S = " << uint_literal(S) << ", SKV = " << uint_literal(Skv) << ", D = " << uint_literal(D)
      << ", DV = " << uint_literal(Dv) << ", GROUP = " << uint_literal(Hq / Hkv) << ";\n"
      << "const uint D4 = (D + 3u) / 4u, DV4 = (DV + 3u) / 4u;\n"
      << "// Row strides (in vec4) of shared tiles, odd: threads reading one column of different rows\n"
      << "// hit different banks.\n"
      << "const uint DP4 = D4 | 1u, DVP4 = DV4 | 1u;\n"
      << "// Four consecutive elements from column 4c of a row at `at` with n columns; zeros past n.\n"
      << "#define READ1(BUF, at, d, n) ((d) < (n) ? float(BUF.data[(at) + (d)]) : 0.0)\n"
      << "#define READ4(BUF, at, c, n) vec4(READ1(BUF, at, (c) * 4u, n), READ1(BUF, at, (c) * 4u + 1u, n), "
         "READ1(BUF, at, (c) * 4u + 2u, n), READ1(BUF, at, (c) * 4u + 3u, n))\n"
      << "// Stores the columns below n of a vec4 at column 4c of the result row at `at`.\n"
      << "#define STORE4(at, c, n, value) { vec4 v_ = (value); for (uint k_ = 0u; k_ < 4u; ++k_) "
         "if ((c) * 4u + k_ < (n)) result.data[(at) + (c) * 4u + k_] = v_[k_]; }\n"
      << "const float SCALE = " << float_literal(scale) << ";\n"
      << "// Scores at or below NEG are masked out (an additive -inf mask included).\n"
      << "const float NEG = -1.0e30;\n";
  const bool written_v = has_v && graph.node(node.inputs[2]).op == Op::kv_cache_write &&
                         std::binary_search(kernel.nodes.begin(), kernel.nodes.end(), node.inputs[2]);
  if (has_v && !written_v) out << "#define VB " << input_buffer(kernel, node, 2) << "\n";
  if (fixed == 6) {
    out << "#define OB " << input_buffer(kernel, node, 3) << "\n"
        << "#define DOB " << input_buffer(kernel, node, 4) << "\n"
        << "#define LSEB " << input_buffer(kernel, node, 5) << "\n";
  }
  if (writes_cache(graph, kernel, node)) out << "int written_offset;  // the cache writes' position, set in main\n";
  out << "uint q_at(uint b, uint h, uint i) { return ((b * HQ + h) * S + i) * D; }\n"
      << "uint k_at(uint b, uint h, uint j) { return ((b * HKV + h) * SKV + j) * D; }\n"
      << "uint v_at(uint b, uint h, uint j) { return ((b * HKV + h) * SKV + j) * DV; }\n"
      << "uint o_at(uint b, uint h, uint i) { return ((b * HQ + h) * S + i) * DV; }\n"
      // Where the kernel stores row i of head h: heads merged ([B, S, HQ, DV]) when it stores
      // through a permute (compile/grouping.h: merges_heads).
      << "uint out_at(uint b, uint h, uint i) { return "
      << (kernel.root != kernel.anchor ? "((b * S + i) * HQ + h) * DV" : "o_at(b, h, i)") << "; }\n"
      << "uint row_at(uint b, uint h, uint i) { return (b * HQ + h) * S + i; }\n";
  // The vec4 views the plain loaders read (declared once each: q, k and v may be one tensor).
  std::vector<int> views;
  for (size_t slot = 0; slot < (has_v ? 3u : 2u); ++slot) {
    if (!std::binary_search(kernel.nodes.begin(), kernel.nodes.end(), node.inputs[slot])) {
      views.push_back(vec4_slot(kernel, node, slot, graph.node(node.inputs[slot]).shape.back()));
    }
  }
  // The backward's O and dO rows likewise (read_o4, read_do4: vec4 column c of the row at `at`).
  if (fixed == 6) {
    const int o_slot = vec4_slot(kernel, node, 3, Dv), do_slot = vec4_slot(kernel, node, 4, Dv);
    const std::string o_view = vec4_view(o_slot), do_view = vec4_view(do_slot);
    views.push_back(o_slot);
    views.push_back(do_slot);
    out << "#define read_o4(at, c) " << (o_view.empty() ? "READ4(OB, at, c, DV)" : o_view + ".data[(at) / 4u + (c)]") << "\n"
        << "#define read_do4(at, c) " << (do_view.empty() ? "READ4(DOB, at, c, DV)" : do_view + ".data[(at) / 4u + (c)]")
        << "\n";
  }
  out << vec4_views(views) << operand_loader(graph, kernel, node, 0, "q", "D") << operand_loader(graph, kernel, node, 1, "k", "D");
  if (written_v) {
    out << written_operand_loader(graph, kernel, node.inputs[2], "v", "DV");
  } else if (has_v) {
    const std::string view = vec4_view(vec4_slot(kernel, node, 2, Dv));
    out << "vec4 load_v4(uint b, uint h, uint row, uint c) { return "
        << (view.empty() ? "READ4(VB, v_at(b, h, row), c, DV)" : view + ".data[v_at(b, h, row) / 4u + c]") << "; }\n";
  }
  // Query i sits at offset + i with a position offset (keys past offset + S are unwritten cache
  // slots), else at Skv − S + i (causal mask aligned to the end).
  if (offset_input >= 0) {
    const std::string offset = int_scalar_read(graph, kernel, node, static_cast<size_t>(offset_input));
    out << "int query_position(uint i) { return " << offset << " + int(i); }\n"
        << "int visible_end() { return clamp(" << offset << " + int(S), 0, int(SKV)); }\n";
  } else {
    out << "int query_position(uint i) { return int(SKV) - int(S) + int(i); }\n"
        << "int visible_end() { return int(SKV); }\n";
  }
  out << "// Keys [0, key_end(i)) are visible to query i; non-decreasing in i.\n"
      << "int key_end(uint i) { return "
      << (node.attrs.causal ? "clamp(query_position(i) + 1, 0, visible_end())" : "visible_end()") << "; }\n";
  if (mask_input >= 0) {
    const Shape& mask = graph.node(node.inputs[static_cast<size_t>(mask_input)]).shape;
    const Shape full{B, Hq, S, Skv};
    const auto strides = strides_of(mask);
    int64_t axis_stride[4] = {0, 0, 0, 0};
    const size_t shift = 4 - mask.size();
    for (size_t d = 0; d < mask.size(); ++d) {
      if (mask[d] != 1) axis_stride[d + shift] = strides[d];
    }
    out << "float mask_at(uint b, uint h, uint i, uint j) { return float("
        << input_buffer(kernel, node, static_cast<size_t>(mask_input)) << ".data[b * " << uint_literal(axis_stride[0])
        << " + h * " << uint_literal(axis_stride[1]) << " + i * " << uint_literal(axis_stride[2]) << " + j * "
        << uint_literal(axis_stride[3]) << "]); }\n";
  } else {
    out << "float mask_at(uint b, uint h, uint i, uint j) { return 0.0; }\n";
  }
  return out.str();
}

// The opening of main() for the kernels whose workgroups own `R` query rows × `L` lanes (forward
// and dQ): which tile, batch and heads the workgroup works on, each thread's query row i (qi: the
// row it loads, clamped for threads past S), the keys the row and the tile see, and the row's q,
// pre-scaled. With `staged` (lanes > 1, a key tile of at least R rows) the row's lanes load and
// rotate its q columns between them and share them through the key tile, which the key loop's
// first barrier then frees (each lane rotated the whole row: 16 or 64 times the sines and cosines).
std::string query_rows_main(bool staged) {
  return std::string("void main() {\n  uint wg = ") + linear_workgroup_index() + R"(;
  uint q_tiles = (S + R - 1u) / R;
  if (wg >= q_tiles * B * HQ) return;
  uint tile = wg % q_tiles, bh = wg / q_tiles;
  uint h = bh % HQ, b = bh / HQ, kvh = h / GROUP;
  uint lane = gl_LocalInvocationID.x, row = gl_LocalInvocationID.y, local_index = gl_LocalInvocationIndex;
  uint i = tile * R + row;
  bool valid = i < S;
  uint qi = min(i, S - 1u);
  int end_row = valid ? key_end(qi) : 0;
  int end_group = key_end(min(tile * R + R - 1u, S - 1u));
  vec4 q[D4];
)" + std::string(staged ? R"(  for (uint c = lane; c < D4; c += L) k_tile[row * DP4 + c] = load_q4(b, h, qi, c) * SCALE;
  barrier();
  [[unroll]] for (uint c = 0u; c < D4; ++c) q[c] = k_tile[row * DP4 + c];
)" : R"(  [[unroll]] for (uint c = 0u; c < D4; ++c) q[c] = load_q4(b, h, qi, c) * SCALE;
)");
}

// Head-dim loops run over vec4 columns: one shared-memory load feeds four multiply-adds (the
// kernels are bound by shared-memory loads otherwise), and the four lanes of a vec4 accumulator
// are independent chains. Columns past D (or DV) hold zeros.

// attention (with_values) and attention_lse (without): one pass over the keys with an online softmax.
// An attention kernel with a second output (compile/grouping.h) also stores the row lse there.
// vec4 columns of the lanes' output rows that fit the key tile at once when the forward merges
// them (0: the tile is too small; merge one column at a time through merge_v).
uint32_t merge_chunk(const Graph& graph, const compile::Kernel& kernel) {
  const Node& node = graph.node(kernel.anchor);
  const int64_t d = graph.node(node.inputs[0]).shape[3], dv = graph.node(node.inputs[2]).shape[3];
  const uint64_t d4 = static_cast<uint64_t>((d + 3) / 4), dv4 = static_cast<uint64_t>((dv + 3) / 4);
  const uint64_t tile_vec4s = static_cast<uint64_t>(kernel.register_tile[0]) * (d4 | 1);
  const uint64_t threads = static_cast<uint64_t>(kernel.local_size[0]) * kernel.local_size[1];
  return static_cast<uint32_t>(std::min<uint64_t>(dv4, tile_vec4s / threads));
}

std::string forward_body(const Graph& graph, const compile::Kernel& kernel, bool with_values) {
  const Node& node = graph.node(kernel.anchor);
  const auto lse_it = std::find_if(kernel.extra_outputs.begin(), kernel.extra_outputs.end(),
                                   [&](int32_t id) { return graph.node(id).op == Op::attention_lse; });
  const bool keeps_lse = with_values && lse_it != kernel.extra_outputs.end();
  const std::string lse_out = keeps_lse ? output_binding(kernel, *lse_it) : "";
  const uint32_t lanes = kernel.local_size[0], rows = kernel.local_size[1], keys = kernel.register_tile[0];
  std::ostringstream out;
  out << "const uint R = " << rows << "u, L = " << lanes << "u, BK = " << keys << "u;\n"
      << "shared vec4 k_tile[BK * DP4];\n"
      << (with_values ? "shared vec4 v_tile[BK * DVP4];\n" : "")
      << (with_values ? "shared vec4 merge_v[R * L];\n" : "")
      << R"(shared float merge_a[R * L];
shared float merge_b[R * L];

)" << query_rows_main(lanes > 1 && keys >= rows) << R"()";
  out << cache_writes(graph, kernel, node);
  if (with_values) {
    out << "  vec4 acc[DV4];\n  [[unroll]] for (uint c = 0u; c < DV4; ++c) acc[c] = vec4(0.0);\n";
  }
  out << R"(  float m = NEG, l = 0.0;
  // Tiles load only the keys some row of the workgroup sees (a decode step's few cached positions
  // of a long cache).
  for (int base = 0; base < end_group; base += int(BK)) {
    uint tile_keys = min(BK, uint(end_group - base));
    barrier();
    for (uint e = local_index; e < tile_keys * D4; e += R * L) {
      uint j = uint(base) + e / D4;
      k_tile[(e / D4) * DP4 + e % D4] = load_k4(b, kvh, j, e % D4);
    }
)";
  if (with_values) {
    out << R"(    for (uint e = local_index; e < tile_keys * DV4; e += R * L) {
      uint j = uint(base) + e / DV4;
      v_tile[(e / DV4) * DVP4 + e % DV4] = load_v4(b, kvh, j, e % DV4);
    }
)";
  }
  out << R"(    barrier();
    for (uint jj = lane; jj < BK; jj += L) {
      int j = base + int(jj);
      if (j >= end_row) break;
      vec4 dot4 = vec4(0.0);
      [[unroll]] for (uint c = 0u; c < D4; ++c) dot4 += q[c] * k_tile[jj * DP4 + c];
      float s = (dot4.x + dot4.y) + (dot4.z + dot4.w) + mask_at(b, h, i, uint(j));
      if (s <= NEG) continue;
)";
  // The running maximum rarely moves after the first keys, so the rescale is a rare branch and the
  // accumulation below it runs in step across the warp.
  if (with_values) {
    out << R"(      if (s > m) {
        float c = exp(m - s);
        l *= c;
        [[unroll]] for (uint k = 0u; k < DV4; ++k) acc[k] *= c;
        m = s;
      }
      float p = exp(s - m);
      l += p;
      [[unroll]] for (uint c = 0u; c < DV4; ++c) acc[c] += p * v_tile[jj * DVP4 + c];
)";
  } else {
    out << "      if (s > m) { l = l * exp(m - s) + 1.0; m = s; } else { l += exp(s - m); }\n";
  }
  out << "    }\n  }\n";
  // A row that sees no key gets lse = +inf, so that exp(s − lse) is 0 for every key.
  if (lanes == 1) {
    if (with_values) {
      out << R"(  if (!valid) return;
  float inv = l > 0.0 ? 1.0 / l : 0.0;
  [[unroll]] for (uint d = 0u; d < DV; ++d) result.data[out_at(b, h, i) + d] = acc[d / 4u][d % 4u] * inv;
)" << (keeps_lse ? "  " + lse_out + ".data[row_at(b, h, i)] = l > 0.0 ? m + log(l) : uintBitsToFloat(0x7f800000u);\n" : "")
          << "}\n";
    } else {
      out << R"(  if (!valid) return;
  result.data[row_at(b, h, i)] = l > 0.0 ? m + log(l) : uintBitsToFloat(0x7f800000u);
}
)";
    }
    return out.str();
  }
  out << R"(  // Merge the lanes' partial states: rescale each to the row's overall maximum.
  merge_a[row * L + lane] = m;
  barrier();
  float top = NEG;
  for (uint t = 0u; t < L; ++t) top = max(top, merge_a[row * L + t]);
  float weight = l > 0.0 ? exp(m - top) : 0.0;
  merge_b[row * L + lane] = l * weight;
  barrier();
  float total = 0.0;
  for (uint t = 0u; t < L; ++t) total += merge_b[row * L + t];
)";
  if (!with_values) {
    out << R"(  if (lane == 0u && valid) result.data[row_at(b, h, i)] = total > 0.0 ? top + log(total) : uintBitsToFloat(0x7f800000u);
}
)";
    return out.str();
  }
  if (keeps_lse) {
    out << "  if (lane == 0u && valid) " << lse_out << ".data[row_at(b, h, i)] = total > 0.0 ? top + log(total) : "
           "uintBitsToFloat(0x7f800000u);\n";
  }
  out << "  float inv = total > 0.0 ? 1.0 / total : 0.0;\n";
  // The lanes' output rows meet in the (now free) key tile, `chunk` vec4 columns per round, and the
  // lanes split the columns to add them up: one barrier pair per round instead of one per vec4
  // column with a single lane adding (a decode step's 64 lanes spent most of the kernel there).
  const uint32_t chunk = merge_chunk(graph, kernel);
  if (chunk > 0) {
    out << "  const uint CHUNK = " << chunk << "u;  // vec4 columns per round\n"
        << R"(  [[unroll]] for (uint c0 = 0u; c0 < DV4; c0 += CHUNK) {
    barrier();
    [[unroll]] for (uint c = 0u; c < CHUNK; ++c) {
      if (c0 + c < DV4) k_tile[(row * L + lane) * CHUNK + c] = acc[c0 + c] * weight;
    }
    barrier();
    for (uint e = lane; e < CHUNK * 4u; e += L) {
      uint d = c0 * 4u + e;
      float sum = 0.0;
      for (uint t = 0u; t < L; ++t) sum += k_tile[(row * L + t) * CHUNK + e / 4u][e % 4u];
      if (valid && d < DV) result.data[out_at(b, h, i) + d] = sum * inv;
    }
  }
}
)";
    return out.str();
  }
  out << R"(  [[unroll]] for (uint c = 0u; c < DV4; ++c) {
    barrier();
    merge_v[row * L + lane] = acc[c] * weight;
    barrier();
    if (lane == 0u && valid) {
      vec4 sum = vec4(0.0);
      for (uint t = 0u; t < L; ++t) sum += merge_v[row * L + t];
      STORE4(out_at(b, h, i), c, DV, sum * inv);
    }
  }
}
)";
  return out.str();
}

std::string grad_q_body(const compile::Kernel& kernel) {
  const uint32_t lanes = kernel.local_size[0], rows = kernel.local_size[1], keys = kernel.register_tile[0];
  std::ostringstream out;
  out << "const uint R = " << rows << "u, L = " << lanes << "u, BK = " << keys << "u;\n"
      << R"(shared vec4 k_tile[BK * DP4];
shared vec4 v_tile[BK * DVP4];
shared vec4 merge[R * L];

)" << query_rows_main(lanes > 1 && keys >= rows) << R"(  vec4 dout[DV4];
  vec4 delta4 = vec4(0.0);
  [[unroll]] for (uint c = 0u; c < DV4; ++c) {
    dout[c] = read_do4(o_at(b, h, qi), c);
    delta4 += dout[c] * read_o4(o_at(b, h, qi), c);
  }
  float delta = (delta4.x + delta4.y) + (delta4.z + delta4.w);
  float lse = LSEB.data[row_at(b, h, qi)];
  vec4 dq[D4];
  [[unroll]] for (uint c = 0u; c < D4; ++c) dq[c] = vec4(0.0);
  for (int base = 0; base < end_group; base += int(BK)) {
    barrier();
    for (uint e = local_index; e < BK * D4; e += R * L) {
      uint j = uint(base) + e / D4;
      k_tile[(e / D4) * DP4 + e % D4] = j < SKV ? load_k4(b, kvh, j, e % D4) : vec4(0.0);
    }
    for (uint e = local_index; e < BK * DV4; e += R * L) {
      uint j = uint(base) + e / DV4;
      v_tile[(e / DV4) * DVP4 + e % DV4] = j < SKV ? load_v4(b, kvh, j, e % DV4) : vec4(0.0);
    }
    barrier();
    for (uint jj = lane; jj < BK; jj += L) {
      int j = base + int(jj);
      if (j >= end_row) break;
      vec4 s4 = vec4(0.0);
      [[unroll]] for (uint c = 0u; c < D4; ++c) s4 += q[c] * k_tile[jj * DP4 + c];
      float s = (s4.x + s4.y) + (s4.z + s4.w) + mask_at(b, h, i, uint(j));
      if (s <= NEG) continue;
      float p = exp(s - lse);
      vec4 dp4 = vec4(0.0);
      [[unroll]] for (uint c = 0u; c < DV4; ++c) dp4 += dout[c] * v_tile[jj * DVP4 + c];
      float ds = p * (((dp4.x + dp4.y) + (dp4.z + dp4.w)) - delta);
      [[unroll]] for (uint c = 0u; c < D4; ++c) dq[c] += ds * k_tile[jj * DP4 + c];
    }
  }
)";
  if (lanes == 1) {
    out << R"(  if (!valid) return;
  [[unroll]] for (uint d = 0u; d < D; ++d) result.data[q_at(b, h, i) + d] = dq[d / 4u][d % 4u] * SCALE;
}
)";
  } else {
    out << R"(  // Sum the lanes' partial rows.
  [[unroll]] for (uint c = 0u; c < D4; ++c) {
    barrier();
    merge[row * L + lane] = dq[c];
    barrier();
    if (lane == 0u && valid) {
      vec4 sum = vec4(0.0);
      for (uint t = 0u; t < L; ++t) sum += merge[row * L + t];
      STORE4(q_at(b, h, i), c, D, sum * SCALE);
    }
  }
}
)";
  }
  return out.str();
}

std::string grad_kv_body(const compile::Kernel& kernel, bool grad_k) {
  const uint32_t keys = kernel.local_size[0], parts = kernel.local_size[1], rows = kernel.register_tile[1];
  std::ostringstream out;
  out << "const uint BK = " << keys << "u, P = " << parts << "u, BQ = " << rows << "u;\n"
      << "const uint OUT_D = " << (grad_k ? "D" : "DV") << ", OUT_D4 = " << (grad_k ? "D4" : "DV4") << ";\n"
      << R"(shared vec4 q_tile[BQ * DP4];
shared vec4 do_tile[BQ * DVP4];
shared float row_lse[BQ];
shared float row_delta[BQ * 4u];
shared vec4 partial[BK * P];

void main() {
  uint wg = )" << linear_workgroup_index() << R"(;
  uint k_tiles = (SKV + BK - 1u) / BK;
  if (wg >= k_tiles * B * HKV) return;
  uint tile = wg % k_tiles, bh = wg / k_tiles;
  uint kvh = bh % HKV, b = bh / HKV;
  uint t = gl_LocalInvocationID.x, part = gl_LocalInvocationID.y, local_index = gl_LocalInvocationIndex;
  uint j = tile * BK + t;
  bool valid = j < SKV;
  uint kj = min(j, SKV - 1u);
  vec4 key[D4];
  [[unroll]] for (uint c = 0u; c < D4; ++c) key[c] = load_k4(b, kvh, kj, c);
)";
  if (grad_k) {
    out << R"(  vec4 value[DV4];
  [[unroll]] for (uint c = 0u; c < DV4; ++c) value[c] = load_v4(b, kvh, kj, c);
)";
  }
  out << R"(  vec4 acc[OUT_D4];
  [[unroll]] for (uint c = 0u; c < OUT_D4; ++c) acc[c] = vec4(0.0);
  // One flat loop over (query head of the group, query tile): every thread runs the same
  // iterations, so the barriers stay in uniform control flow.
  uint q_tiles = (S + BQ - 1u) / BQ;
  for (uint step = 0u; step < GROUP * q_tiles; ++step) {
    uint h = kvh * GROUP + step / q_tiles;
    uint qbase = (step % q_tiles) * BQ;
    // No query of this tile sees a key of this workgroup (causal or unwritten cache): skip it.
    if (key_end(min(qbase + BQ, S) - 1u) <= int(tile * BK)) continue;
    barrier();
    for (uint e = local_index; e < BQ * D4; e += BK * P) {
      uint i = qbase + e / D4;
      q_tile[(e / D4) * DP4 + e % D4] = i < S ? load_q4(b, h, i, e % D4) : vec4(0.0);
    }
    for (uint e = local_index; e < BQ * DV4; e += BK * P) {
      uint i = qbase + e / DV4;
      do_tile[(e / DV4) * DVP4 + e % DV4] = i < S ? read_do4(o_at(b, h, i), e % DV4) : vec4(0.0);
    }
    for (uint r = local_index; r < BQ; r += BK * P) {
      uint i = qbase + r;
      row_lse[r] = i < S ? LSEB.data[row_at(b, h, i)] : 0.0;
    }
)";
  if (grad_k) {
    out << R"(    // Δ_i = dO_i · O_i, four threads per row, each over every fourth column.
    for (uint e = local_index; e < BQ * 4u; e += BK * P) {
      uint i = qbase + e / 4u;
      float delta = 0.0;
      if (i < S) for (uint d = e % 4u; d < DV; d += 4u)
        delta += float(DOB.data[o_at(b, h, i) + d]) * float(OB.data[o_at(b, h, i) + d]);
      row_delta[e] = delta;
    }
)";
  }
  out << R"(    barrier();
    if (!valid) continue;
    for (uint r = part; r < BQ; r += P) {
      uint i = qbase + r;
      if (i >= S) break;
      if (int(j) >= key_end(i)) continue;
      vec4 s4 = vec4(0.0);
      [[unroll]] for (uint c = 0u; c < D4; ++c) s4 += q_tile[r * DP4 + c] * key[c];
      float s = ((s4.x + s4.y) + (s4.z + s4.w)) * SCALE + mask_at(b, h, i, j);
      if (s <= NEG) continue;
      float p = exp(s - row_lse[r]);
)";
  if (grad_k) {
    out << R"(      vec4 dp4 = vec4(0.0);
      [[unroll]] for (uint c = 0u; c < DV4; ++c) dp4 += do_tile[r * DVP4 + c] * value[c];
      float delta = (row_delta[r * 4u] + row_delta[r * 4u + 1u]) + (row_delta[r * 4u + 2u] + row_delta[r * 4u + 3u]);
      float ds = p * (((dp4.x + dp4.y) + (dp4.z + dp4.w)) - delta);
      [[unroll]] for (uint c = 0u; c < D4; ++c) acc[c] += ds * q_tile[r * DP4 + c];
)";
  } else {
    out << "      [[unroll]] for (uint c = 0u; c < DV4; ++c) acc[c] += p * do_tile[r * DVP4 + c];\n";
  }
  out << "    }\n  }\n";
  const std::string store = grad_k ? "result.data[k_at(b, kvh, j) + d] = " : "result.data[v_at(b, kvh, j) + d] = ";
  const std::string factor = grad_k ? " * SCALE" : "";
  if (parts == 1) {
    out << "  if (!valid) return;\n  [[unroll]] for (uint d = 0u; d < OUT_D; ++d) " << store << "acc[d / 4u][d % 4u]"
        << factor << ";\n}\n";
    return out.str();
  }
  out << R"(  // Sum the parts' partial rows.
  [[unroll]] for (uint c = 0u; c < OUT_D4; ++c) {
    barrier();
    partial[part * BK + t] = acc[c];
    barrier();
    if (part == 0u && valid) {
      vec4 sum = vec4(0.0);
      for (uint other = 0u; other < P; ++other) sum += partial[other * BK + t];
      STORE4()" << (grad_k ? "k_at" : "v_at") << "(b, kvh, j), c, OUT_D, sum" << factor << R"();
    }
  }
}
)";
  return out.str();
}

}  // namespace

std::string generate_attention(const Graph& graph, const compile::Kernel& kernel) {
  // The anchor is the attention op; the root may be a permute it stores through (compile/grouping.h).
  const Node& node = graph.node(kernel.anchor);
  std::ostringstream out;
  // Every kernel unrolls its loops over the head dim ([[unroll]]): llvmpipe (lavapipe)
  // counts the iterations of all loops of an invocation against one budget of 65535
  // (LP_MAX_TGSI_LOOP_ITERATIONS) and past it ends every loop after its first iteration, so a
  // thread's results silently go unwritten. Unrolled, only the loops over rows and keys count.
  out << shader_header_with_loop_attributes(graph, kernel) << attention_prelude(graph, kernel, node);
  switch (node.op) {
    case Op::attention: out << forward_body(graph, kernel, true); break;
    case Op::attention_lse: out << forward_body(graph, kernel, false); break;
    case Op::attention_grad_q: out << grad_q_body(kernel); break;
    case Op::attention_grad_k: out << grad_kv_body(kernel, true); break;
    case Op::attention_grad_v: out << grad_kv_body(kernel, false); break;
    default: throw Error(std::string("codegen: op '") + op_name(node.op) + "' is not an attention op");
  }
  return out.str();
}

}  // namespace meganeura::codegen
