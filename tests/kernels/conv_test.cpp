// Convolution (implicit GEMM, both gradients), pooling, upsampling, group norm and rope kernels
// against the CPU reference, on odd shapes that cross the tiles, under the real caps and small ones.
#include "kernels/kernel_test_util.h"
#include "reference/op_examples.h"

namespace meganeura {
namespace {

struct ConvCase {
  std::string name;
  int64_t N, Cin, H, W, Cout, kh, kw;
  Conv2dOptions options;
};

std::vector<ConvCase> conv_cases() {
  return {
      {"k3_pad1", 2, 3, 7, 9, 5, 3, 3, {.padding = {1, 1}}},
      {"k3_stride2_dilation2_groups2", 1, 4, 11, 10, 6, 3, 3,
       {.stride = {2, 2}, .padding = {1, 2}, .dilation = {2, 2}, .groups = 2}},
      {"k1_as_matmul", 2, 8, 9, 9, 70, 1, 1, {}},
      {"k3_register_tiles", 1, 16, 12, 12, 64, 3, 3, {.padding = {1, 1}}},
      {"k2x3_stride_rect_depthwise", 2, 6, 8, 7, 6, 2, 3, {.stride = {2, 1}, .groups = 6}},
  };
}

class ConvKernelTest : public ::testing::TestWithParam<std::tuple<ConvCase, bool>> {};

TEST(ConvKernel, WideTilesForLargeProducts) {
  // Forward: 130 output channels × 2·64·64 positions = 2 × 64 tiles of 128×128 (partial in M);
  // input gradient: 130 input channels × 8192 positions. Both take the 8×8-per-invocation form.
  for (bool forward : {true, false}) {
    const int64_t cin = forward ? 3 : 130, cout = forward ? 130 : 5;
    const Conv2dOptions options{.padding = {1, 1}};
    Graph g;
    Tensor x = g.input("x", {2, cin, 64, 64});
    Tensor w = g.input("w", {cout, cin, 3, 3});
    g.set_outputs({forward ? g.conv2d(x, w, options)
                           : g.conv2d_grad_input(g.input("dy", {2, cout, 64, 64}), w, options, {64, 64})});
    std::string summary;
    const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 23), false, &summary);
    EXPECT_LE(errors[0], 1e-5) << (forward ? "conv2d" : "grad_input") << "\n" << summary;
    SessionOptions session_options;
    session_options.optimize = false;
    Session session = runtime::build_session_for_caps(g, session_options, kernel_tests::test_caps(false), false);
    bool wide = false;
    for (const auto& kernel : session.impl().plan.kernels) wide |= kernel.register_tile[0] == 8;
    EXPECT_TRUE(wide) << summary;
  }
}

TEST_P(ConvKernelTest, ForwardAndGradientsMatchReference) {
  const auto& [c, small] = GetParam();
  Graph g;
  Tensor x = g.input("x", {c.N, c.Cin, c.H, c.W});
  Tensor w = g.input("w", {c.Cout, c.Cin / c.options.groups, c.kh, c.kw});
  Tensor y = g.conv2d(x, w, c.options);
  Tensor dy = g.input("dy", y.shape());
  g.set_outputs({y, g.conv2d_grad_input(dy, w, c.options, {c.H, c.W}), g.conv2d_grad_weight(x, dy, c.options, {c.kh, c.kw})});
  std::string summary;
  const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 9), small, &summary);
  const char* names[] = {"conv2d", "grad_input", "grad_weight"};
  for (size_t k = 0; k < errors.size(); ++k) EXPECT_LE(errors[k], 1e-5) << c.name << " " << names[k] << "\n" << summary;
}

INSTANTIATE_TEST_SUITE_P(Conv, ConvKernelTest, ::testing::Combine(::testing::ValuesIn(conv_cases()), ::testing::Bool()),
                         kernel_tests::case_and_caps_name<ConvCase>);

TEST(PoolKernel, PoolingUpsamplingAndTheirGradientsMatchReference) {
  Graph g;
  Tensor x = g.input("x", {2, 3, 9, 7});
  const Pool2dOptions window{.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}};
  const Pool2dOptions plain{.kernel = {2, 3}, .stride = {2, 1}, .padding = {0, 0}};
  Tensor max_pooled = g.max_pool2d(x, window);
  Tensor avg_pooled = g.avg_pool2d(x, plain);
  Tensor up = g.upsample_nearest2x(x);
  g.set_outputs({max_pooled, g.max_pool2d_grad(x, g.input("dmax", max_pooled.shape()), window), avg_pooled,
                 g.avg_pool2d_grad(g.input("davg", avg_pooled.shape()), plain, {9, 7}),
                 g.avg_pool2d_grad(g.input("davg2", g.avg_pool2d(x, window).shape()), window, {9, 7}), up,
                 g.upsample_nearest2x_grad(g.input("dup", up.shape())), g.global_avg_pool(x)});
  for (bool small : {false, true}) {
    std::string summary;
    const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 4), small, &summary);
    for (size_t k = 0; k < errors.size(); ++k) EXPECT_LE(errors[k], 1e-6) << "output " << k << "\n" << summary;
  }
}

TEST(GroupNormKernel, ForwardAndGradientMatchReference) {
  Graph g;
  Tensor x = g.input("x", {2, 6, 5, 7});
  Tensor w = g.input("w", {6});
  Tensor b = g.input("b", {6});
  Tensor big = g.input("big", {1, 8, 33, 31});  // more elements per group than threads
  g.set_outputs({g.group_norm(x, w, b, 3), g.group_norm_grad(x, w, g.input("dy", {2, 6, 5, 7}), 3),
                 g.group_norm(big, g.input("w8", {8}), g.input("b8", {8}), 2, 1e-6)});
  for (bool small : {false, true}) {
    const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 6), small);
    for (size_t k = 0; k < errors.size(); ++k) EXPECT_LE(errors[k], 1e-5) << "output " << k;
  }
}

TEST(GroupNormKernel, PointwiseConsumersRunAsItsEpilogue) {
  // GroupNorm → SiLU → residual add, as in a UNet block at inference: one kernel, same values.
  Graph g;
  Tensor x = g.input("x", {2, 6, 5, 7});
  Tensor normed = g.group_norm(x, g.input("w", {6}), g.input("b", {6}), 3);
  g.set_outputs({g.silu(normed) + g.input("residual", {2, 6, 5, 7})});
  for (bool small : {false, true}) {
    std::string summary;
    const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 7), small, &summary);
    EXPECT_LE(errors[0], 1e-5) << summary;
    SessionOptions options;
    options.optimize = false;
    const Session session = runtime::build_session_for_caps(g, options, kernel_tests::test_caps(small), false);
    EXPECT_EQ(session.dispatch_count(), 1u) << session.plan_summary();
  }
}

TEST(RopeKernel, ForwardAndInverseMatchReference) {
  Graph g;
  Tensor x = g.input("x", {2, 3, 7, 16});
  Tensor offset = g.input("offset", {1}, DType::i32);
  Tensor wide = g.input("wide", {1, 2, 128, 64});
  g.set_outputs({g.rope(x, offset), g.rope_grad(x, offset), g.rope(wide, g.scalar(3, DType::i32))});
  const auto errors = kernel_tests::output_errors(g, kernel_tests::random_inputs(g, 8, {{"offset", 5}}), false);
  for (size_t k = 0; k < errors.size(); ++k) EXPECT_LE(errors[k], 1e-5) << "output " << k;
}

TEST(ConvKernel, TrainingGradientsThroughAutodiff) {
  Graph g;
  Tensor x = g.parameter("x", {2, 4, 7, 6}, Init::uniform(-1, 1));
  Tensor w = g.parameter("w", {6, 2, 3, 3}, Init::uniform(-1, 1));
  const Conv2dOptions options{.stride = {2, 1}, .padding = {1, 1}, .groups = 2};
  Tensor y = g.max_pool2d(g.conv2d(x, w, options), {.kernel = {2, 2}, .stride = {1, 1}});
  g.set_outputs({g.sum_all(y * g.input("weights", y.shape()))});
  kernel_tests::expect_training_gradients(g, kernel_tests::random_inputs(g, 2), 6, 1e-5);
}

TEST(OpKernels, EveryOpExampleMatchesReference) {
  // The reference's small example of every op with a kernel of its own.
  for (Op op : all_ops()) {
    const OpCategory category = op_category(op);
    const bool mine = category == OpCategory::attention || category == OpCategory::conv || op == Op::group_norm ||
                      op == Op::group_norm_grad || op == Op::rope || op == Op::rope_grad;
    if (!mine) continue;
    const reference::OpExample example = reference::op_example(op, 3);
    std::string summary;
    const auto errors = kernel_tests::output_errors(example.graph, example.feeds, false, &summary);
    for (double e : errors) EXPECT_LE(e, 2e-5) << op_name(op) << "\n" << summary;
  }
}

}  // namespace
}  // namespace meganeura
