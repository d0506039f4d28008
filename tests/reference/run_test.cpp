// The reference driver: feeds, parameters' initial values, every node's value returned.
#include "reference/helpers.h"

using namespace meganeura;
using reference_test::expect_near;

TEST(ReferenceRun, ReturnsEveryNodeAndInitialisesUnfedParameters) {
  Graph g;
  Tensor x = g.input("x", {2});
  Tensor w = g.parameter("w", {2}, Init::normal(0, 1));
  Tensor y = x * w;
  Tensor z = g.sum_all(y);
  g.set_outputs({z});
  const auto values = reference::run(g, {{"x", {2, 3}}}, {.seed = 4});
  ASSERT_EQ(values.size(), g.size());
  const auto init = initial_values(Init::normal(0, 1), {2}, parameter_seed(4, "w"));
  expect_near(values[static_cast<size_t>(w.id)], {init[0], init[1]});
  expect_near(values[static_cast<size_t>(y.id)], {2.0 * init[0], 3.0 * init[1]});
  expect_near(values[static_cast<size_t>(z.id)], {2.0 * init[0] + 3.0 * init[1]}, 1e-12);
  const auto fed = reference::run(g, {{"x", {2, 3}}, {"w", {0.5, -1}}});
  expect_near(fed[static_cast<size_t>(z.id)], {-2.0});
}

TEST(ReferenceRun, FeedErrorsAreReported) {
  Graph g;
  Tensor x = g.input("x", {2, 2});
  g.exp(x);
  EXPECT_ERROR(reference::run(g, {}), "reference::run: input \"x\" [2, 2] was not fed");
  EXPECT_ERROR(reference::run(g, {{"x", {1, 2, 3}}}), "\"x\" has shape [2, 2] (4 values), fed 3");
  EXPECT_ERROR(reference::run(g, {{"x", {1, 2, 3, 4}}, {"y", {1}}}), "feed \"y\" names no node of the graph");
  Tensor c = g.constant({1, 2}, {2});
  g.set_name(c, "c");
  EXPECT_ERROR(reference::run(g, {{"x", {1, 2, 3, 4}}, {"c", {1, 2}}}), "feed \"c\" names a constant node");
}

TEST(ReferenceRun, LeavesConstantsAndScalars) {
  Graph g;
  Tensor c = g.constant({1.5f, -2.0f}, {2});
  Tensor s = g.scalar(0.25);
  const auto v = reference::run(g, {});
  expect_near(v[static_cast<size_t>(c.id)], {1.5, -2.0});
  expect_near(v[static_cast<size_t>(s.id)], {0.25});
}

TEST(ReferenceRun, RoundTo) {
  EXPECT_DOUBLE_EQ(reference::round_to(DType::f16, 2049.0), 2048.0);  // ties to even
  EXPECT_DOUBLE_EQ(reference::round_to(DType::f16, 2051.0), 2052.0);
  EXPECT_DOUBLE_EQ(reference::round_to(DType::bf16, 257.0), 256.0);
  EXPECT_DOUBLE_EQ(reference::round_to(DType::i32, -2.9), -2.0);
  EXPECT_DOUBLE_EQ(reference::round_to(DType::f16, -0.0), -0.0);
}

TEST(ReferenceRun, TargetsComputeOnlyWhatTheyNeed) {
  Graph g;
  Tensor x = g.input("x", {2});
  Tensor unused = g.input("unused", {3});
  Tensor y = g.exp(x);
  Tensor z = g.log(unused);
  const auto values = reference::run(g, {{"x", {0, 1}}}, {.targets = {y.id}});
  expect_near(values[static_cast<size_t>(y.id)], {1.0, std::exp(1.0)});
  EXPECT_TRUE(values[static_cast<size_t>(z.id)].empty());
  EXPECT_ERROR(reference::run(g, {{"x", {0, 1}}}, {.targets = {z.id}}), "input \"unused\" [3] was not fed");
  EXPECT_ERROR(reference::run(g, {{"x", {0, 1}}}, {.targets = {42}}), "id 42 is out of range");
}
