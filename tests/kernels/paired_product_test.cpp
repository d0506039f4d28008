// Two products of the same rows joined by their epilogue (an MLP's SwiGLU of gate and up) are one
// kernel (compile/grouping.h: pairs_with; codegen/matmul_paired.cpp): against the CPU reference
// with batches, partial tiles, split K, and the two-kernel fallback of a small device.
#include <algorithm>

#include "compile/grouping.h"
#include "compile/plan.h"
#include "kernels/kernel_test_util.h"

namespace meganeura {
namespace {

// swiglu(x·Gᵀ, x·Uᵀ) (+ a residual), x [batch, rows, k], G and U [n, k].
Graph gated(int64_t batch, int64_t rows, int64_t n, int64_t k, bool gate_read_elsewhere = false) {
  Graph g;
  Tensor x = g.input("x", {batch, rows, k});
  Tensor gate = g.matmul(x, g.input("gate", {n, k}), false, true);
  Tensor up = g.matmul(x, g.input("up", {n, k}), false, true);
  Tensor out = g.swiglu(gate, up) + g.input("residual", {batch, rows, n});
  g.set_outputs(gate_read_elsewhere ? std::vector<Tensor>{out, gate * 2.0} : std::vector<Tensor>{out});
  return g;
}

std::vector<const compile::Kernel*> matmul_kernels(const compile::Plan& plan) {
  std::vector<const compile::Kernel*> found;
  for (const compile::Kernel& kernel : plan.kernels) {
    if (kernel.archetype == compile::Archetype::matmul) found.push_back(&kernel);
  }
  return found;
}

TEST(PairedProduct, GateAndUpAreOneKernel) {
  // 2 × 100 rows (one partial tile of 128 each) × 90 columns (a full and a partial 64) over K = 72;
  // then 130 rows × 70 over K = 600: 4 tiles, K split in 9 runs of 72.
  struct Case {
    int64_t batch, rows, n, k;
    uint32_t split;
  };
  for (const Case& c : {Case{2, 100, 90, 72, 1}, Case{1, 130, 70, 600, 9}}) {
    const Graph g = gated(c.batch, c.rows, c.n, c.k);
    const compile::Plan plan = compile::compile(g, kernel_tests::test_caps(false));
    const auto products = matmul_kernels(plan);
    ASSERT_EQ(products.size(), 1u) << plan.summary();
    const compile::Kernel& kernel = *products[0];
    ASSERT_GE(kernel.partner, 0) << plan.summary();
    EXPECT_NE(kernel.partner, kernel.anchor);
    EXPECT_EQ(kernel.register_tile[0], 8u);
    EXPECT_EQ(kernel.split_k, c.split) << plan.summary();
    EXPECT_EQ(plan.kernels.size(), 1u) << plan.summary();  // the SwiGLU and the residual are its epilogue
    const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 51), false);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_LE(errors[0], 1e-5) << c.rows << " rows, K " << c.k;
  }
}

TEST(PairedProduct, SmallDevicesAndOtherReadersKeepTwoKernels) {
  // A device without 16×16 workgroups computes the gate in a kernel of its own first.
  const Graph g = gated(1, 40, 24, 50);
  const compile::Plan small = compile::compile(g, kernel_tests::test_caps(true));
  EXPECT_EQ(matmul_kernels(small).size(), 2u) << small.summary();
  for (const compile::Kernel* kernel : matmul_kernels(small)) EXPECT_LT(kernel->partner, 0);
  const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 52), true);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_LE(errors[0], 1e-5);
  // A gate read by more than the epilogue is stored: it keeps its kernel.
  const Graph shared = gated(1, 40, 24, 50, true);
  const compile::Plan plan = compile::compile(shared, kernel_tests::test_caps(false));
  EXPECT_EQ(matmul_kernels(plan).size(), 2u) << plan.summary();
  for (double error : kernel_tests::output_errors(shared, kernel_tests::random_inputs(shared, 53), false)) {
    EXPECT_LE(error, 1e-5);
  }
}

TEST(PairedProduct, OnlySameRowsAndSameWeightShapesPair) {
  Graph g;
  Tensor x = g.input("x", {32, 16});
  Tensor w = g.input("w", {24, 16});
  Tensor v = g.input("v", {24, 16});
  Tensor few = g.input("few", {8, 16});
  const int32_t xw = g.matmul(x, w, false, true).id;
  const int32_t xv = g.matmul(x, v, false, true).id;
  const int32_t yv = g.matmul(g.input("y", {32, 16}), v, false, true).id;
  const int32_t wider = g.matmul(x, g.input("wide", {40, 16}), false, true).id;
  const int32_t untransposed = g.matmul(x, g.input("t", {16, 24})).id;
  const int32_t few_w = g.matmul(few, w, false, true).id;
  const int32_t few_v = g.matmul(few, v, false, true).id;
  EXPECT_TRUE(compile::pairs_with(g, g.node(xw), g.node(xv)));
  EXPECT_FALSE(compile::pairs_with(g, g.node(xw), g.node(yv)));            // other rows
  EXPECT_FALSE(compile::pairs_with(g, g.node(xw), g.node(wider)));         // another weight shape
  EXPECT_FALSE(compile::pairs_with(g, g.node(xw), g.node(untransposed)));  // weights stored [K, N]
  EXPECT_FALSE(compile::pairs_with(g, g.node(few_w), g.node(few_v)));      // fewer than 16 rows
}

}  // namespace
}  // namespace meganeura
