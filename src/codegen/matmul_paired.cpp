// The paired product (compile/grouping.h: pairs_with): two matmuls of the same rows by weights of
// one shape, read only by the epilogue that joins them (an MLP's SwiGLU of gate and up). The
// prefetching 8×8 tile (matmul_wide.cpp) computes 128 rows × 64 columns of both: its first 64
// columns come from the anchor's weight and its second 64 from the partner's, so each invocation
// holds the anchor's value and the partner's for the same outputs (acc_r_0 and acc_r_1) and the
// epilogue gets both without a second kernel, a stage between, or the partner's product in memory.
// Split-K and 16-bit weights work as in the wide form.
#include <sstream>

#include "codegen/archetypes.h"
#include "codegen/expression.h"
#include "codegen/glsl.h"
#include "codegen/matmul_parts.h"
#include "codegen/packed_weights.h"
#include "compile/grouping.h"
#include "meganeura/error.h"

namespace meganeura::codegen {

std::string generate_paired_matmul(const Graph& graph, const compile::Kernel& kernel, ExpressionWriter& writer,
                                   size_t a_slot, size_t b_slot, const Node* norm) {
  const Node& mm = graph.node(kernel.anchor);
  const Node& partner = graph.node(kernel.partner);
  if (!compile::pairs_with(graph, mm, partner) || kernel.register_tile[0] != 8 || kernel.local_size[0] != 16) {
    throw Error("codegen: kernel \"" + kernel.label + "\" pairs products the paired form cannot compute");
  }
  const Shape& out = mm.shape;
  const int64_t m = out[out.size() - 2], n = out.back();
  const int64_t k = graph.node(mm.inputs[0]).shape.back();
  auto u = [](int64_t v) { return uint_literal(static_cast<uint64_t>(v)); };
  const size_t p_slot = writer.binding_of(partner.inputs[1]);
  const bool split = kernel.split_k > 1;

  std::ostringstream text;
  std::string header = shader_header_with_loop_attributes(graph, kernel);
  const bool vec4_stores = stores_vec4(graph, kernel, n);
  if (vec4_stores) header += vec4_result_declaration(kernel);
  text << header << math_helpers() << wide_tile_shared(2)
       << "const uint M = " << u(m) << ", N = " << u(n) << ", K = " << u(k) << ";\n"
       << "const uint COLUMNS = 64u;  // of each product per workgroup\n"
       << split_k_declarations(kernel, static_cast<uint64_t>(k)) << "\n"
       << element_reader("load_a", a_slot, kernel.bindings[a_slot].element)
       << element_reader("load_b", b_slot, kernel.bindings[b_slot].element)
       << element_reader("load_p", p_slot, kernel.bindings[p_slot].element)
       << writer.function("epilogue", compile::stored_value(graph, kernel), mm.shape, kernel.anchor, kernel.partner) << "\n"
       << norm_weight_function(norm, writer);

  // Both weights are [N, K] of one shape, so one base serves them; the tile's column nn reads the
  // anchor's weight below 64 and the partner's from 64 (uniform per unrolled load).
  const std::string coords = "uint mm = f / BK, kk = f % BK;";
  const std::string b_coords = "uint nn = f / BK, kk = f % BK;";
  text << "void main() {\n"
       << matmul_batch_bases(graph, mm, kernel.split_k)
       << "  uint row0 = gl_WorkGroupID.y * TM, col0 = gl_WorkGroupID.x * COLUMNS;\n"
       << "  uint lid = gl_LocalInvocationIndex, tx = lid % 16u, ty = lid / 16u;\n"
       << wide_tile_accumulators(2, norm != nullptr)
       << wide_tile_loop(2,
                         coords + " a_next[e] = (row0 + mm < M && k0 + kk < K) ? load_a(a_base + (row0 + mm) * K + k0 + kk) : 0.0;",
                         b_coords + " uint col = col0 + nn % COLUMNS; uint at = b_base + col * K + k0 + kk;"
                                    " b_next[e] = (col < N && k0 + kk < K) ? (nn < COLUMNS ? load_b(at) : load_p(at))" +
                             (norm != nullptr ? " * norm_weight(k0 + kk)" : "") + " : 0.0;",
                         coords + " As[s][kk][mm / 4u][mm % 4u] = a_next[e];",
                         b_coords + " Bs[s][kk][nn / 4u][nn % 4u] = b_next[e];",
                         split ? "k_begin" : "0u", split ? "k_end" : "K", norm != nullptr)
       << (split ? split_k_fixup(kernel, wide_tile_values(2, norm != nullptr)) : "")
       << (norm != nullptr ? wide_tile_normalize(2, *norm, static_cast<uint64_t>(k)) : "");
  if (vec4_stores) {
    // Each invocation's four columns of a row are consecutive: one vec4 store (N is a multiple of
    // four, so a row's four are all inside or all past the edge).
    text << wide_tile_vec4_rows(2, 1, [&](int r, int, const std::string& c) {
      return "epilogue(i + " + c + ", acc_" + std::to_string(r) + "_0[" + c + "], acc_" + std::to_string(r) + "_1[" + c + "])";
    }, "COLUMNS");
    text << "}\n";
    return text.str();
  }
  for (int r = 0; r < 8; ++r) {
    text << "  {\n    uint row = row0 + " << 64 * (r / 4) << "u + 4u * ty + " << r % 4 << "u;\n"
         << "    if (row < M) {\n"
         << "      [[unroll]] for (uint c = 0u; c < 4u; ++c) {\n"
         << "        uint col = col0 + 4u * tx + c;\n"
         << "        if (col < N) { uint i = batch * " << u(m * n) << " + row * N + col; "
         << store_output(kernel, "i", "epilogue(i, acc_" + std::to_string(r) + "_0[c], acc_" + std::to_string(r) + "_1[c])")
         << " }\n      }\n    }\n  }\n";
  }
  text << "}\n";
  return text.str();
}

}  // namespace meganeura::codegen
