// Finite-difference checks of the elementwise ops' gradient rules, each op in the middle of a graph.
#include <gtest/gtest.h>

#include "grad_check.h"

namespace meganeura::testing {
namespace {

TEST(PointwiseGrad, AddGradBroadcasts) {
  GradCheck c;
  c.check(c.operand("a", {3, 4}) + c.operand("b", {4}));
}

TEST(PointwiseGrad, AddGradBroadcastsKeptAxis) {
  GradCheck c;
  c.check(c.operand("a", {2, 1, 4}) + c.operand("b", {3, 1}));
}

TEST(PointwiseGrad, SubGrad) {
  GradCheck c;
  c.check(c.operand("a", {3, 1}) - c.operand("b", {3, 4}));
}

TEST(PointwiseGrad, MulGrad) {
  GradCheck c;
  c.check(c.operand("a", {2, 3, 4}) * c.operand("b", {3, 1}));
}

TEST(PointwiseGrad, DivGrad) {
  GradCheck c;
  c.check(c.operand("a", {3, 4}) / c.operand("b", {4}, 0.5, 2.0));
}

TEST(PointwiseGrad, NegGrad) {
  GradCheck c;
  c.check(-c.operand("x", {5}));
}

TEST(PointwiseGrad, AbsGrad) {
  GradCheck c;
  c.check(c.g.abs(c.operand("x", {2, 5})));
}

TEST(PointwiseGrad, ExpGrad) {
  GradCheck c;
  c.check(c.g.exp(c.operand("x", {2, 5})));
}

TEST(PointwiseGrad, LogGrad) {
  GradCheck c;
  c.check(c.g.log(c.operand("x", {2, 5}, 0.3, 2.0)));
}

TEST(PointwiseGrad, SqrtGrad) {
  GradCheck c;
  c.check(c.g.sqrt(c.operand("x", {2, 5}, 0.3, 2.0)));
}

TEST(PointwiseGrad, RsqrtGrad) {
  GradCheck c;
  c.check(c.g.rsqrt(c.operand("x", {2, 5}, 0.3, 2.0)));
}

TEST(PointwiseGrad, RecipGrad) {
  GradCheck c;
  c.check(c.g.recip(c.operand("x", {2, 5}, 0.3, 2.0)));
}

TEST(PointwiseGrad, PowGrad) {
  GradCheck c;
  c.check(c.g.pow(c.operand("x", {2, 5}, 0.3, 2.0), 2.7));
}

TEST(PointwiseGrad, PowIntegerExponentGradOnNegatives) {
  GradCheck c;
  c.check(c.g.pow(c.operand("x", {2, 5}), 3.0));
}

TEST(PointwiseGrad, ReluGrad) {
  GradCheck c;
  c.check(c.g.relu(c.operand("x", {3, 5})));
}

TEST(PointwiseGrad, GeluGrad) {
  GradCheck c;
  c.check(c.g.gelu(c.operand("x", {3, 5}, -3.0, 3.0)));
}

TEST(PointwiseGrad, GeluTanhGrad) {
  GradCheck c;
  c.check(c.g.gelu_tanh(c.operand("x", {3, 5}, -3.0, 3.0)));
}

TEST(PointwiseGrad, SiluGrad) {
  GradCheck c;
  c.check(c.g.silu(c.operand("x", {3, 5}, -3.0, 3.0)));
}

TEST(PointwiseGrad, SigmoidGrad) {
  GradCheck c;
  c.check(c.g.sigmoid(c.operand("x", {3, 5}, -3.0, 3.0)));
}

TEST(PointwiseGrad, TanhGrad) {
  GradCheck c;
  c.check(c.g.tanh(c.operand("x", {3, 5}, -2.0, 2.0)));
}

TEST(PointwiseGrad, SinGrad) {
  GradCheck c;
  c.check(c.g.sin(c.operand("x", {3, 5}, -3.0, 3.0)));
}

TEST(PointwiseGrad, CosGrad) {
  GradCheck c;
  c.check(c.g.cos(c.operand("x", {3, 5}, -3.0, 3.0)));
}

TEST(PointwiseGrad, MaximumGrad) {
  GradCheck c;
  c.check(c.g.maximum(c.operand("a", {3, 4}), c.operand("b", {4})));
}

TEST(PointwiseGrad, MinimumGrad) {
  GradCheck c;
  c.check(c.g.minimum(c.operand("a", {3, 4}), c.operand("b", {3, 1})));
}

TEST(PointwiseGrad, WhereGrad) {
  GradCheck c;
  Tensor condition = c.g.greater(c.data("selector", {3, 4}), c.g.scalar(0.0));
  c.check(c.g.where(condition, c.operand("a", {3, 4}), c.operand("b", {4})));
}

// A float cast rounds (to f32 or narrower) in the reference, so central differences cannot reach
// 1e-6; instead the gradient through the cast must equal the gradient of the same graph without it
// (the rule passes the gradient straight through, cast back to the operand's dtype, so the
// gradient itself is rounded to the narrow format on the way: the tolerance is that format's).
TEST(PointwiseGrad, CastBetweenFloatsGradIsStraightThrough) {
  const std::pair<DType, double> formats[] = {{DType::f32, 1e-6}, {DType::f16, 1e-3}, {DType::bf16, 8e-3}};
  for (const auto& [to, tolerance] : formats) {
    std::vector<double> grads[2];
    for (int with_cast = 0; with_cast < 2; ++with_cast) {
      GradCheck c(5);
      Tensor x = c.operand("x", {2, 3});
      Tensor y = with_cast ? c.g.cast(c.g.cast(x, to), DType::f32) : x;
      c.g.set_outputs({c.g.sum_all(y * c.g.constant(c.random(6, -1, 1), {2, 3}))});
      const GradientGraph d = differentiate(c.g);
      grads[with_cast] = reference::run(d.graph, c.feeds)[static_cast<size_t>(d.gradients.at("x"))];
    }
    EXPECT_LE(relative_error(grads[1], grads[0]), tolerance) << dtype_name(to);
  }
}

TEST(PointwiseGrad, SwigluGrad) {
  GradCheck c;
  c.check(c.g.swiglu(c.operand("gate", {3, 4}, -3.0, 3.0), c.operand("up", {3, 4})));
}

TEST(PointwiseGrad, DropoutGrad) {
  GradCheck c;
  Tensor seed = c.ints("seed", {}, {7});
  Tensor step = c.ints("step", {1}, {3});
  c.check(c.g.dropout(c.operand("x", {4, 6}), seed, step, 0.3));
}

}  // namespace
}  // namespace meganeura::testing
