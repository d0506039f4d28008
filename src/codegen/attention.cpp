// Fused attention kernels, flash-attention style: K/V (or Q/dO) tiles pass through shared memory,
// softmax runs online (running max and sum), and no S×Skv matrix is ever stored.
//
// - attention: a workgroup holds `rows` query rows × `lanes` threads per row; lanes split the keys
//   of a tile (the one-query decode form uses 1 row × 64 lanes) and merge their partial softmax
//   states at the end.
// - attention_grad_q: one thread per query row; a first pass over the keys recomputes the row's
//   log-sum-exp (the IR's attention has one output, so the forward cannot hand it over), a second
//   accumulates dQ = scale · Σ_j P_ij (dP_ij − Δ_i) K_j with Δ_i = dO_i · O_i.
// - attention_grad_k / _v: one thread per key; query rows of every head of the key's group come in
//   tiles through shared memory, and each tile's log-sum-exp is recomputed there.
#include <cmath>
#include <sstream>

#include "codegen/archetypes.h"
#include "codegen/glsl.h"
#include "codegen/op_inputs.h"
#include "meganeura/error.h"

namespace meganeura::codegen {

namespace {

// Constants and helpers every attention kernel shares: sizes, positions, the mask.
std::string attention_prelude(const Graph& graph, const compile::Kernel& kernel, const Node& node) {
  const Shape& q = graph.node(node.inputs[0]).shape;
  const Shape& k = graph.node(node.inputs[1]).shape;
  const Shape& v = graph.node(node.inputs[2]).shape;
  const int64_t B = q[0], Hq = q[1], S = q[2], D = q[3], Hkv = k[1], Skv = k[2], Dv = v[3];
  if (Hkv == 0 || Hq % Hkv != 0) throw Error("codegen: attention with " + std::to_string(Hq) + " query heads and " +
                                             std::to_string(Hkv) + " kv heads; query heads must be a multiple");
  const double scale = node.attrs.scale != 0.0 ? node.attrs.scale : 1.0 / std::sqrt(static_cast<double>(D));
  const size_t fixed = node.op == Op::attention ? 3 : 5;
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
      << "const float SCALE = " << float_literal(scale) << ";\n"
      << "// Scores at or below NEG are masked out (an additive -inf mask included).\n"
      << "const float NEG = -1.0e30;\n"
      << "#define QB " << input_buffer(kernel, node, 0) << "\n"
      << "#define KB " << input_buffer(kernel, node, 1) << "\n"
      << "#define VB " << input_buffer(kernel, node, 2) << "\n";
  if (fixed == 5) {
    out << "#define OB " << input_buffer(kernel, node, 3) << "\n"
        << "#define DOB " << input_buffer(kernel, node, 4) << "\n";
  }
  out << "uint q_at(uint b, uint h, uint i) { return ((b * HQ + h) * S + i) * D; }\n"
      << "uint k_at(uint b, uint h, uint j) { return ((b * HKV + h) * SKV + j) * D; }\n"
      << "uint v_at(uint b, uint h, uint j) { return ((b * HKV + h) * SKV + j) * DV; }\n"
      << "uint o_at(uint b, uint h, uint i) { return ((b * HQ + h) * S + i) * DV; }\n";
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

std::string forward_body(const compile::Kernel& kernel) {
  const uint32_t lanes = kernel.local_size[0], rows = kernel.local_size[1], keys = kernel.register_tile[0];
  std::ostringstream out;
  out << "const uint R = " << rows << "u, L = " << lanes << "u, BK = " << keys << "u;\n"
      << R"(shared float k_tile[BK * D];
shared float v_tile[BK * DV];
shared float merge_a[R * L];
shared float merge_b[R * L];

void main() {
  uint wg = )" << linear_workgroup_index() << R"(;
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
  float q[D];
  for (uint d = 0u; d < D; ++d) q[d] = float(QB.data[q_at(b, h, qi) + d]) * SCALE;
  float acc[DV];
  for (uint d = 0u; d < DV; ++d) acc[d] = 0.0;
  float m = NEG, l = 0.0;
  for (int base = 0; base < end_group; base += int(BK)) {
    barrier();
    for (uint e = local_index; e < BK * D; e += R * L) {
      uint j = uint(base) + e / D;
      k_tile[e] = j < SKV ? float(KB.data[k_at(b, kvh, j) + e % D]) : 0.0;
    }
    for (uint e = local_index; e < BK * DV; e += R * L) {
      uint j = uint(base) + e / DV;
      v_tile[e] = j < SKV ? float(VB.data[v_at(b, kvh, j) + e % DV]) : 0.0;
    }
    barrier();
    for (uint jj = lane; jj < BK; jj += L) {
      int j = base + int(jj);
      if (j >= end_row) break;
      float s = 0.0;
      for (uint d = 0u; d < D; ++d) s += q[d] * k_tile[jj * D + d];
      s += mask_at(b, h, i, uint(j));
      if (s <= NEG) continue;
      if (s > m) {
        float c = exp(m - s);
        l = l * c + 1.0;
        for (uint d = 0u; d < DV; ++d) acc[d] = acc[d] * c + v_tile[jj * DV + d];
        m = s;
      } else {
        float p = exp(s - m);
        l += p;
        for (uint d = 0u; d < DV; ++d) acc[d] += p * v_tile[jj * DV + d];
      }
    }
  }
)";
  if (lanes == 1) {
    out << R"(  if (!valid) return;
  float inv = l > 0.0 ? 1.0 / l : 0.0;
  for (uint d = 0u; d < DV; ++d) result.data[o_at(b, h, i) + d] = acc[d] * inv;
}
)";
  } else {
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
  float inv = total > 0.0 ? 1.0 / total : 0.0;
  for (uint d = 0u; d < DV; ++d) {
    barrier();
    merge_a[row * L + lane] = acc[d] * weight;
    barrier();
    if (lane == 0u && valid) {
      float sum = 0.0;
      for (uint t = 0u; t < L; ++t) sum += merge_a[row * L + t];
      result.data[o_at(b, h, i) + d] = sum * inv;
    }
  }
}
)";
  }
  return out.str();
}

std::string grad_q_body(const compile::Kernel& kernel) {
  const uint32_t rows = kernel.local_size[1], keys = kernel.register_tile[0];
  std::ostringstream out;
  out << "const uint R = " << rows << "u, BK = " << keys << "u;\n"
      << R"(shared float k_tile[BK * D];
shared float v_tile[BK * DV];

void main() {
  uint wg = )" << linear_workgroup_index() << R"(;
  uint q_tiles = (S + R - 1u) / R;
  if (wg >= q_tiles * B * HQ) return;
  uint tile = wg % q_tiles, bh = wg / q_tiles;
  uint h = bh % HQ, b = bh / HQ, kvh = h / GROUP;
  uint row = gl_LocalInvocationID.y;
  uint i = tile * R + row;
  bool valid = i < S;
  uint qi = min(i, S - 1u);
  int end_row = valid ? key_end(qi) : 0;
  int end_group = key_end(min(tile * R + R - 1u, S - 1u));
  float q[D];
  [[unroll]] for (uint d = 0u; d < D; ++d) q[d] = float(QB.data[q_at(b, h, qi) + d]) * SCALE;
  float dout[DV];
  float delta = 0.0;
  [[unroll]] for (uint d = 0u; d < DV; ++d) {
    dout[d] = float(DOB.data[o_at(b, h, qi) + d]);
    delta += dout[d] * float(OB.data[o_at(b, h, qi) + d]);
  }
  // Pass 1: the row's log-sum-exp.
  float m = NEG, l = 0.0;
  for (int base = 0; base < end_group; base += int(BK)) {
    barrier();
    for (uint e = row; e < BK * D; e += R) {
      uint j = uint(base) + e / D;
      k_tile[e] = j < SKV ? float(KB.data[k_at(b, kvh, j) + e % D]) : 0.0;
    }
    barrier();
    for (uint jj = 0u; jj < BK; ++jj) {
      int j = base + int(jj);
      if (j >= end_row) break;
      float s = 0.0;
      [[unroll]] for (uint d = 0u; d < D; ++d) s += q[d] * k_tile[jj * D + d];
      s += mask_at(b, h, i, uint(j));
      if (s <= NEG) continue;
      if (s > m) { l = l * exp(m - s) + 1.0; m = s; } else { l += exp(s - m); }
    }
  }
  float lse = l > 0.0 ? m + log(l) : 0.0;
  if (l <= 0.0) end_row = 0;
  // Pass 2: dQ.
  float dq[D];
  [[unroll]] for (uint d = 0u; d < D; ++d) dq[d] = 0.0;
  for (int base = 0; base < end_group; base += int(BK)) {
    barrier();
    for (uint e = row; e < BK * D; e += R) {
      uint j = uint(base) + e / D;
      k_tile[e] = j < SKV ? float(KB.data[k_at(b, kvh, j) + e % D]) : 0.0;
    }
    for (uint e = row; e < BK * DV; e += R) {
      uint j = uint(base) + e / DV;
      v_tile[e] = j < SKV ? float(VB.data[v_at(b, kvh, j) + e % DV]) : 0.0;
    }
    barrier();
    for (uint jj = 0u; jj < BK; ++jj) {
      int j = base + int(jj);
      if (j >= end_row) break;
      float s = 0.0;
      [[unroll]] for (uint d = 0u; d < D; ++d) s += q[d] * k_tile[jj * D + d];
      s += mask_at(b, h, i, uint(j));
      if (s <= NEG) continue;
      float p = exp(s - lse);
      float dp = 0.0;
      [[unroll]] for (uint d = 0u; d < DV; ++d) dp += dout[d] * v_tile[jj * DV + d];
      float ds = p * (dp - delta);
      [[unroll]] for (uint d = 0u; d < D; ++d) dq[d] += ds * k_tile[jj * D + d];
    }
  }
  if (!valid) return;
  [[unroll]] for (uint d = 0u; d < D; ++d) result.data[q_at(b, h, i) + d] = dq[d] * SCALE;
}
)";
  return out.str();
}

std::string grad_kv_body(const compile::Kernel& kernel, bool grad_k) {
  const uint32_t keys = kernel.local_size[0], rows = kernel.register_tile[1];
  std::ostringstream out;
  out << "const uint BK = " << keys << "u, BQ = " << rows << "u;\n"
      << "const uint OUT_D = " << (grad_k ? "D" : "DV") << ";\n"
      << R"(shared float q_tile[BQ * D];
shared float do_tile[BQ * DV];
shared float row_lse[BQ];
shared float row_delta[BQ];
const uint SPLIT = BK >= BQ ? BK / BQ : 1u, PARTS = BQ * SPLIT;
shared float part_m[PARTS];
shared float part_l[PARTS];

void main() {
  uint wg = )" << linear_workgroup_index() << R"(;
  uint k_tiles = (SKV + BK - 1u) / BK;
  if (wg >= k_tiles * B * HKV) return;
  uint tile = wg % k_tiles, bh = wg / k_tiles;
  uint kvh = bh % HKV, b = bh / HKV;
  uint t = gl_LocalInvocationID.x;
  uint j = tile * BK + t;
  bool valid = j < SKV;
  uint kj = min(j, SKV - 1u);
  // The thread's key and value rows are read from memory where used (cached), which keeps the
  // per-thread arrays down to the accumulator.
  uint key_at = k_at(b, kvh, kj), value_at = v_at(b, kvh, kj);
  float acc[OUT_D];
  [[unroll]] for (uint d = 0u; d < OUT_D; ++d) acc[d] = 0.0;
  // One flat loop over (query head of the group, query tile): every thread runs the same
  // iterations, so the barriers stay in uniform control flow.
  uint q_tiles = (S + BQ - 1u) / BQ;
  for (uint step = 0u; step < GROUP * q_tiles; ++step) {
    uint h = kvh * GROUP + step / q_tiles;
    uint qbase = (step % q_tiles) * BQ;
    // No query of this tile sees a key of this workgroup (causal or unwritten cache): skip it.
    if (key_end(min(qbase + BQ, S) - 1u) > int(tile * BK)) {
      barrier();
      for (uint e = t; e < BQ * D; e += BK) {
        uint i = qbase + e / D;
        q_tile[e] = i < S ? float(QB.data[q_at(b, h, i) + e % D]) : 0.0;
      }
      for (uint e = t; e < BQ * DV; e += BK) {
        uint i = qbase + e / DV;
        do_tile[e] = i < S ? float(DOB.data[o_at(b, h, i) + e % DV]) : 0.0;
      }
      barrier();
      // Each row's log-sum-exp over all its keys: SPLIT threads per row take every SPLIT-th key,
      // then one merges their partial (max, sum) pairs.
      for (uint slot = t; slot < PARTS; slot += BK) {
        uint r = slot / SPLIT, part = slot % SPLIT;
        uint i = qbase + r;
        float m = NEG, l = 0.0;
        if (i < S) {
          int end = key_end(i);
          for (int other = int(part); other < end; other += int(SPLIT)) {
            float s = 0.0;
            uint at = k_at(b, kvh, uint(other));
            [[unroll]] for (uint d = 0u; d < D; ++d) s += q_tile[r * D + d] * float(KB.data[at + d]);
            s = s * SCALE + mask_at(b, h, i, uint(other));
            if (s <= NEG) continue;
            if (s > m) { l = l * exp(m - s) + 1.0; m = s; } else { l += exp(s - m); }
          }
        }
        part_m[slot] = m;
        part_l[slot] = l;
      }
      barrier();
      for (uint r = t; r < BQ; r += BK) {
        uint i = qbase + r;
        float top = NEG;
        for (uint p = 0u; p < SPLIT; ++p) top = max(top, part_m[r * SPLIT + p]);
        float total = 0.0;
        for (uint p = 0u; p < SPLIT; ++p) total += part_l[r * SPLIT + p] * exp(part_m[r * SPLIT + p] - top);
        // A row that sees no key gets an infinite log-sum-exp: its probabilities are all 0.
        row_lse[r] = total > 0.0 ? top + log(total) : 3.0e38;
        float delta = 0.0;
)";
  if (grad_k) {
    out << "        if (i < S) [[unroll]] for (uint d = 0u; d < DV; ++d)\n"
        << "          delta += do_tile[r * DV + d] * float(OB.data[o_at(b, h, i) + d]);\n";
  }
  out << R"(        row_delta[r] = delta;
      }
      barrier();
      for (uint r = 0u; r < BQ && valid; ++r) {
        uint i = qbase + r;
        if (i >= S) break;
        if (int(j) >= key_end(i)) continue;
        float s = 0.0;
        [[unroll]] for (uint d = 0u; d < D; ++d) s += q_tile[r * D + d] * float(KB.data[key_at + d]);
        s = s * SCALE + mask_at(b, h, i, j);
        if (s <= NEG) continue;
        float p = exp(s - row_lse[r]);
)";
  if (grad_k) {
    out << R"(        float dp = 0.0;
        [[unroll]] for (uint d = 0u; d < DV; ++d) dp += do_tile[r * DV + d] * float(VB.data[value_at + d]);
        float ds = p * (dp - row_delta[r]);
        [[unroll]] for (uint d = 0u; d < D; ++d) acc[d] += ds * q_tile[r * D + d];
)";
  } else {
    out << "        [[unroll]] for (uint d = 0u; d < DV; ++d) acc[d] += p * do_tile[r * DV + d];\n";
  }
  out << R"(      }
    }
  }
  if (!valid) return;
)";
  if (grad_k) {
    out << "  [[unroll]] for (uint d = 0u; d < D; ++d) result.data[k_at(b, kvh, j) + d] = acc[d] * SCALE;\n}\n";
  } else {
    out << "  [[unroll]] for (uint d = 0u; d < DV; ++d) result.data[v_at(b, kvh, j) + d] = acc[d];\n}\n";
  }
  return out.str();
}

}  // namespace

std::string generate_attention(const Graph& graph, const compile::Kernel& kernel) {
  const Node& node = graph.node(kernel.root);
  std::ostringstream out;
  std::string header = shader_header(graph, kernel);
  // The backward kernels unroll their loops over the head dim ([[unroll]]): llvmpipe (lavapipe)
  // counts the iterations of all loops of an invocation against one budget of 65535
  // (LP_MAX_TGSI_LOOP_ITERATIONS) and past it ends every loop after its first iteration, so a
  // thread's results silently go unwritten. Unrolled, only the loops over rows and keys count.
  const size_t after_version = header.find('\n', header.find("#version")) + 1;
  header.insert(after_version, "#extension GL_EXT_control_flow_attributes : require\n");
  out << header << attention_prelude(graph, kernel, node);
  switch (node.op) {
    case Op::attention: out << forward_body(kernel); break;
    case Op::attention_grad_q: out << grad_q_body(kernel); break;
    case Op::attention_grad_k: out << grad_kv_body(kernel, true); break;
    case Op::attention_grad_v: out << grad_kv_body(kernel, false); break;
    default: throw Error(std::string("codegen: op '") + op_name(node.op) + "' is not an attention op");
  }
  return out.str();
}

}  // namespace meganeura::codegen
