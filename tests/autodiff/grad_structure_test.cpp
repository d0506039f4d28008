// Finite-difference checks of the reductions' and data movement ops' gradient rules.
#include <gtest/gtest.h>

#include "grad_check.h"

namespace meganeura::testing {
namespace {

TEST(ReductionGrad, SumGrad) {
  GradCheck c;
  c.check(c.g.exp(c.g.sum(c.operand("x", {2, 3, 4}), 1)));
}

TEST(ReductionGrad, SumKeepdimGrad) {
  GradCheck c;
  c.check(c.g.exp(c.g.sum(c.operand("x", {2, 3, 4}), -1, true)));
}

TEST(ReductionGrad, MeanGrad) {
  GradCheck c;
  c.check(c.g.exp(c.g.mean(c.operand("x", {2, 3, 4}), 0)));
}

TEST(ReductionGrad, MeanKeepdimGrad) {
  GradCheck c;
  c.check(c.g.exp(c.g.mean(c.operand("x", {2, 3, 4}), 2, true)));
}

TEST(ReductionGrad, MaxGrad) {
  GradCheck c;
  c.check(c.g.exp(c.g.max(c.operand("x", {3, 5}), 1)));
}

TEST(ReductionGrad, MaxKeepdimGradFirstAxis) {
  GradCheck c;
  c.check(c.g.max(c.operand("x", {3, 5}), 0, true));
}

TEST(ReductionGrad, SumAllGrad) {
  GradCheck c;
  c.check(c.g.exp(c.g.sum_all(c.operand("x", {2, 3}))));
}

TEST(ReductionGrad, MeanAllGrad) {
  GradCheck c;
  c.check(c.g.exp(c.g.mean_all(c.operand("x", {2, 3}))));
}

TEST(MovementGrad, ReshapeGrad) {
  GradCheck c;
  c.check(c.g.reshape(c.operand("x", {2, 6}), {3, -1}) * c.operand("y", {4}));
}

TEST(MovementGrad, PermuteGrad) {
  GradCheck c;
  c.check(c.g.exp(c.g.permute(c.operand("x", {2, 3, 4}), {2, 0, 1})));
}

TEST(MovementGrad, TransposeGrad) {
  GradCheck c;
  c.check(c.g.transpose(c.operand("x", {3, 4})) * c.operand("y", {4, 1}));
}

TEST(MovementGrad, BroadcastToGrad) {
  GradCheck c;
  c.check(c.g.exp(c.g.broadcast_to(c.operand("x", {3, 1}), {2, 3, 4})));
}

TEST(MovementGrad, SliceGrad) {
  GradCheck c;
  Tensor x = c.operand("x", {3, 6});
  c.check(c.g.exp(c.g.slice(x, 1, 2, 5)) + c.g.slice(c.g.slice(x, 0, 1, 2), 1, 0, 3));
}

TEST(MovementGrad, SplitGrad) {
  GradCheck c;
  auto parts = c.g.split(c.operand("x", {5, 2}), 0, {2, 3});
  c.check(c.g.sum(parts[0], 0) * c.g.sum(parts[1], 0));
}

TEST(MovementGrad, ConcatGrad) {
  GradCheck c;
  c.check(c.g.exp(c.g.concat({c.operand("a", {2, 3}), c.operand("b", {2, 1}), c.operand("c", {2, 2})}, 1)));
}

TEST(MovementGrad, EmbeddingGradRepeatedIds) {
  GradCheck c;
  Tensor ids = c.ints("ids", {2, 3}, {4, 0, 4, 2, 1, 4});
  c.check(c.g.exp(c.g.embedding(c.operand("table", {5, 3}), ids)));
}

TEST(MovementGrad, ScatterAddRowsGrad) {
  GradCheck c;
  Tensor ids = c.ints("ids", {4}, {1, 3, 1, 0});
  c.check(c.g.exp(c.g.scatter_add_rows(c.operand("src", {4, 3}), ids, 5)));
}

TEST(MovementGrad, FanOutAccumulatesGrad) {
  GradCheck c;
  Tensor x = c.operand("x", {3, 4});
  c.check(x * x + c.g.exp(x) * c.g.sum(x, 0, true));
}

}  // namespace
}  // namespace meganeura::testing
