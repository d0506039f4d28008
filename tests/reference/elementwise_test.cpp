// Reference: elementwise ops, reductions, movement and matrix products on hand-checked cases.
#include <limits>

#include "reference/helpers.h"

using namespace meganeura;
using reference_test::eval;
using reference_test::expect_near;

TEST(ReferenceElementwise, BinaryOpsBroadcast) {
  Graph g;
  Tensor a = g.input("a", {2, 1}), b = g.input("b", {3});
  const reference::Feeds feeds{{"a", {1, 2}}, {"b", {10, 20, 40}}};
  expect_near(eval(g, feeds, a + b), {11, 21, 41, 12, 22, 42});
  expect_near(eval(g, feeds, a - b), {-9, -19, -39, -8, -18, -38});
  expect_near(eval(g, feeds, a * b), {10, 20, 40, 20, 40, 80});
  expect_near(eval(g, feeds, b / a), {10, 20, 40, 5, 10, 20});
  expect_near(eval(g, feeds, 3.0 - a), {2, 1});
  expect_near(eval(g, feeds, -a), {-1, -2});
  Tensor c = g.input("c", {3});
  const reference::Feeds f2{{"a", {1, 2}}, {"b", {10, 20, 40}}, {"c", {15, -20, 40}}};
  expect_near(eval(g, f2, g.maximum(b, c)), {15, 20, 40});
  expect_near(eval(g, f2, g.minimum(b, c)), {10, -20, 40});
  expect_near(eval(g, f2, g.greater(b, c)), {0, 1, 0});
  expect_near(eval(g, f2, g.where(g.greater(b, c), a, c)), {15, 1, 40, 15, 2, 40});
}

TEST(ReferenceElementwise, UnaryOps) {
  Graph g;
  Tensor x = g.input("x", {1});
  auto at = [&](Tensor t, double v) { return eval(g, {{"x", {v}}}, t)[0]; };
  EXPECT_DOUBLE_EQ(at(g.abs(x), -2.5), 2.5);
  EXPECT_DOUBLE_EQ(at(g.exp(x), 1.0), std::exp(1.0));
  EXPECT_DOUBLE_EQ(at(g.log(x), std::exp(2.0)), 2.0);
  EXPECT_DOUBLE_EQ(at(g.sqrt(x), 9.0), 3.0);
  EXPECT_DOUBLE_EQ(at(g.rsqrt(x), 4.0), 0.5);
  EXPECT_DOUBLE_EQ(at(g.recip(x), 4.0), 0.25);
  EXPECT_DOUBLE_EQ(at(g.pow(x, 1.5), 4.0), 8.0);
  EXPECT_DOUBLE_EQ(at(g.relu(x), -1.0), 0.0);
  EXPECT_DOUBLE_EQ(at(g.relu(x), 2.0), 2.0);
  EXPECT_NEAR(at(g.gelu(x), 1.0), 0.8413447460685429, 1e-15);
  EXPECT_NEAR(at(g.gelu(x), -1.0), -0.15865525393145707, 1e-15);
  EXPECT_NEAR(at(g.gelu_tanh(x), 1.0), 0.8411919906082768, 1e-15);
  EXPECT_NEAR(at(g.silu(x), 1.0), 0.7310585786300049, 1e-15);
  EXPECT_NEAR(at(g.sigmoid(x), -2.0), 0.11920292202211755, 1e-15);
  EXPECT_NEAR(at(g.tanh(x), 0.5), 0.46211715726000974, 1e-15);
  EXPECT_NEAR(at(g.sin(x), 0.5), 0.479425538604203, 1e-15);
  EXPECT_NEAR(at(g.cos(x), 0.5), 0.8775825618903728, 1e-15);
  EXPECT_DOUBLE_EQ(at(g.stop_gradient(x), 0.75), 0.75);
}

TEST(ReferenceElementwise, SwigluIsSiluTimesUp) {
  Graph g;
  Tensor gate = g.input("g", {2}), up = g.input("u", {2});
  const auto v = eval(g, {{"g", {1.0, -2.0}}, {"u", {3.0, 0.5}}}, g.swiglu(gate, up));
  expect_near(v, {3.0 * 0.7310585786300049, 0.5 * -2.0 * 0.11920292202211755}, 1e-15);
}

TEST(ReferenceElementwise, CastRoundsToTheTargetFormat) {
  Graph g;
  Tensor x = g.input("x", {5});
  const reference::Feeds feeds{{"x", {1.0 / 3.0, -1.7, 70000.0, 1e-7, 2.5}}};
  const auto f16 = eval(g, feeds, g.cast(x, DType::f16));
  EXPECT_DOUBLE_EQ(f16[0], 0.333251953125);
  EXPECT_DOUBLE_EQ(f16[1], -1.7001953125);
  EXPECT_EQ(f16[2], std::numeric_limits<double>::infinity());
  EXPECT_DOUBLE_EQ(f16[3], 1.1920928955078125e-07);  // subnormal: nearest multiple of 2^-24
  const auto bf16 = eval(g, feeds, g.cast(x, DType::bf16));
  EXPECT_DOUBLE_EQ(bf16[0], 0.333984375);
  EXPECT_DOUBLE_EQ(bf16[2], 70144.0);
  expect_near(eval(g, feeds, g.cast(x, DType::i32)), {0, -1, 70000, 0, 2});
  EXPECT_DOUBLE_EQ(eval(g, feeds, g.cast(x, DType::f32))[0], static_cast<double>(1.0f / 3.0f));
}

TEST(ReferenceElementwise, IntegerArithmeticStaysIntegral) {
  Graph g;
  Tensor i = g.input("i", {3}, DType::i32);
  expect_near(eval(g, {{"i", {7, -7, 9}}}, i / 2.0), {3, -3, 4});
  expect_near(eval(g, {{"i", {7, -7, 9}}}, i * 3.0 + 1.0), {22, -20, 28});
}

TEST(ReferenceElementwise, DropoutKeepsScalesAndIsIdentityInInference) {
  Graph g;
  Tensor x = g.input("x", {40});
  Tensor seed = g.input("seed", {1}, DType::i32), step = g.input("step", {}, DType::i32);
  Tensor y = g.dropout(x, seed, step, 0.25);
  const auto data = reference_test::random_values(40, 3);
  const reference::Feeds feeds{{"x", data}, {"seed", {9}}, {"step", {2}}};
  const auto v = eval(g, feeds, y);
  int dropped = 0;
  for (uint32_t i = 0; i < 40; ++i) {
    const bool keep = dropout_keep(9, 2, i, 0.25);
    EXPECT_DOUBLE_EQ(v[i], keep ? data[i] / 0.75 : 0.0);
    dropped += !keep;
  }
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, 40);
  expect_near(eval(g, feeds, y, {.training = false}), data);
}

TEST(ReferenceReductions, OverAnAxisAndEverything) {
  Graph g;
  Tensor x = g.input("x", {2, 3});
  const reference::Feeds feeds{{"x", {1, 5, 3, 6, 2, 6}}};
  expect_near(eval(g, feeds, g.sum(x, 0)), {7, 7, 9});
  expect_near(eval(g, feeds, g.sum(x, 1, true)), {9, 14});
  expect_near(eval(g, feeds, g.mean(x, -1)), {3, 14.0 / 3.0});
  expect_near(eval(g, feeds, g.max(x, 0)), {6, 5, 6});
  expect_near(eval(g, feeds, g.argmax(x, 1)), {1, 0});  // ties: the first maximum
  expect_near(eval(g, feeds, g.argmax(x, 0)), {1, 0, 1});
  expect_near(eval(g, feeds, g.sum_all(x)), {23});
  expect_near(eval(g, feeds, g.mean_all(x)), {23.0 / 6.0});
  Tensor y = g.input("y", {2, 3, 2});
  const auto data = reference_test::random_values(12, 1);
  const auto middle = eval(g, {{"x", {1, 5, 3, 6, 2, 6}}, {"y", data}}, g.sum(y, 1));
  for (int a = 0; a < 2; ++a)
    for (int c = 0; c < 2; ++c)
      EXPECT_NEAR(middle[a * 2 + c], data[a * 6 + c] + data[a * 6 + 2 + c] + data[a * 6 + 4 + c], 1e-15);
}

TEST(ReferenceMovement, ReshapePermuteBroadcastSliceConcat) {
  Graph g;
  Tensor x = g.input("x", {2, 3});
  const reference::Feeds feeds{{"x", {1, 2, 3, 4, 5, 6}}};
  expect_near(eval(g, feeds, g.reshape(x, {3, 2})), {1, 2, 3, 4, 5, 6});
  expect_near(eval(g, feeds, g.transpose(x)), {1, 4, 2, 5, 3, 6});
  Tensor y = g.input("y", {2, 3, 2});
  const reference::Feeds f2{{"x", {1, 2, 3, 4, 5, 6}}, {"y", {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}}};
  // out[k][i][j] = y[i][j][k]
  expect_near(eval(g, f2, g.permute(y, {2, 0, 1})), {0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11});
  expect_near(eval(g, f2, g.broadcast_to(g.reshape(x, {2, 1, 3}), {2, 2, 3})), {1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6});
  expect_near(eval(g, f2, g.slice(x, 1, 1, 3)), {2, 3, 5, 6});
  expect_near(eval(g, f2, g.slice(y, 1, 2, 3)), {4, 5, 10, 11});
  expect_near(eval(g, f2, g.concat({x, g.slice(x, 1, 0, 1)}, 1)), {1, 2, 3, 1, 4, 5, 6, 4});
  expect_near(eval(g, f2, g.concat({x, x}, 0)), {1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6});
  auto parts = g.split(x, 1, {1, 2});
  expect_near(eval(g, f2, parts[1]), {2, 3, 5, 6});
  expect_near(eval(g, f2, g.slice(x, 0, 1, 1)), {});  // empty slice
}

TEST(ReferenceMovement, EmbeddingScatterAndKvCache) {
  Graph g;
  Tensor table = g.input("table", {3, 2}), ids = g.input("ids", {2, 2}, DType::i32);
  const reference::Feeds feeds{{"table", {1, 2, 3, 4, 5, 6}}, {"ids", {2, 0, 2, 1}}};
  expect_near(eval(g, feeds, g.embedding(table, ids)), {5, 6, 1, 2, 5, 6, 3, 4});
  Tensor src = g.input("src", {2, 2, 2});
  reference::Feeds f2 = feeds;
  f2["src"] = {1, 10, 2, 20, 3, 30, 4, 40};
  expect_near(eval(g, f2, g.scatter_add_rows(src, ids, 4)), {2, 20, 4, 40, 4, 40, 0, 0});  // row 2 gets 1 + 3
  f2["ids"] = {0, 3, 1, 1};
  EXPECT_ERROR(eval(g, f2, g.embedding(table, ids)), "embedding: id 3 is outside [0, 3)");

  Tensor cache = g.input("cache", {1, 1, 4, 2}), update = g.input("update", {1, 1, 2, 2});
  Tensor offset = g.input("offset", {1}, DType::i32);
  Tensor written = g.kv_cache_write(cache, update, offset);
  f2["ids"] = {0, 1, 1, 1};
  f2["cache"] = {1, 1, 2, 2, 3, 3, 4, 4};
  f2["update"] = {7, 8, 9, 10};
  f2["offset"] = {1};
  expect_near(eval(g, f2, written), {1, 1, 7, 8, 9, 10, 4, 4});
  f2["offset"] = {3};
  EXPECT_ERROR(eval(g, f2, written), "kv_cache_write: writing 2 positions at offset 3 overruns the cache of 4 positions");
}

TEST(ReferenceMatmul, TwoDimensionalBatchedTransposedAndLinear) {
  Graph g;
  Tensor a = g.input("a", {2, 3}), b = g.input("b", {3, 2});
  const reference::Feeds feeds{{"a", {1, 2, 3, 4, 5, 6}}, {"b", {7, 8, 9, 10, 11, 12}}};
  expect_near(eval(g, feeds, g.matmul(a, b)), {58, 64, 139, 154});
  // aᵀ·bᵀ = (b·a)ᵀ: b·a = [[39, 54, 69], [49, 68, 87], [59, 82, 105]]
  expect_near(eval(g, feeds, g.matmul(a, b, true, true)), {39, 49, 59, 54, 68, 82, 69, 87, 105});
  expect_near(eval(g, feeds, g.matmul(b, b, true, false)), {7 * 7 + 9 * 9 + 11 * 11, 7 * 8 + 9 * 10 + 11 * 12,
                                                            8 * 7 + 10 * 9 + 12 * 11, 8 * 8 + 10 * 10 + 12 * 12});

  // Batched with broadcasting: [2, 1, 2, 3] x [3, 3, 2] → [2, 3, 2, 2]; each batch equals a 2-D product.
  Tensor x = g.input("x", {2, 1, 2, 3}), y = g.input("y", {3, 3, 2});
  reference::Feeds f2 = feeds;
  f2["x"] = reference_test::random_values(12, 4);
  f2["y"] = reference_test::random_values(18, 5);
  const auto batched = eval(g, f2, g.matmul(x, y));
  ASSERT_EQ(batched.size(), 24u);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int r = 0; r < 2; ++r)
        for (int c = 0; c < 2; ++c) {
          double want = 0;
          for (int k = 0; k < 3; ++k) want += f2["x"][i * 6 + r * 3 + k] * f2["y"][j * 6 + k * 2 + c];
          EXPECT_NEAR(batched[((i * 3 + j) * 2 + r) * 2 + c], want, 1e-14);
        }

  Tensor w = g.input("w", {2, 3}), bias = g.input("bias", {2});
  f2["w"] = {1, 0, 1, 0, 1, 0};
  f2["bias"] = {0.5, -0.5};
  expect_near(eval(g, f2, g.linear(a, w, bias)), {4.5, 1.5, 10.5, 4.5});
  expect_near(eval(g, f2, g.linear(a, w, bias)), eval(g, f2, g.matmul(a, w, false, true) + bias));
}
