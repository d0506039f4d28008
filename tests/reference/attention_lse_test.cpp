// Reference: attention_lse (the row log-sum-exp the attention backward reads) against the same
// statistic composed from primitive ops, for full, masked, causal, grouped-query and KV-cache forms.
#include <limits>

#include "reference/helpers.h"

using namespace meganeura;
using reference_test::eval;
using reference_test::expect_near;
using reference_test::random_values;

namespace {

// log Σ_j exp(scale · q kᵀ + mask) over the last axis, from matmul, exp, sum and log.
Tensor composed_lse(Graph& g, Tensor q, Tensor k, double scale, Tensor mask) {
  Tensor scores = g.matmul(q, k, false, true) * scale + mask;
  return g.log(g.sum(g.exp(scores), -1));
}

}  // namespace

TEST(ReferenceAttentionLse, MatchesComposedOpsWithAMask) {
  Graph g;
  Tensor q = g.input("q", {2, 3, 4, 5}), k = g.input("k", {2, 3, 6, 5}), mask = g.input("mask", {4, 6});
  const reference::Feeds feeds{{"q", random_values(120, 1)}, {"k", random_values(180, 2)}, {"mask", random_values(24, 3)}};
  const Tensor lse = g.attention_lse(q, k, {.scale = 0.8}, mask);
  EXPECT_EQ(lse.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(lse.dtype(), DType::f32);
  expect_near(eval(g, feeds, lse), eval(g, feeds, composed_lse(g, q, k, 0.8, mask)), 1e-12);
}

TEST(ReferenceAttentionLse, CausalGroupedQueryAndOffsetMatchExplicitMasks) {
  // Hq = 4 over Hkv = 2: query head h reads kv head h / 2, as if k were repeated per query head.
  Graph g;
  Tensor q = g.input("q", {1, 4, 3, 4}), k = g.input("k", {1, 2, 5, 4});
  Tensor repeated = g.reshape(g.broadcast_to(g.reshape(k, {1, 2, 1, 5, 4}), {1, 2, 2, 5, 4}), {1, 4, 5, 4});
  reference::Feeds feeds{{"q", random_values(48, 4)}, {"k", random_values(40, 5)}};
  const double scale = 0.5;  // 1 / sqrt(D)
  const double inf = std::numeric_limits<float>::infinity();
  // Causal without an offset: query i sits at Skv − S + i = 2 + i and sees keys 0 ..= 2 + i.
  std::vector<float> causal(15, 0.0f);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j)
      if (j > 2 + i) causal[static_cast<size_t>(i * 5 + j)] = static_cast<float>(-inf);
  expect_near(eval(g, feeds, g.attention_lse(q, k, {.causal = true})),
              eval(g, feeds, composed_lse(g, q, repeated, scale, g.constant(causal, {3, 5}))), 1e-12);
  // A KV cache read at offset 1: query i sits at 1 + i; slots past offset + S = 4 are unwritten.
  Tensor offset = g.input("offset", {1}, DType::i32);
  feeds["offset"] = {1};
  std::vector<float> cache(15, 0.0f);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j)
      if (j > 1 + i) cache[static_cast<size_t>(i * 5 + j)] = static_cast<float>(-inf);
  expect_near(eval(g, feeds, g.attention_lse(q, k, {.causal = true}, std::nullopt, offset)),
              eval(g, feeds, composed_lse(g, q, repeated, scale, g.constant(cache, {3, 5}))), 1e-12);
}

TEST(ReferenceAttentionLse, RowWithoutVisibleKeysIsPlusInfinity) {
  Graph g;
  Tensor q = g.input("q", {1, 1, 2, 3}), k = g.input("k", {1, 1, 2, 3});
  const float inf = std::numeric_limits<float>::infinity();
  Tensor mask = g.constant({-inf, -inf, 0.0f, 0.0f}, {2, 2});
  const auto lse = eval(g, {{"q", random_values(6, 6)}, {"k", random_values(6, 7)}}, g.attention_lse(q, k, {}, mask));
  ASSERT_EQ(lse.size(), 2u);
  EXPECT_EQ(lse[0], std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isfinite(lse[1]));
}

TEST(ReferenceAttentionLse, ShapeErrors) {
  Graph g;
  Tensor q = g.input("q", {1, 4, 3, 8}), k = g.input("k", {1, 3, 5, 8});
  EXPECT_ERROR(g.attention_lse(q, k), "attention_lse: query heads must be a multiple of kv heads");
  EXPECT_ERROR(g.attention_lse(q, g.input("k2", {1, 2, 5, 4})), "attention_lse: head dims differ");
  EXPECT_ERROR(g.attention_lse(q, g.input("k3", {1, 2, 2, 8}), {.causal = true}), "needs S <= Skv");
}
