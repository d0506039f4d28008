// Finite-difference checks of the elementwise ops' gradient rules, each op in the middle of a graph.
#include <gtest/gtest.h>

#include "grad_check.h"

namespace meganeura::testing {
namespace {

MEGANEURA_GRAD_TEST(PointwiseGrad, AddGradBroadcasts, Op::add) {
  GradCheck c;
  c.check(c.operand("a", {3, 4}) + c.operand("b", {4}));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, AddGradBroadcastsKeptAxis, Op::add) {
  GradCheck c;
  c.check(c.operand("a", {2, 1, 4}) + c.operand("b", {3, 1}));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, SubGrad, Op::sub) {
  GradCheck c;
  c.check(c.operand("a", {3, 1}) - c.operand("b", {3, 4}));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, MulGrad, Op::mul) {
  GradCheck c;
  c.check(c.operand("a", {2, 3, 4}) * c.operand("b", {3, 1}));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, DivGrad, Op::div) {
  GradCheck c;
  c.check(c.operand("a", {3, 4}) / c.operand("b", {4}, 0.5, 2.0));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, NegGrad, Op::neg) {
  GradCheck c;
  c.check(-c.operand("x", {5}));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, AbsGrad, Op::abs) {
  GradCheck c;
  c.check(c.g.abs(c.operand("x", {2, 5})));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, ExpGrad, Op::exp) {
  GradCheck c;
  c.check(c.g.exp(c.operand("x", {2, 5})));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, LogGrad, Op::log) {
  GradCheck c;
  c.check(c.g.log(c.operand("x", {2, 5}, 0.3, 2.0)));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, SqrtGrad, Op::sqrt) {
  GradCheck c;
  c.check(c.g.sqrt(c.operand("x", {2, 5}, 0.3, 2.0)));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, RsqrtGrad, Op::rsqrt) {
  GradCheck c;
  c.check(c.g.rsqrt(c.operand("x", {2, 5}, 0.3, 2.0)));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, RecipGrad, Op::recip) {
  GradCheck c;
  c.check(c.g.recip(c.operand("x", {2, 5}, 0.3, 2.0)));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, PowGrad, Op::pow) {
  GradCheck c;
  c.check(c.g.pow(c.operand("x", {2, 5}, 0.3, 2.0), 2.7));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, PowIntegerExponentGradOnNegatives, Op::pow) {
  GradCheck c;
  c.check(c.g.pow(c.operand("x", {2, 5}), 3.0));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, ReluGrad, Op::relu) {
  GradCheck c;
  c.check(c.g.relu(c.operand("x", {3, 5})));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, GeluGrad, Op::gelu) {
  GradCheck c;
  c.check(c.g.gelu(c.operand("x", {3, 5}, -3.0, 3.0)));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, GeluTanhGrad, Op::gelu_tanh) {
  GradCheck c;
  c.check(c.g.gelu_tanh(c.operand("x", {3, 5}, -3.0, 3.0)));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, SiluGrad, Op::silu) {
  GradCheck c;
  c.check(c.g.silu(c.operand("x", {3, 5}, -3.0, 3.0)));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, SigmoidGrad, Op::sigmoid) {
  GradCheck c;
  c.check(c.g.sigmoid(c.operand("x", {3, 5}, -3.0, 3.0)));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, TanhGrad, Op::tanh) {
  GradCheck c;
  c.check(c.g.tanh(c.operand("x", {3, 5}, -2.0, 2.0)));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, SinGrad, Op::sin) {
  GradCheck c;
  c.check(c.g.sin(c.operand("x", {3, 5}, -3.0, 3.0)));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, CosGrad, Op::cos) {
  GradCheck c;
  c.check(c.g.cos(c.operand("x", {3, 5}, -3.0, 3.0)));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, MaximumGrad, Op::maximum) {
  GradCheck c;
  c.check(c.g.maximum(c.operand("a", {3, 4}), c.operand("b", {4})));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, MinimumGrad, Op::minimum) {
  GradCheck c;
  c.check(c.g.minimum(c.operand("a", {3, 4}), c.operand("b", {3, 1})));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, WhereGrad, Op::where) {
  GradCheck c;
  Tensor condition = c.g.greater(c.data("selector", {3, 4}), c.g.scalar(0.0));
  c.check(c.g.where(condition, c.operand("a", {3, 4}), c.operand("b", {4})));
}

// A float cast rounds (to f32 or narrower) in the reference, so central differences cannot reach
// 1e-6; instead the gradient through the cast must equal the gradient of the same graph without it
// (the rule passes the gradient straight through, cast back to the operand's dtype, so the
// gradient itself is rounded to the narrow format on the way: the tolerance is that format's).
MEGANEURA_GRAD_TEST(PointwiseGrad, CastBetweenFloatsGradIsStraightThrough, Op::cast) {
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

MEGANEURA_GRAD_TEST(PointwiseGrad, SwigluGrad, Op::swiglu) {
  GradCheck c;
  c.check(c.g.swiglu(c.operand("gate", {3, 4}, -3.0, 3.0), c.operand("up", {3, 4})));
}

MEGANEURA_GRAD_TEST(PointwiseGrad, DropoutGrad, Op::dropout) {
  GradCheck c;
  Tensor seed = c.ints("seed", {}, {7});
  Tensor step = c.ints("step", {1}, {3});
  c.check(c.g.dropout(c.operand("x", {4, 6}), seed, step, 0.3));
}

}  // namespace
}  // namespace meganeura::testing
