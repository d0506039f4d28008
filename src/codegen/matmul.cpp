// Tiled matmul: a workgroup of SIDE×SIDE invocations computes a (SIDE·REG)² tile of the output, each
// invocation REG×REG outputs spaced SIDE apart; K advances in slices of TK through shared memory.
// Batched over the leading dims (broadcast), transposes folded into the loads, and a pointwise
// epilogue (bias, activation, residual) applied to each output before it is stored. Operands read
// through load_a/load_b, which widen weights stored as 16-bit. Kernels marked cooperative_matrix
// take the tensor-core form (matmul_coop.cpp); one-row products the GEMV form (matmul_gemv.cpp);
// kernels with a partner product the paired form (matmul_paired.cpp).
#include <algorithm>
#include <sstream>

#include "codegen/archetypes.h"
#include "codegen/expression.h"
#include "codegen/glsl.h"
#include "compile/grouping.h"
#include "codegen/matmul_parts.h"
#include "codegen/packed_weights.h"
#include "meganeura/error.h"

namespace meganeura::codegen {

std::string matmul_epilogue_functions(const Graph& graph, const compile::Kernel& kernel, ExpressionWriter& writer) {
  const Node& mm = graph.node(kernel.anchor);
  std::ostringstream text;
  if (mm.op == Op::linear) {
    const size_t bias_slot = writer.binding_of(mm.inputs[2]);
    text << "float product(uint i, float acc) { return acc + float(in" << bias_slot << ".data["
         << broadcast_index("i", mm.shape, graph.node(mm.inputs[2]).shape) << "]); }\n";
  } else {
    text << "float product(uint i, float acc) { return acc; }\n";
  }
  text << writer.function("epilogue", compile::stored_value(graph, kernel), mm.shape, kernel.anchor) << "\n";
  return text.str();
}

std::string matmul_batch_bases(const Graph& graph, const Node& mm, uint32_t split_k) {
  const Shape& a = graph.node(mm.inputs[0]).shape;
  const Shape& b = graph.node(mm.inputs[1]).shape;
  const Shape& out = mm.shape;
  const uint64_t m = static_cast<uint64_t>(out[out.size() - 2]), n = static_cast<uint64_t>(out.back());
  const uint64_t k = static_cast<uint64_t>(mm.attrs.transpose_a ? a[a.size() - 2] : a.back());
  const Shape out_batch(out.begin(), out.end() - 2), a_batch(a.begin(), a.end() - 2), b_batch(b.begin(), b.end() - 2);
  const std::string batch = split_k > 1 ? "  uint batch = gl_WorkGroupID.z / SPLIT, split = gl_WorkGroupID.z % SPLIT;\n"
                                          "  uint k_begin = split * K_SPAN, k_end = min(K, k_begin + K_SPAN);\n"
                                        : "  uint batch = gl_WorkGroupID.z;\n";
  return batch + "  uint a_base = " + broadcast_index("batch", out_batch, a_batch) + " * " +
         uint_literal(m * k) + ";\n  uint b_base = " + broadcast_index("batch", out_batch, b_batch) + " * " +
         uint_literal(k * n) + ";\n";
}

namespace {

// The invocation's REG×REG outputs as named scalars in straight-line code: indexed accumulator
// arrays are left in local memory by drivers that do not unroll the loops over them (an 8×8 tile
// written with loops ran ten times slower on an NVIDIA GPU than this form's 4×4).
// With `squares`, also the sum of squares of each of the invocation's rows (squares_r: a fused
// RMSNorm of the rows, compile/grouping.h: normalizes_product_rows).
std::string accumulators(uint32_t reg, bool squares) {
  std::ostringstream text;
  for (uint32_t r = 0; r < reg; ++r) {
    text << "  float";
    for (uint32_t c = 0; c < reg; ++c) text << (c ? ", " : " ") << "acc_" << r << "_" << c << " = 0.0";
    if (squares) text << ", squares_" << r << " = 0.0";
    text << ";\n";
  }
  return text.str();
}

std::vector<std::string> accumulator_names(uint32_t reg, bool squares) {
  std::vector<std::string> names;
  for (uint32_t r = 0; r < reg; ++r) {
    for (uint32_t c = 0; c < reg; ++c) names.push_back("acc_" + std::to_string(r) + "_" + std::to_string(c));
  }
  for (uint32_t r = 0; squares && r < reg; ++r) names.push_back("squares_" + std::to_string(r));
  return names;
}

std::string normalize_rows(uint32_t reg, const Node& norm, uint64_t k) {
  std::ostringstream text;
  for (uint32_t r = 0; r < reg; ++r) {
    text << "  { float scale = inversesqrt(squares_" << r << " / " << float_literal(static_cast<double>(k)) << " + "
         << float_literal(norm.attrs.eps) << ");";
    for (uint32_t c = 0; c < reg; ++c) text << " acc_" << r << "_" << c << " *= scale;";
    text << " }\n";
  }
  return text.str();
}

std::string multiply_accumulate(uint32_t reg, bool squares) {
  std::ostringstream text;
  for (uint32_t r = 0; r < reg; ++r) {
    text << "      float a_" << r << " = tile_a[kk][ly + " << r << "u * SIDE];\n";
    if (squares) text << "      squares_" << r << " += a_" << r << " * a_" << r << ";\n";
  }
  for (uint32_t c = 0; c < reg; ++c) text << "      float b_" << c << " = tile_b[kk][lx + " << c << "u * SIDE];\n";
  for (uint32_t r = 0; r < reg; ++r) {
    text << "     ";
    for (uint32_t c = 0; c < reg; ++c) text << " acc_" << r << "_" << c << " += a_" << r << " * b_" << c << ";";
    text << "\n";
  }
  return text.str();
}

// Each output through the epilogue, skipping those past the matrix edge.
std::string store_outputs(const compile::Kernel& kernel, uint32_t reg, const std::string& batch_stride) {
  std::ostringstream text;
  for (uint32_t r = 0; r < reg; ++r) {
    text << "  if (row0 + ly + " << r << "u * SIDE < M) {\n    uint row = row0 + ly + " << r << "u * SIDE;\n";
    for (uint32_t c = 0; c < reg; ++c) {
      text << "    if (col0 + lx + " << c << "u * SIDE < N) { uint i = batch * " << batch_stride
           << " + row * N + col0 + lx + " << c << "u * SIDE; "
           << store_output(kernel, "i", "epilogue(i, product(i, acc_" + std::to_string(r) + "_" + std::to_string(c) + "))")
           << " }\n";
    }
    text << "  }\n";
  }
  return text.str();
}

}  // namespace

std::string generate_matmul(const Graph& graph, const compile::Kernel& kernel) {
  const Node& mm = graph.node(kernel.anchor);
  const Node& a = graph.node(mm.inputs[0]);
  const Node& b = graph.node(mm.inputs[1]);
  if (a.shape.size() < 2 || b.shape.size() < 2) {
    throw Error(std::string("codegen: ") + op_name(mm.op) + " needs operands of rank 2 or more, got " +
                format_shape(a.shape) + " and " + format_shape(b.shape));
  }
  const bool ta = mm.attrs.transpose_a, tb = mm.attrs.transpose_b;
  const Shape& out = mm.shape;
  const int64_t m = out[out.size() - 2], n = out.back();
  const int64_t k = ta ? a.shape[a.shape.size() - 2] : a.shape.back();
  const uint32_t side = kernel.local_size[0];
  const uint32_t reg = kernel.register_tile[0];
  const uint32_t tile = side * reg;
  const uint32_t tk = 16;
  const bool split = kernel.split_k > 1;

  ExpressionWriter writer(graph, kernel);
  // A left operand computed in the kernel (GEMV only, compile/grouping.h): an RMSNorm, whose input
  // the kernel reads, or a pointwise tree evaluated per element.
  const bool computed = std::binary_search(kernel.nodes.begin(), kernel.nodes.end(), mm.inputs[0]);
  const Node* norm = computed && a.op == Op::rms_norm ? &a : nullptr;
  if (computed && norm == nullptr && kernel.local_size[1] != 1) {
    throw Error(std::string("codegen: a matmul kernel computes its left operand (") + op_name(a.op) +
                ") only in the GEMV form");
  }
  if (norm != nullptr && (ta || kernel.cooperative_matrix)) {
    throw Error("codegen: kernel \"" + kernel.label + "\" normalizes the rows of a transposed or cooperative product");
  }
  if (computed && norm == nullptr) {
    const size_t b_slot = writer.binding_of(mm.inputs[1]);
    return generate_gemv(graph, kernel, writer, b_slot, b_slot, nullptr, true);
  }
  const size_t a_slot = writer.binding_of(norm != nullptr ? norm->inputs[0] : mm.inputs[0]);
  const size_t b_slot = writer.binding_of(mm.inputs[1]);
  auto u = [](int64_t v) { return uint_literal(static_cast<uint64_t>(v)); };

  if (compile::rotated_cache_store(graph, kernel) >= 0 &&
      (kernel.partner >= 0 || kernel.cooperative_matrix || side != 16 || reg != 4)) {
    throw Error("codegen: kernel \"" + kernel.label + "\" rotates its rows into a cache only from 64×64 tiles");
  }
  if (kernel.partner >= 0) return generate_paired_matmul(graph, kernel, writer, a_slot, b_slot, norm);
  if (kernel.cooperative_matrix) return generate_cooperative_matmul(graph, kernel, writer, a_slot, b_slot);
  if (kernel.local_size[1] == 1) return generate_gemv(graph, kernel, writer, a_slot, b_slot, norm);
  // 16×16 invocations with 4×4 or 8×8 outputs each (compile gives 4×4 only to products of 64 tiles
  // or more): the prefetching form (matmul_wide.cpp).
  if (side == 16 && reg >= 4) return generate_wide_matmul(graph, kernel, writer, a_slot, b_slot, norm);

  std::ostringstream out_text;
  out_text << shader_header_with_loop_attributes(graph, kernel) << math_helpers()
           << "const uint SIDE = " << side << "u;   // invocations per workgroup side\n"
           << "const uint REG = " << reg << "u;    // outputs per invocation along each side\n"
           << "const uint TILE = " << tile << "u;\n"
           << "const uint TK = " << tk << "u;\n"
           << "const uint M = " << u(m) << ", N = " << u(n) << ", K = " << u(k) << ";\n"
           << split_k_declarations(kernel, static_cast<uint64_t>(k)) << "\n"
           // One float of padding per row: the loads of a row-major A (and a transposed B) store a
           // column of the tile, which without it falls into one shared-memory bank 16 times over.
           << "shared float tile_a[TK][TILE + 1u];\nshared float tile_b[TK][TILE + 1u];\n\n"
           << element_reader("load_a", a_slot, kernel.bindings[a_slot].element)
           << element_reader("load_b", b_slot, kernel.bindings[b_slot].element)
           // Epilogue: the fused pointwise tree with the product as `acc` (and linear's bias).
           << matmul_epilogue_functions(graph, kernel, writer) << norm_weight_function(norm, writer);

  const std::string a_index = ta ? "kk * M + mm" : "mm * K + kk";
  const std::string b_index = tb ? "nn * K + kk" : "kk * N + nn";
  out_text << "void main() {\n"
           << matmul_batch_bases(graph, mm, kernel.split_k)
           << "  uint row0 = gl_WorkGroupID.y * TILE, col0 = gl_WorkGroupID.x * TILE;\n"
           << "  uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;\n"
           << "  uint lid = ly * SIDE + lx;\n"
           << accumulators(reg, norm != nullptr)
           << (split ? "  for (uint k0 = k_begin; k0 < k_end; k0 += TK) {\n" : "  for (uint k0 = 0u; k0 < K; k0 += TK) {\n")
           << "    for (uint e = lid; e < TILE * TK; e += SIDE * SIDE) {\n"
           << (ta ? "      uint mm = row0 + e % TILE, kk = k0 + e / TILE;\n"
                  : "      uint mm = row0 + e / TK, kk = k0 + e % TK;\n")
           << "      tile_a[kk - k0][mm - row0] = (mm < M && kk < K) ? load_a(a_base + " << a_index << ") : 0.0;\n"
           << (tb ? "      uint nn = col0 + e / TK, kb = k0 + e % TK;\n"
                  : "      uint nn = col0 + e % TILE, kb = k0 + e / TILE;\n")
           << "      { uint kk = kb; tile_b[kk - k0][nn - col0] = (nn < N && kk < K) ? load_b(b_base + " << b_index
           << ")" << (norm != nullptr ? " * norm_weight(kk)" : "") << " : 0.0; }\n"
           << "    }\n"
           << "    barrier();\n"
           << "    for (uint kk = 0u; kk < TK; ++kk) {\n"
           << multiply_accumulate(reg, norm != nullptr)
           << "    }\n"
           << "    barrier();\n"
           << "  }\n"
           << (split ? split_k_fixup(kernel, accumulator_names(reg, norm != nullptr)) : "")
           << (norm != nullptr ? normalize_rows(reg, *norm, static_cast<uint64_t>(k)) : "")
           << store_outputs(kernel, reg, u(m * n))
           << "}\n";
  return out_text.str();
}

}  // namespace meganeura::codegen
