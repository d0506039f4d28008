// A product whose result is only split into heads ([B, S, H·D] → reshape [B, S, H, D] → permute
// {0, 2, 1, 3}) stores each output where the permute puts it (compile/grouping.h:
// head_split_store): one kernel instead of two, against the CPU reference in every tiled form.
#include <algorithm>

#include "compile/grouping.h"
#include "compile/plan.h"
#include "kernels/kernel_test_util.h"

namespace meganeura {
namespace {

// permute(reshape(x·Wᵀ (+ residual), [batch, rows, heads, dim]), {0, 2, 1, 3}) · scale.
Graph head_split(int64_t batch, int64_t rows, int64_t heads, int64_t dim, int64_t k, bool residual,
                 bool product_read_elsewhere = false) {
  Graph g;
  Tensor x = g.input("x", {batch, rows, k});
  Tensor product = g.matmul(x, g.input("w", {heads * dim, k}), false, true);
  if (residual) product = product + g.input("residual", {batch, rows, heads * dim});
  Tensor split = g.permute(g.reshape(product, {batch, rows, heads, dim}), {0, 2, 1, 3});
  Tensor out = split * g.input("scale", {batch, heads, rows, dim});
  g.set_outputs(product_read_elsewhere ? std::vector<Tensor>{out, product} : std::vector<Tensor>{out});
  return g;
}

const compile::Kernel* product_kernel(const compile::Plan& plan) {
  for (const compile::Kernel& kernel : plan.kernels) {
    if (kernel.archetype == compile::Archetype::matmul) return &kernel;
  }
  return nullptr;
}

size_t gather_kernels(const compile::Plan& plan) {
  return static_cast<size_t>(std::count_if(plan.kernels.begin(), plan.kernels.end(), [](const compile::Kernel& k) {
    return k.archetype == compile::Archetype::gather;
  }));
}

TEST(HeadSplitStore, TheProductStoresThroughThePermute) {
  struct Case {
    int64_t batch, rows, heads, dim, k;
    bool residual, small;
  };
  // 64×64 tiles with partial ones; split K (K = 600); the 8×8-workgroup form of a small device;
  // a residual epilogue before the split.
  for (const Case& c : {Case{2, 70, 3, 32, 40, false, false}, Case{1, 100, 5, 24, 600, false, false},
                        Case{1, 36, 4, 16, 48, true, true}, Case{2, 20, 2, 8, 30, true, false}}) {
    const Graph g = head_split(c.batch, c.rows, c.heads, c.dim, c.k, c.residual);
    const compile::Plan plan = compile::compile(g, kernel_tests::test_caps(c.small));
    const compile::Kernel* kernel = product_kernel(plan);
    ASSERT_NE(kernel, nullptr) << plan.summary();
    EXPECT_EQ(plan.graph.node(kernel->root).op, Op::permute) << plan.summary();
    EXPECT_EQ(compile::stored_value(plan.graph, *kernel), c.residual ? kernel->root - 2 : kernel->anchor);
    EXPECT_FALSE(kernel->store_function.empty());
    EXPECT_EQ(gather_kernels(plan), 0u) << plan.summary();
    const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 61), c.small);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_LE(errors[0], 1e-5) << c.rows << " rows, K " << c.k;
  }
}

TEST(HeadSplitStore, AProductReadElsewhereKeepsThePermuteKernel) {
  const Graph g = head_split(1, 24, 2, 16, 20, false, true);
  const compile::Plan plan = compile::compile(g, kernel_tests::test_caps(false));
  const compile::Kernel* kernel = product_kernel(plan);
  ASSERT_NE(kernel, nullptr);
  EXPECT_EQ(kernel->root, kernel->anchor);
  EXPECT_TRUE(kernel->store_function.empty());
  EXPECT_EQ(gather_kernels(plan), 1u) << plan.summary();
  for (double error : kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 62), false)) EXPECT_LE(error, 1e-5);
}

TEST(HeadSplitStore, SplitsHeadsOnlyForTheHeadSplitPermute) {
  Graph g;
  Tensor x = g.input("x", {2, 6, 12});
  const Node& split = g.node(g.permute(g.reshape(x, {2, 6, 3, 4}), {0, 2, 1, 3}).id);
  EXPECT_TRUE(compile::splits_heads(g, split));
  EXPECT_FALSE(compile::splits_heads(g, g.node(g.permute(g.reshape(x, {2, 6, 3, 4}), {0, 2, 3, 1}).id)));
  EXPECT_FALSE(compile::splits_heads(g, g.node(g.permute(g.input("y", {2, 6, 3, 4}), {0, 2, 1, 3}).id)));
  // One position: the permute moves nothing (an alias, not a split).
  EXPECT_FALSE(compile::splits_heads(g, g.node(g.permute(g.reshape(g.input("z", {2, 1, 12}), {2, 1, 3, 4}),
                                                         {0, 2, 1, 3}).id)));
}

TEST(HeadSplitStore, TrainingGradientsThroughTheSplit) {
  Graph g;
  Tensor x = g.input("x", {2, 10, 16});
  Tensor w = g.parameter("w", {24, 16}, Init::uniform(-1, 1));
  Tensor split = g.permute(g.reshape(g.matmul(x, w, false, true), {2, 10, 3, 8}), {0, 2, 1, 3});
  // Squared, so that the gradient reads the stored values.
  g.set_outputs({g.sum_all(split * split * g.input("scale", {2, 3, 10, 8}))});
  const Session session = kernel_tests::expect_training_gradients(g, kernel_tests::random_inputs(g, 63), 7, 1e-5);
  EXPECT_NE(session.plan_summary().find("matmul+reshape+permute"), std::string::npos) << session.plan_summary();
}

}  // namespace
}  // namespace meganeura
