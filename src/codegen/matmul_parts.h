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

// The 128×128-tile form for large products (an 8×8 register tile; matmul_wide.cpp).
std::string generate_wide_matmul(const Graph& graph, const compile::Kernel& kernel, ExpressionWriter& writer,
                                 size_t a_slot, size_t b_slot);

// The cooperative-matrix form of a matmul kernel (compile/cooperative_matmul.h sizes it).
std::string generate_cooperative_matmul(const Graph& graph, const compile::Kernel& kernel, ExpressionWriter& writer,
                                        size_t a_slot, size_t b_slot);

}  // namespace meganeura::codegen
