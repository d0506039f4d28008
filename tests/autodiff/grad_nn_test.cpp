// Finite-difference checks of the matmul, attention, convolution, normalisation and loss rules,
// including the backward ops that have rules of their own.
#include <gtest/gtest.h>

#include "grad_check.h"

namespace meganeura::testing {
namespace {

void check_matmul(bool transpose_a, bool transpose_b) {
  GradCheck c;
  Shape a = transpose_a ? Shape{2, 4, 3} : Shape{2, 3, 4};
  Shape b = transpose_b ? Shape{5, 4} : Shape{4, 5};
  c.check(c.g.matmul(c.operand("a", a), c.operand("b", b), transpose_a, transpose_b));
}

MEGANEURA_GRAD_TEST(MatmulGrad, PlainGrad, Op::matmul) { check_matmul(false, false); }
MEGANEURA_GRAD_TEST(MatmulGrad, TransposeAGrad, Op::matmul) { check_matmul(true, false); }
MEGANEURA_GRAD_TEST(MatmulGrad, TransposeBGrad, Op::matmul) { check_matmul(false, true); }
MEGANEURA_GRAD_TEST(MatmulGrad, TransposeBothGrad, Op::matmul) { check_matmul(true, true); }

MEGANEURA_GRAD_TEST(MatmulGrad, BatchedBroadcastGrad, Op::matmul) {
  GradCheck c;
  c.check(c.g.matmul(c.operand("a", {3, 4}), c.operand("b", {2, 4, 2})));
}

MEGANEURA_GRAD_TEST(MatmulGrad, LinearGrad, Op::linear) {
  GradCheck c;
  c.check(c.g.linear(c.operand("x", {2, 3, 4}), c.operand("w", {5, 4}), c.operand("b", {5})));
}

MEGANEURA_GRAD_TEST(AttentionGrad, FullGrad, Op::attention) {
  GradCheck c;
  c.check(c.g.attention(c.operand("q", {1, 2, 3, 4}), c.operand("k", {1, 2, 5, 4}), c.operand("v", {1, 2, 5, 4})));
}

MEGANEURA_GRAD_TEST(AttentionGrad, CausalGroupedQueryGrad, Op::attention) {
  GradCheck c;
  AttentionOptions o;
  o.causal = true;
  c.check(c.g.attention(c.operand("q", {2, 4, 3, 4}), c.operand("k", {2, 2, 3, 4}), c.operand("v", {2, 2, 3, 4}), o));
}

MEGANEURA_GRAD_TEST(AttentionGrad, MaskAndScaleGrad, Op::attention) {
  GradCheck c;
  AttentionOptions o;
  o.scale = 0.3;
  Tensor mask = c.data("mask", {3, 4}, -2.0, 0.0);
  c.check(c.g.attention(c.operand("q", {1, 2, 3, 4}), c.operand("k", {1, 2, 4, 4}), c.operand("v", {1, 2, 4, 4}), o,
                        mask));
}

MEGANEURA_GRAD_TEST(AttentionGrad, KvCacheOffsetGrad, Op::attention) {
  GradCheck c;
  AttentionOptions o;
  o.causal = true;
  Tensor offset = c.ints("offset", {1}, {2});
  c.check(c.g.attention(c.operand("q", {1, 2, 2, 4}), c.operand("k", {1, 1, 6, 4}), c.operand("v", {1, 1, 6, 4}), o,
                        std::nullopt, offset));
}

MEGANEURA_GRAD_TEST(ConvGrad, Conv2dGrad, Op::conv2d) {
  GradCheck c;
  c.check(c.g.conv2d(c.operand("x", {2, 2, 5, 5}), c.operand("w", {3, 2, 3, 3})));
}

MEGANEURA_GRAD_TEST(ConvGrad, Conv2dStridePaddingDilationGroupsGrad, Op::conv2d) {
  GradCheck c;
  Conv2dOptions o;
  o.stride = {2, 1};
  o.padding = {1, 2};
  o.dilation = {1, 2};
  o.groups = 2;
  c.check(c.g.conv2d(c.operand("x", {1, 4, 5, 6}), c.operand("w", {2, 2, 3, 2}), o));
}

MEGANEURA_GRAD_TEST(ConvGrad, Conv2dGradInputGrad, Op::conv2d_grad_input) {
  GradCheck c;
  Conv2dOptions o;
  o.stride = {2, 2};
  o.padding = {1, 1};
  c.check(c.g.conv2d_grad_input(c.operand("dy", {1, 3, 3, 3}), c.operand("w", {3, 2, 3, 3}), o, {5, 6}));
}

MEGANEURA_GRAD_TEST(ConvGrad, Conv2dGradWeightGrad, Op::conv2d_grad_weight) {
  GradCheck c;
  Conv2dOptions o;
  o.padding = {1, 0};
  o.groups = 2;
  c.check(c.g.conv2d_grad_weight(c.operand("x", {2, 4, 4, 4}), c.operand("dy", {2, 2, 4, 3}), o, {3, 2}));
}

MEGANEURA_GRAD_TEST(ConvGrad, MaxPool2dGrad, Op::max_pool2d) {
  GradCheck c;
  Pool2dOptions o;
  o.kernel = {3, 3};
  o.stride = {2, 2};
  o.padding = {1, 1};
  c.check(c.g.max_pool2d(c.operand("x", {1, 2, 5, 5}), o));
}

MEGANEURA_GRAD_TEST(ConvGrad, AvgPool2dGrad, Op::avg_pool2d) {
  GradCheck c;
  Pool2dOptions o;
  o.kernel = {3, 2};
  o.stride = {2, 1};
  o.padding = {1, 0};
  c.check(c.g.exp(c.g.avg_pool2d(c.operand("x", {1, 2, 5, 4}), o)));
}

MEGANEURA_GRAD_TEST(ConvGrad, AvgPool2dGradGrad, Op::avg_pool2d_grad) {
  GradCheck c;
  Pool2dOptions o;
  o.kernel = {2, 2};
  o.stride = {2, 2};
  c.check(c.g.avg_pool2d_grad(c.operand("dy", {1, 2, 2, 3}), o, {4, 6}));
}

MEGANEURA_GRAD_TEST(ConvGrad, UpsampleNearest2xGrad, Op::upsample_nearest2x) {
  GradCheck c;
  c.check(c.g.exp(c.g.upsample_nearest2x(c.operand("x", {1, 2, 2, 3}))));
}

MEGANEURA_GRAD_TEST(ConvGrad, UpsampleNearest2xGradGrad, Op::upsample_nearest2x_grad) {
  GradCheck c;
  c.check(c.g.exp(c.g.upsample_nearest2x_grad(c.operand("dy", {1, 2, 4, 2}))));
}

MEGANEURA_GRAD_TEST(ConvGrad, GlobalAvgPoolGrad, Op::global_avg_pool) {
  GradCheck c;
  c.check(c.g.exp(c.g.global_avg_pool(c.operand("x", {2, 3, 2, 3}))));
}

MEGANEURA_GRAD_TEST(NormGrad, SoftmaxGrad, Op::softmax) {
  GradCheck c;
  c.check(c.g.softmax(c.operand("x", {3, 5}, -2.0, 2.0), 1));
}

MEGANEURA_GRAD_TEST(NormGrad, SoftmaxFirstAxisGrad, Op::softmax) {
  GradCheck c;
  c.check(c.g.softmax(c.operand("x", {3, 2, 4}, -2.0, 2.0), 0));
}

MEGANEURA_GRAD_TEST(NormGrad, LogSoftmaxGrad, Op::log_softmax) {
  GradCheck c;
  c.check(c.g.log_softmax(c.operand("x", {3, 5}, -2.0, 2.0)));
}

MEGANEURA_GRAD_TEST(NormGrad, SoftmaxGradGrad, Op::softmax_grad) {
  GradCheck c;
  Tensor y = c.g.softmax(c.operand("x", {3, 4}), -1);
  c.check(c.g.softmax_grad(y, c.operand("dy", {3, 4}), -1));
}

MEGANEURA_GRAD_TEST(NormGrad, LogSoftmaxGradGrad, Op::log_softmax_grad) {
  GradCheck c;
  Tensor y = c.g.log_softmax(c.operand("x", {3, 4}), 1);
  c.check(c.g.log_softmax_grad(y, c.operand("dy", {3, 4}), 1));
}

MEGANEURA_GRAD_TEST(NormGrad, LayerNormGrad, Op::layer_norm) {
  GradCheck c;
  c.check(c.g.layer_norm(c.operand("x", {2, 3, 5}), c.operand("w", {5}), c.operand("b", {5}), 1e-5));
}

MEGANEURA_GRAD_TEST(NormGrad, RmsNormGrad, Op::rms_norm) {
  GradCheck c;
  c.check(c.g.rms_norm(c.operand("x", {2, 3, 5}), c.operand("w", {5}), 1e-6));
}

MEGANEURA_GRAD_TEST(NormGrad, GroupNormGrad, Op::group_norm) {
  GradCheck c;
  c.check(c.g.group_norm(c.operand("x", {2, 4, 2, 3}), c.operand("w", {4}), c.operand("b", {4}), 2, 1e-5));
}

MEGANEURA_GRAD_TEST(NormGrad, RopeGrad, Op::rope) {
  GradCheck c;
  Tensor offset = c.ints("offset", {}, {3});
  c.check(c.g.rope(c.operand("x", {1, 2, 3, 4}), offset, 100.0));
}

MEGANEURA_GRAD_TEST(NormGrad, RopeGradGrad, Op::rope_grad) {
  GradCheck c;
  Tensor offset = c.ints("offset", {1}, {1});
  c.check(c.g.rope_grad(c.operand("dy", {2, 3, 6}), offset, 1000.0));
}

MEGANEURA_GRAD_TEST(LossGrad, CrossEntropyLabelsGrad, Op::cross_entropy_loss) {
  GradCheck c;
  Tensor labels = c.ints("labels", {4}, {2, -100, 0, 3});
  c.check(c.g.cross_entropy_loss(c.operand("logits", {4, 5}, -2.0, 2.0), labels) * c.operand("scale", {}));
}

MEGANEURA_GRAD_TEST(LossGrad, CrossEntropyProbabilitiesGrad, Op::cross_entropy_loss) {
  GradCheck c;
  Tensor probabilities = c.g.softmax(c.operand("p", {3, 4}), -1);
  c.check_loss(c.g.cross_entropy_loss(c.operand("logits", {3, 4}, -2.0, 2.0), probabilities));
}

MEGANEURA_GRAD_TEST(LossGrad, MseLossGrad, Op::mse_loss) {
  GradCheck c;
  c.check_loss(c.g.exp(c.g.mse_loss(c.operand("prediction", {3, 4}), c.operand("target", {3, 4}))));
}

MEGANEURA_GRAD_TEST(LossGrad, BceWithLogitsGrad, Op::bce_with_logits) {
  GradCheck c;
  Tensor targets = c.g.sigmoid(c.operand("t", {3, 4}));
  c.check_loss(c.g.exp(c.g.bce_with_logits(c.operand("logits", {3, 4}, -3.0, 3.0), targets)));
}

}  // namespace
}  // namespace meganeura::testing
