// Pieces the matmul forms share (matmul.cpp: tiled and GEMV; matmul_coop.cpp: cooperative matrix).
#pragma once

#include <cstddef>
#include <string>

#include "codegen/expression.h"
#include "compile/plan.h"

namespace meganeura::codegen {

// GLSL `float product(uint i, float acc)` (adds linear's bias) and `float epilogue(uint i, float acc)`
// (the fused pointwise tree), for output element i.
std::string matmul_epilogue_functions(const Graph& graph, const compile::Kernel& kernel, ExpressionWriter& writer);

// The 128×128 wide tile (matmul_wide.cpp), shared with the implicit-GEMM convolutions: its shared
// stages As/Bs and sizes TM, TN, BK; sixteen vec4 accumulators acc_r_j; and the K loop, given the
// GLSL that fetches element f (of 1024 per slice, four per invocation) of A's and B's slice at k0
// into a_next[e]/b_next[e] and stashes them into stage s. Expects lid, tx = lid % 16, ty = lid / 16.
const char* wide_tile_shared();
std::string wide_tile_accumulators();
std::string wide_tile_multiply();
std::string wide_tile_loop(const std::string& fetch_a, const std::string& fetch_b, const std::string& stash_a,
                           const std::string& stash_b);

// The 128×128-tile form for large products (an 8×8 register tile; matmul_wide.cpp).
std::string generate_wide_matmul(const Graph& graph, const compile::Kernel& kernel, ExpressionWriter& writer,
                                 size_t a_slot, size_t b_slot);

// The cooperative-matrix form of a matmul kernel (compile/cooperative_matmul.h sizes it).
std::string generate_cooperative_matmul(const Graph& graph, const compile::Kernel& kernel, ExpressionWriter& writer,
                                        size_t a_slot, size_t b_slot);

}  // namespace meganeura::codegen
