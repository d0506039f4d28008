// Finite-difference checks of the reductions' and data movement ops' gradient rules.
#include <gtest/gtest.h>

#include "grad_check.h"

namespace meganeura::testing {
namespace {

MEGANEURA_GRAD_TEST(ReductionGrad, SumGrad, Op::sum) {
  GradCheck c;
  c.check(c.g.exp(c.g.sum(c.operand("x", {2, 3, 4}), 1)));
}

MEGANEURA_GRAD_TEST(ReductionGrad, SumKeepdimGrad, Op::sum) {
  GradCheck c;
  c.check(c.g.exp(c.g.sum(c.operand("x", {2, 3, 4}), -1, true)));
}

MEGANEURA_GRAD_TEST(ReductionGrad, MeanGrad, Op::mean) {
  GradCheck c;
  c.check(c.g.exp(c.g.mean(c.operand("x", {2, 3, 4}), 0)));
}

MEGANEURA_GRAD_TEST(ReductionGrad, MeanKeepdimGrad, Op::mean) {
  GradCheck c;
  c.check(c.g.exp(c.g.mean(c.operand("x", {2, 3, 4}), 2, true)));
}

MEGANEURA_GRAD_TEST(ReductionGrad, MaxGrad, Op::max) {
  GradCheck c;
  c.check(c.g.exp(c.g.max(c.operand("x", {3, 5}), 1)));
}

MEGANEURA_GRAD_TEST(ReductionGrad, MaxKeepdimGradFirstAxis, Op::max) {
  GradCheck c;
  c.check(c.g.max(c.operand("x", {3, 5}), 0, true));
}

MEGANEURA_GRAD_TEST(ReductionGrad, SumAllGrad, Op::sum_all) {
  GradCheck c;
  c.check(c.g.exp(c.g.sum_all(c.operand("x", {2, 3}))));
}

MEGANEURA_GRAD_TEST(ReductionGrad, MeanAllGrad, Op::mean_all) {
  GradCheck c;
  c.check(c.g.exp(c.g.mean_all(c.operand("x", {2, 3}))));
}

MEGANEURA_GRAD_TEST(MovementGrad, ReshapeGrad, Op::reshape) {
  GradCheck c;
  c.check(c.g.reshape(c.operand("x", {2, 6}), {3, -1}) * c.operand("y", {4}));
}

MEGANEURA_GRAD_TEST(MovementGrad, PermuteGrad, Op::permute) {
  GradCheck c;
  c.check(c.g.exp(c.g.permute(c.operand("x", {2, 3, 4}), {2, 0, 1})));
}

MEGANEURA_GRAD_TEST(MovementGrad, TransposeGrad, Op::permute) {
  GradCheck c;
  c.check(c.g.transpose(c.operand("x", {3, 4})) * c.operand("y", {4, 1}));
}

MEGANEURA_GRAD_TEST(MovementGrad, BroadcastToGrad, Op::broadcast_to) {
  GradCheck c;
  c.check(c.g.exp(c.g.broadcast_to(c.operand("x", {3, 1}), {2, 3, 4})));
}

MEGANEURA_GRAD_TEST(MovementGrad, SliceGrad, Op::slice) {
  GradCheck c;
  Tensor x = c.operand("x", {3, 6});
  c.check(c.g.exp(c.g.slice(x, 1, 2, 5)) + c.g.slice(c.g.slice(x, 0, 1, 2), 1, 0, 3));
}

MEGANEURA_GRAD_TEST(MovementGrad, SplitGrad, Op::slice) {
  GradCheck c;
  auto parts = c.g.split(c.operand("x", {5, 2}), 0, {2, 3});
  c.check(c.g.sum(parts[0], 0) * c.g.sum(parts[1], 0));
}

MEGANEURA_GRAD_TEST(MovementGrad, ConcatGrad, Op::concat) {
  GradCheck c;
  c.check(c.g.exp(c.g.concat({c.operand("a", {2, 3}), c.operand("b", {2, 1}), c.operand("c", {2, 2})}, 1)));
}

MEGANEURA_GRAD_TEST(MovementGrad, EmbeddingGradRepeatedIds, Op::embedding) {
  GradCheck c;
  Tensor ids = c.ints("ids", {2, 3}, {4, 0, 4, 2, 1, 4});
  c.check(c.g.exp(c.g.embedding(c.operand("table", {5, 3}), ids)));
}

MEGANEURA_GRAD_TEST(MovementGrad, ScatterAddRowsGrad, Op::scatter_add_rows) {
  GradCheck c;
  Tensor ids = c.ints("ids", {4}, {1, 3, 1, 0});
  c.check(c.g.exp(c.g.scatter_add_rows(c.operand("src", {4, 3}), ids, 5)));
}

MEGANEURA_GRAD_TEST(MovementGrad, FanOutAccumulatesGrad, Op::mul) {
  GradCheck c;
  Tensor x = c.operand("x", {3, 4});
  c.check(x * x + c.g.exp(x) * c.g.sum(x, 0, true));
}

}  // namespace
}  // namespace meganeura::testing
