// Identities between ops on random data: broadcasting equals an explicit broadcast_to, transpose
// flags equal explicit transposes, permutations invert, split/concat round-trip.
#include "reference/helpers.h"

using namespace meganeura;
using reference_test::eval;
using reference_test::expect_near;
using reference_test::random_values;

TEST(ReferenceProperties, ImplicitBroadcastEqualsBroadcastTo) {
  const std::vector<std::pair<Shape, Shape>> cases{
      {{2, 3, 4}, {4}}, {{2, 1, 4}, {3, 1}}, {{1}, {2, 2}}, {{5, 1, 1}, {1, 3, 2}}, {{}, {3}}};
  uint64_t seed = 1;
  for (const auto& [sa, sb] : cases) {
    SCOPED_TRACE(format_shape(sa) + " with " + format_shape(sb));
    Graph g;
    Tensor a = g.input("a", sa), b = g.input("b", sb);
    const reference::Feeds feeds{{"a", random_values(static_cast<size_t>(num_elements(sa)), seed++)},
                                 {"b", random_values(static_cast<size_t>(num_elements(sb)), seed++)}};
    const Shape out = broadcast_shapes(sa, sb, "test");
    Tensor ea = g.broadcast_to(a, out), eb = g.broadcast_to(b, out);
    for (Op op : {Op::add, Op::sub, Op::mul, Op::maximum, Op::greater}) {
      Node implicit;
      implicit.op = op;
      implicit.inputs = {a.id, b.id};
      Node explicit_;
      explicit_.op = op;
      explicit_.inputs = {ea.id, eb.id};
      expect_near(eval(g, feeds, g.add_node(implicit)), eval(g, feeds, g.add_node(explicit_)));
    }
  }
}

TEST(ReferenceProperties, TransposeFlagsEqualExplicitTransposes) {
  Graph g;
  Tensor a = g.input("a", {2, 3, 4, 5}), b = g.input("b", {3, 6, 4});
  const reference::Feeds feeds{{"a", random_values(120, 1)}, {"b", random_values(72, 2)}};
  // aᵀ [.., 5, 4] · bᵀ [.., 4, 6]
  expect_near(eval(g, feeds, g.matmul(a, b, true, true)), eval(g, feeds, g.matmul(g.transpose(a), g.transpose(b))),
              1e-13);
}

TEST(ReferenceProperties, PermutationsInvertAndSplitConcatRoundTrips) {
  Graph g;
  Tensor x = g.input("x", {2, 3, 4, 5});
  const reference::Feeds feeds{{"x", random_values(120, 3)}};
  Tensor p = g.permute(x, {2, 0, 3, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 5, 3}));
  expect_near(eval(g, feeds, g.permute(p, {1, 3, 0, 2})), feeds.at("x"));
  auto parts = g.split(x, 2, {1, 0, 3});
  expect_near(eval(g, feeds, g.concat(parts, 2)), feeds.at("x"));
}

TEST(ReferenceProperties, SoftmaxComposedFromPrimitivesEqualsFusedOp) {
  Graph g;
  Tensor x = g.input("x", {3, 7});
  const reference::Feeds feeds{{"x", random_values(21, 4)}};
  Tensor shifted = x - g.max(x, -1, true);
  Tensor e = g.exp(shifted);
  expect_near(eval(g, feeds, e / g.sum(e, -1, true)), eval(g, feeds, g.softmax(x)), 1e-15);
  Tensor w = g.input("w", {7});
  reference::Feeds f2 = feeds;
  f2["w"] = random_values(7, 5);
  Tensor rms = x * g.rsqrt(g.mean(x * x, -1, true) + 1e-6) * w;
  expect_near(eval(g, f2, rms), eval(g, f2, g.rms_norm(x, w, 1e-6)), 1e-14);
  expect_near(eval(g, f2, x * g.sigmoid(x)), eval(g, f2, g.silu(x)), 1e-15);
}
