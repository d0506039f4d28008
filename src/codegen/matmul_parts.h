// Pieces the matmul forms share (matmul.cpp: tiled and GEMV; matmul_coop.cpp: cooperative matrix).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "codegen/expression.h"
#include "compile/plan.h"

namespace meganeura::codegen {

// GLSL `float product(uint i, float acc)` (adds linear's bias) and `float epilogue(uint i, float acc)`
// (the fused pointwise tree), for output element i.
std::string matmul_epilogue_functions(const Graph& graph, const compile::Kernel& kernel, ExpressionWriter& writer);

// GLSL opening of main() for the tiled forms: `batch` (workgroup z) and the element offsets a_base,
// b_base of its operands' matrices (broadcast over the leading dims); for a split-K kernel also
// `split` and the K range [k_begin, k_end) it sums.
std::string matmul_batch_bases(const Graph& graph, const Node& mm, uint32_t split_k = 1);

// Split-K (compile::Kernel::split_k > 1; matmul_split.cpp). Declarations after M, N, K: SPLIT,
// K_SPAN, the partial-sum and arrival-counter buffers. The fixup, after the K loop: stores this
// workgroup's accumulators (`values`, GLSL lvalues, the same list in every workgroup), counts the
// tile's arrivals, and in the last workgroup to arrive replaces `values` with the sum over all
// splits in split order, ready for the usual stores; the others return. Expects batch, split, lid.
std::string split_k_declarations(const compile::Kernel& kernel, uint64_t k);
std::string split_k_fixup(const compile::Kernel& kernel, const std::vector<std::string>& values);

// The prefetching tile forms (matmul_wide.cpp), shared with the implicit-GEMM convolutions: 256
// invocations (16×16) own a (64·halves)² tile, each 4·halves rows × 4·halves columns as vec4
// accumulators acc_r_j (rows 64h + 4·ty + r%4, columns 64j + 4·tx + c); K advances in slices of 8
// through two shared stages As/Bs, the next slice fetched into registers (a_next/b_next, element f
// of the slice, 2·halves per invocation; also a_far/b_far two slices ahead over long spans) while
// the current one is multiplied. The caller gives the
// GLSL that fetches and stashes element f and the store of one output (row, col, acc_r_j[c]).
// Expects lid, tx = lid % 16, ty = lid / 16, row0, col0, M, N, K.
// With `squares` each invocation also sums the squares of its rows' A elements (vec4 squares_h,
// rows 64h + 4·ty…), for a fused RMSNorm of the rows (compile/grouping.h: normalizes_product_rows).
std::string wide_tile_shared(int halves);
std::string wide_tile_accumulators(int halves, bool squares = false);
std::string wide_tile_multiply(int halves, bool squares = false);
// fetch_ahead 2: two register sets fetch two slices ahead (wide_tile_fetch_ahead says when).
std::string wide_tile_loop(int halves, const std::string& fetch_a, const std::string& fetch_b,
                           const std::string& stash_a, const std::string& stash_b,
                           const std::string& k_begin = "0u", const std::string& k_end = "K", bool squares = false,
                           int fetch_ahead = 1);
// 2 where a workgroup of `kernel` (a product over `k` terms) sums at least 512 of them, else 1.
int wide_tile_fetch_ahead(const compile::Kernel& kernel, uint64_t k);
// The accumulators of wide_tile_accumulators as scalar lvalues (acc_r_j[c]), for split_k_fixup.
std::vector<std::string> wide_tile_values(int halves, bool squares = false);
// A fused RMSNorm's row scale applied to the accumulators (after the split-K fixup, before the
// stores), from the rows' sums of squares over K terms.
std::string wide_tile_normalize(int halves, const Node& norm, uint64_t k);
// GLSL `float norm_weight(uint k)`: the fused norm's weight, which B's loads multiply in; "" without
// a norm.
std::string norm_weight_function(const Node* norm, ExpressionWriter& writer);
std::string wide_tile_rows(int halves, const std::function<std::string(int r, int j)>& store_row_half);
// The same stores as one vec4 per row and column half (glsl.h: stores_vec4; N a multiple of 4), for
// 4·row_halves rows and column_halves halves: `value` gives the GLSL of output i + c (row r, half
// j, lane c of acc_r_j); half j starts `half_columns` (GLSL) after col0; `vec4_store` stores v
// as elements i..i+3 (store_result4 through a head split).
std::string wide_tile_vec4_rows(int row_halves, int column_halves,
                                const std::function<std::string(int r, int j, const std::string& c)>& value,
                                const std::string& half_columns,
                                const std::string& vec4_store = "result4.data[i / 4u] = v;");

// The GEMV form (matmul_gemv.cpp): one row times B stored [N, K]. With `norm` (an RMSNorm of the
// row fused into the kernel, compile/grouping.h) a_slot binds the norm's input; with
// `pointwise_operand` the left operand's fused pointwise tree is evaluated per element.
std::string generate_gemv(const Graph& graph, const compile::Kernel& kernel, ExpressionWriter& writer, size_t a_slot,
                          size_t b_slot, const Node* norm, bool pointwise_operand = false);

// The prefetching form: 128×128 tiles (an 8×8 register tile) or 64×64 (4×4; matmul_wide.cpp).
std::string generate_wide_matmul(const Graph& graph, const compile::Kernel& kernel, ExpressionWriter& writer,
                                 size_t a_slot, size_t b_slot, const Node* norm);

// The paired product (compile::Kernel::partner; matmul_paired.cpp): the anchor's and the partner's
// products of 128 rows × 64 columns per workgroup, both handed to the epilogue.
std::string generate_paired_matmul(const Graph& graph, const compile::Kernel& kernel, ExpressionWriter& writer,
                                   size_t a_slot, size_t b_slot, const Node* norm);

// The cooperative-matrix form of a matmul kernel (compile/cooperative_matmul.h sizes it).
std::string generate_cooperative_matmul(const Graph& graph, const compile::Kernel& kernel, ExpressionWriter& writer,
                                        size_t a_slot, size_t b_slot);

}  // namespace meganeura::codegen
