// compile::split_long_sums: weight gradients split into parallel partial sums keep their values (on
// the CPU reference and on the GPU), names and outputs; other products are left alone.
#include <algorithm>
#include <cmath>

#include "compile/split_sums.h"
#include "kernels/kernel_test_util.h"

namespace meganeura {
namespace {

// Splits anything with at least 4 terms per part, up to 64 workgroups.
constexpr compile::SplitSumOptions kEager{.target_workgroups = 64, .min_part_length = 4};

struct WeightGradients {
  Graph graph;
  Conv2dOptions conv{.stride = {2, 2}, .padding = {1, 1}, .groups = 2};
};

// A strided grouped conv's dW over 8 images and a linear layer's dW over 24 rows.
WeightGradients weight_gradients() {
  WeightGradients w;
  Graph& g = w.graph;
  Tensor x = g.input("x", {8, 4, 7, 6});
  Tensor dy = g.input("dy", {8, 6, 4, 4});
  Tensor a = g.input("a", {24, 5});
  Tensor b = g.input("b", {24, 7});
  Tensor dw = g.conv2d_grad_weight(x, dy, w.conv, {3, 2});
  g.set_name(dw, "grad/conv.weight");
  Tensor dl = g.matmul(a, b, /*transpose_a=*/true);
  g.set_name(dl, "grad/linear.weight");
  g.set_outputs({dw, dl});
  return w;
}

int64_t largest_conv_groups(const Graph& graph) {
  int64_t groups = 0;
  for (const Node& node : graph.nodes())
    if (node.op == Op::conv2d_grad_weight) groups = std::max(groups, node.attrs.groups);
  return groups;
}

TEST(SplitLongSums, PartsArePowersOfTwoWithinTheLimits) {
  const compile::SplitSumOptions options{.target_workgroups = 512, .min_part_length = 1024};
  // A diffusion UNet's 3×3 conv dW: 9 tiles, 128 images of 32×32 positions.
  EXPECT_EQ(compile::sum_split_parts(9, 128 * 32 * 32, 128, options), 32);
  // Enough tiles already: no split.
  EXPECT_EQ(compile::sum_split_parts(400, 1 << 20, 128, options), 1);
  // The part length floor and the divisibility of the batch bound the split.
  EXPECT_EQ(compile::sum_split_parts(1, 4096, 1024, options), 4);
  EXPECT_EQ(compile::sum_split_parts(1, 1 << 20, 6, options), 2);
}

TEST(SplitLongSums, WeightGradientsKeepValuesNamesAndOutputs) {
  const WeightGradients w = weight_gradients();
  const Graph split = compile::split_long_sums(w.graph, kEager);
  // dW: 8 parts, one per image; the linear dW: 4 parts of 6 rows.
  EXPECT_GT(largest_conv_groups(split), w.conv.groups);
  EXPECT_TRUE(std::any_of(split.nodes().begin(), split.nodes().end(),
                          [](const Node& n) { return n.op == Op::matmul && n.shape.size() == 3; }));
  ASSERT_EQ(split.outputs().size(), 2u);
  EXPECT_EQ(split.node(split.outputs()[0]).name, "grad/conv.weight");
  EXPECT_EQ(split.node(split.outputs()[1]).name, "grad/linear.weight");
  EXPECT_EQ(split.node(split.outputs()[0]).shape, (Shape{6, 2, 3, 2}));
  EXPECT_EQ(split.node(split.outputs()[1]).shape, (Shape{5, 7}));

  const reference::Feeds feeds = kernel_tests::random_inputs(w.graph, 3);
  const auto before = reference::run(w.graph, feeds);
  const auto after = reference::run(split, feeds);
  for (size_t k = 0; k < 2; ++k) {
    const std::vector<double>& got = after[split.outputs()[k]];
    const std::vector<double>& want = before[w.graph.outputs()[k]];
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12 * (1 + std::abs(want[i]))) << k << " " << i;
  }
}

TEST(SplitLongSums, SplitGraphRunsOnTheGpu) {
  const Graph split = compile::split_long_sums(weight_gradients().graph, kEager);
  for (bool small : {false, true}) {
    const auto errors = kernel_tests::output_errors(split, kernel_tests::random_inputs(split, 5), small);
    for (double e : errors) EXPECT_LE(e, 1e-5) << (small ? "small caps" : "device caps");
  }
}

TEST(SplitLongSums, LeavesOtherProductsAlone) {
  Graph g;
  Tensor a = g.input("a", {24, 5});
  Tensor b = g.input("b", {7, 24});
  Tensor c = g.input("c", {2, 24, 5});
  Tensor d = g.input("d", {2, 24, 7});
  Tensor x = g.input("x", {8, 4, 7, 6});
  Tensor dy = g.input("dy", {8, 6, 7, 6});
  g.set_outputs({g.matmul(a, b, true, true),                           // K is not b's leading axis
                 g.matmul(c, d, true),                                 // already batched
                 g.matmul(g.input("e", {5, 24}), g.input("f", {24, 7})),  // the sum is K of a plain product
                 g.conv2d_grad_weight(x, dy, {.padding = {1, 1}}, {3, 3})});
  const compile::SplitSumOptions wide{.target_workgroups = 1, .min_part_length = 4};  // no room to split
  EXPECT_EQ(compile::split_long_sums(g, wide).size(), g.size());
  const Graph split = compile::split_long_sums(g, kEager);
  EXPECT_EQ(split.size(), g.size() + 4);  // only the conv: two reshapes in, the grouped conv's reshape and sum
}

}  // namespace
}  // namespace meganeura
