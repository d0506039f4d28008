// Edge shapes: scalars ([]), size-1 dims, single elements and empty tensors.
#include "reference/helpers.h"

using namespace meganeura;
using reference_test::eval;
using reference_test::expect_near;

TEST(ReferenceEdgeShapes, ScalarsBroadcastAgainstEverything) {
  Graph g;
  Tensor s = g.input("s", {}), x = g.input("x", {2, 3});
  const reference::Feeds feeds{{"s", {2}}, {"x", {1, 2, 3, 4, 5, 6}}};
  EXPECT_EQ((s * x).shape(), (Shape{2, 3}));
  expect_near(eval(g, feeds, s * x), {2, 4, 6, 8, 10, 12});
  expect_near(eval(g, feeds, x - s), {-1, 0, 1, 2, 3, 4});
  EXPECT_EQ(g.exp(s).shape(), Shape{});
  expect_near(eval(g, feeds, g.exp(s)), {std::exp(2.0)});
  expect_near(eval(g, feeds, g.reshape(s, {1, 1})), {2});
  expect_near(eval(g, feeds, g.broadcast_to(s, {2, 2})), {2, 2, 2, 2});
  expect_near(eval(g, feeds, g.sum_all(s)), {2});
  expect_near(eval(g, feeds, g.where(g.greater(x, s * 1.5), x, s)), {2, 2, 2, 4, 5, 6});
}

TEST(ReferenceEdgeShapes, SizeOneDims) {
  Graph g;
  Tensor x = g.input("x", {1, 1}), v = g.input("v", {1, 4});
  const reference::Feeds feeds{{"x", {3}}, {"v", {1, 2, 3, 4}}};
  expect_near(eval(g, feeds, g.matmul(x, v)), {3, 6, 9, 12});
  expect_near(eval(g, feeds, g.softmax(x)), {1});
  expect_near(eval(g, feeds, g.log_softmax(v, 0)), {0, 0, 0, 0});
  expect_near(eval(g, feeds, g.sum(v, 0)), {1, 2, 3, 4});
  expect_near(eval(g, feeds, g.argmax(x, 0)), {0});
  expect_near(eval(g, feeds, g.concat({v}, 1)), {1, 2, 3, 4});
  EXPECT_EQ(g.mean(v, 0).shape(), (Shape{4}));
  EXPECT_EQ(g.max(x, 1, true).shape(), (Shape{1, 1}));
  // Attention over a single key returns that key's value whatever the scores.
  Tensor q = g.input("q", {1, 2, 1, 2}), k = g.input("k", {1, 1, 1, 2}), val = g.input("val", {1, 1, 1, 3});
  reference::Feeds f2 = feeds;
  f2["q"] = {5, -3, 0.1, 7};
  f2["k"] = {2, 9};
  f2["val"] = {1, -2, 4};
  expect_near(eval(g, f2, g.attention(q, k, val, {.causal = true})), {1, -2, 4, 1, -2, 4});
}

TEST(ReferenceEdgeShapes, EmptyTensors) {
  Graph g;
  Tensor x = g.input("x", {0, 3}), y = g.input("y", {3});
  const reference::Feeds feeds{{"x", {}}, {"y", {1, 2, 3}}};
  EXPECT_EQ((x + y).shape(), (Shape{0, 3}));
  EXPECT_TRUE(eval(g, feeds, x + y).empty());
  expect_near(eval(g, feeds, g.sum(x, 0)), {0, 0, 0});
  EXPECT_TRUE(eval(g, feeds, g.sum(x, 1)).empty());
  expect_near(eval(g, feeds, g.concat({x, g.reshape(y, {1, 3})}, 0)), {1, 2, 3});
  EXPECT_TRUE(eval(g, feeds, g.transpose(x)).empty());
  Tensor w = g.input("w", {3, 2});
  reference::Feeds f2 = feeds;
  f2["w"] = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(g.matmul(x, w).shape(), (Shape{0, 2}));
  EXPECT_TRUE(eval(g, f2, g.matmul(x, w)).empty());
  EXPECT_ERROR(eval(g, f2, g.max(x, 0)), "max over an empty axis of [0, 3]");
}

TEST(ReferenceEdgeShapes, CopiedGraphsAreIndependent) {
  Graph g;
  Tensor x = g.input("x", {2});
  Tensor y = g.exp(x);
  Graph copy = g;
  Tensor y2 = copy.tensor(y.id);
  Tensor z = copy.sum_all(y2);
  EXPECT_EQ(copy.size(), g.size() + 1);
  EXPECT_EQ(z.graph, &copy);
  expect_near(eval(copy, {{"x", {0, 1}}}, z), {1 + std::exp(1.0)});
}
