// Reference: softmax family, norms, rope, attention, convolution, pooling and losses on
// hand-checked cases and on identities between ops.
#include <limits>

#include "reference/helpers.h"

using namespace meganeura;
using reference_test::eval;
using reference_test::expect_near;
using reference_test::random_values;

TEST(ReferenceNn, SoftmaxAndLogSoftmax) {
  Graph g;
  Tensor x = g.input("x", {2, 3});
  const reference::Feeds feeds{{"x", {1, 2, 3, 1000, 1000, 1000}}};
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  expect_near(eval(g, feeds, g.softmax(x)), {std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z, 1.0 / 3, 1.0 / 3, 1.0 / 3},
              1e-15);
  expect_near(eval(g, feeds, g.log_softmax(x)), {1 - std::log(z), 2 - std::log(z), 3 - std::log(z), -std::log(3.0),
                                                 -std::log(3.0), -std::log(3.0)},
              1e-12);
  const double s = 1.0 / (1.0 + std::exp(999.0));  // softmax over axis 0 of column (1, 1000)
  expect_near(eval(g, feeds, g.softmax(x, 0)), {s, s * 0 + 1.0 / (1.0 + std::exp(998.0)), 1.0 / (1.0 + std::exp(997.0)),
                                                1 - s, 1 - 1.0 / (1.0 + std::exp(998.0)), 1 - 1.0 / (1.0 + std::exp(997.0))},
              1e-15);
}

TEST(ReferenceNn, LayerNormRmsNormGroupNorm) {
  Graph g;
  Tensor x = g.input("x", {1, 4}), w = g.input("w", {4}), b = g.input("b", {4});
  const reference::Feeds feeds{{"x", {1, 2, 3, 4}}, {"w", {1, 2, 1, 0.5}}, {"b", {0, 0, 1, 0}}};
  const double inv = 1.0 / std::sqrt(1.25 + 1e-5);
  expect_near(eval(g, feeds, g.layer_norm(x, w, b, 1e-5)), {-1.5 * inv, -0.5 * inv * 2, 0.5 * inv + 1, 1.5 * inv * 0.5});
  const double r = 1.0 / std::sqrt(7.5 + 1e-6);
  expect_near(eval(g, feeds, g.rms_norm(x, w, 1e-6)), {1 * r, 4 * r, 3 * r, 2 * r});
  // group_norm with one group per sample over [C, H, W] = layer norm over the flattened sample.
  Tensor gx = g.input("gx", {2, 4, 3}), gw = g.input("gw", {4}), gb = g.input("gb", {4});
  reference::Feeds f2 = feeds;
  f2["gx"] = random_values(24, 1);
  f2["gw"] = {1, 1, 1, 1};
  f2["gb"] = {0, 0, 0, 0};
  Tensor ones = g.input("ones", {12}), zeros = g.input("zeros", {12});
  f2["ones"] = std::vector<double>(12, 1.0);
  f2["zeros"] = std::vector<double>(12, 0.0);
  expect_near(eval(g, f2, g.group_norm(gx, gw, gb, 1)), eval(g, f2, g.layer_norm(g.reshape(gx, {2, 12}), ones, zeros)),
              1e-12);
  // Two groups: channels {0, 1} and {2, 3} of each sample normalised separately.
  const auto two = eval(g, f2, g.group_norm(gx, gw, gb, 2));
  const auto halves = eval(g, f2, g.layer_norm(g.reshape(gx, {4, 6}), g.slice(ones, 0, 0, 6), g.slice(zeros, 0, 0, 6)));
  expect_near(two, halves, 1e-12);
}

TEST(ReferenceNn, RopeRotatesHalfSplitPairs) {
  Graph g;
  Tensor x = g.input("x", {1, 1, 2, 4});
  Tensor offset = g.input("offset", {1}, DType::i32);
  const reference::Feeds feeds{{"x", {1, 2, 3, 4, 1, 2, 3, 4}}, {"offset", {1}}};
  const auto y = eval(g, feeds, g.rope(x, offset, 10000.0));
  // Row 0 sits at position 1, row 1 at position 2; frequencies 1 and 10000^(-1/2) = 0.01.
  for (int row = 0; row < 2; ++row) {
    const double p = 1.0 + row;
    const double* out = &y[static_cast<size_t>(row * 4)];
    EXPECT_NEAR(out[0], 1 * std::cos(p) - 3 * std::sin(p), 1e-14);
    EXPECT_NEAR(out[2], 3 * std::cos(p) + 1 * std::sin(p), 1e-14);
    EXPECT_NEAR(out[1], 2 * std::cos(0.01 * p) - 4 * std::sin(0.01 * p), 1e-14);
    EXPECT_NEAR(out[3], 4 * std::cos(0.01 * p) + 2 * std::sin(0.01 * p), 1e-14);
  }
  // Position 0 is the identity; the backward undoes the rotation.
  reference::Feeds at_zero = feeds;
  at_zero["offset"] = {0};
  const auto y0 = eval(g, at_zero, g.rope(x, offset));
  expect_near({y0[0], y0[1], y0[2], y0[3]}, {1, 2, 3, 4});
  expect_near(eval(g, feeds, g.rope_grad(g.rope(x, offset, 500.0), offset, 500.0)), feeds.at("x"), 1e-14);
}

TEST(ReferenceAttention, HandCheckedSingleQuery) {
  Graph g;
  Tensor q = g.input("q", {1, 1, 1, 1}), k = g.input("k", {1, 1, 2, 1}), v = g.input("v", {1, 1, 2, 1});
  const reference::Feeds feeds{{"q", {1}}, {"k", {1, 2}}, {"v", {10, 20}}};
  const double p1 = std::exp(1.0) / (std::exp(1.0) + std::exp(2.0));
  expect_near(eval(g, feeds, g.attention(q, k, v, {.scale = 1.0})), {10 * p1 + 20 * (1 - p1)}, 1e-13);
  // Default scale 1/sqrt(D) = 1 for D = 1; causal with S=1 sees every key (query at the end).
  expect_near(eval(g, feeds, g.attention(q, k, v, {.causal = true})), {10 * p1 + 20 * (1 - p1)}, 1e-13);
}

namespace {

// A −1e30 additive mask equivalent to end-aligned causal masking.
std::vector<double> causal_mask(int64_t S, int64_t Skv) {
  std::vector<double> m(static_cast<size_t>(S * Skv));
  for (int64_t i = 0; i < S; ++i)
    for (int64_t j = 0; j < Skv; ++j) m[static_cast<size_t>(i * Skv + j)] = j > Skv - S + i ? -1e30 : 0.0;
  return m;
}

}  // namespace

TEST(ReferenceAttention, CausalIsEndAlignedMask) {
  Graph g;
  Tensor q = g.input("q", {2, 2, 3, 4}), k = g.input("k", {2, 2, 5, 4}), v = g.input("v", {2, 2, 5, 4});
  Tensor mask = g.input("mask", {3, 5});
  const reference::Feeds feeds{{"q", random_values(48, 1)}, {"k", random_values(80, 2)},
                               {"v", random_values(80, 3)}, {"mask", causal_mask(3, 5)}};
  const auto causal = eval(g, feeds, g.attention(q, k, v, {.causal = true}));
  expect_near(causal, eval(g, feeds, g.attention(q, k, v, {}, mask)), 1e-14);
  // The last query row sees every key: it matches full attention.
  const auto full = eval(g, feeds, g.attention(q, k, v));
  for (int bh = 0; bh < 4; ++bh)
    for (int d = 0; d < 4; ++d) EXPECT_NEAR(causal[(bh * 3 + 2) * 4 + d], full[(bh * 3 + 2) * 4 + d], 1e-14);
  EXPECT_GT(std::fabs(causal[0] - full[0]), 1e-6);
}

TEST(ReferenceAttention, GroupedQueryEqualsRepeatedKvHeads) {
  Graph g;
  Tensor q = g.input("q", {1, 4, 2, 3}), k = g.input("k", {1, 2, 3, 3}), v = g.input("v", {1, 2, 3, 3});
  auto repeat = [&](Tensor t) {  // [1, 2, 3, 3] → [1, 4, 3, 3] with heads (0, 0, 1, 1)
    return g.reshape(g.broadcast_to(g.reshape(t, {1, 2, 1, 3, 3}), {1, 2, 2, 3, 3}), {1, 4, 3, 3});
  };
  const reference::Feeds feeds{{"q", random_values(24, 4)}, {"k", random_values(18, 5)}, {"v", random_values(18, 6)}};
  expect_near(eval(g, feeds, g.attention(q, k, v, {.causal = true})),
              eval(g, feeds, g.attention(q, repeat(k), repeat(v), {.causal = true})), 1e-14);
}

TEST(ReferenceAttention, KvCacheDecodeMatchesFullCausalAttention) {
  const int64_t H = 2, D = 4, total = 5, prefix = 3, cap = 8;
  const auto q_all = random_values(static_cast<size_t>(H * total * D), 7);
  const auto k_all = random_values(static_cast<size_t>(H * total * D), 8);
  const auto v_all = random_values(static_cast<size_t>(H * total * D), 9);

  Graph full;
  Tensor fq = full.input("q", {1, H, total, D}), fk = full.input("k", {1, H, total, D}), fv = full.input("v", {1, H, total, D});
  const auto want = eval(full, {{"q", q_all}, {"k", k_all}, {"v", v_all}}, full.attention(fq, fk, fv, {.causal = true}));

  // Decode the last two positions: the cache holds the first three; later slots hold garbage.
  auto rows = [&](const std::vector<double>& all, int64_t begin, int64_t end) {
    std::vector<double> out;
    for (int64_t h = 0; h < H; ++h)
      for (int64_t s = begin; s < end; ++s)
        for (int64_t d = 0; d < D; ++d) out.push_back(all[static_cast<size_t>((h * total + s) * D + d)]);
    return out;
  };
  auto cache_with_prefix = [&](const std::vector<double>& all) {
    std::vector<double> cache = random_values(static_cast<size_t>(H * cap * D), 99);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t s = 0; s < prefix; ++s)
        for (int64_t d = 0; d < D; ++d)
          cache[static_cast<size_t>((h * cap + s) * D + d)] = all[static_cast<size_t>((h * total + s) * D + d)];
    return cache;
  };
  Graph dec;
  Tensor q = dec.input("q", {1, H, 2, D}), k = dec.input("k", {1, H, 2, D}), v = dec.input("v", {1, H, 2, D});
  Tensor kc = dec.input("k_cache", {1, H, cap, D}), vc = dec.input("v_cache", {1, H, cap, D});
  Tensor offset = dec.input("offset", {1}, DType::i32);
  Tensor k_new = dec.kv_cache_write(kc, k, offset), v_new = dec.kv_cache_write(vc, v, offset);
  Tensor out = dec.attention(q, k_new, v_new, {.causal = true}, std::nullopt, offset);
  const auto got = eval(dec, {{"q", rows(q_all, prefix, total)}, {"k", rows(k_all, prefix, total)},
                              {"v", rows(v_all, prefix, total)}, {"k_cache", cache_with_prefix(k_all)},
                              {"v_cache", cache_with_prefix(v_all)}, {"offset", {static_cast<double>(prefix)}}},
                        out);
  expect_near(got, rows(want, prefix, total), 1e-14);
}

TEST(ReferenceConv, HandCheckedConvolutions) {
  Graph g;
  Tensor x = g.input("x", {1, 1, 3, 3});
  Tensor diag = g.input("diag", {1, 1, 2, 2}), ones = g.input("ones", {1, 1, 3, 3}), ones2 = g.input("ones2", {1, 1, 2, 2});
  const reference::Feeds feeds{{"x", {1, 2, 3, 4, 5, 6, 7, 8, 9}},
                               {"diag", {1, 0, 0, 1}},
                               {"ones", std::vector<double>(9, 1.0)},
                               {"ones2", std::vector<double>(4, 1.0)}};
  expect_near(eval(g, feeds, g.conv2d(x, diag)), {6, 8, 12, 14});
  expect_near(eval(g, feeds, g.conv2d(x, ones, {.padding = {1, 1}})), {12, 21, 16, 27, 45, 33, 24, 39, 28});
  expect_near(eval(g, feeds, g.conv2d(x, ones, {.stride = {2, 2}, .padding = {1, 1}})), {12, 16, 24, 28});
  expect_near(eval(g, feeds, g.conv2d(x, ones2, {.dilation = {2, 2}})), {1 + 3 + 7 + 9});
}

TEST(ReferenceConv, GroupsAreIndependentConvolutions) {
  Graph g;
  Tensor x = g.input("x", {2, 4, 4, 5}), w = g.input("w", {6, 2, 3, 2});
  const Conv2dOptions options{.stride = {1, 2}, .padding = {1, 0}, .groups = 2};
  const reference::Feeds feeds{{"x", random_values(160, 1)}, {"w", random_values(72, 2)}};
  const auto grouped = eval(g, feeds, g.conv2d(x, w, options));
  Conv2dOptions single = options;
  single.groups = 1;
  Tensor lo = g.conv2d(g.slice(x, 1, 0, 2), g.slice(w, 0, 0, 3), single);
  Tensor hi = g.conv2d(g.slice(x, 1, 2, 4), g.slice(w, 0, 3, 6), single);
  expect_near(grouped, eval(g, feeds, g.concat({lo, hi}, 1)), 1e-14);
}

TEST(ReferenceConv, PoolingUpsamplingGlobalAverage) {
  Graph g;
  Tensor x = g.input("x", {1, 1, 4, 4});
  std::vector<double> v(16);
  for (int i = 0; i < 16; ++i) v[static_cast<size_t>(i)] = i + 1;
  const reference::Feeds feeds{{"x", v}};
  expect_near(eval(g, feeds, g.max_pool2d(x)), {6, 8, 14, 16});
  expect_near(eval(g, feeds, g.avg_pool2d(x)), {3.5, 5.5, 11.5, 13.5});
  // Padding counts toward the average; max pooling ignores it.
  const Pool2dOptions padded{.kernel = {2, 2}, .stride = {2, 2}, .padding = {1, 1}};
  expect_near(eval(g, feeds, g.avg_pool2d(x, padded)), {1.0 / 4, 5.0 / 4, 4.0 / 4, 14.0 / 4, 34.0 / 4, 20.0 / 4, 13.0 / 4,
                                                        29.0 / 4, 16.0 / 4});
  expect_near(eval(g, feeds, g.max_pool2d(x, padded)), {1, 3, 4, 9, 11, 12, 13, 15, 16});
  // The max-pool backward routes each gradient to its window's maximum.
  Tensor dy = g.input("dy", {1, 1, 2, 2});
  reference::Feeds f2 = feeds;
  f2["dy"] = {1, 2, 3, 4};
  expect_near(eval(g, f2, g.max_pool2d_grad(x, dy)), {0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4});
  Tensor small = g.input("small", {1, 2, 1, 2});
  f2["small"] = {1, 2, 3, 4};
  expect_near(eval(g, f2, g.upsample_nearest2x(small)), {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
  expect_near(eval(g, f2, g.upsample_nearest2x_grad(x)), {1 + 2 + 5 + 6, 3 + 4 + 7 + 8, 9 + 10 + 13 + 14, 11 + 12 + 15 + 16});
  expect_near(eval(g, f2, g.global_avg_pool(small)), {1.5, 3.5});
}

TEST(ReferenceLoss, CrossEntropyWithIgnoreIndexAndProbabilities) {
  Graph g;
  Tensor logits = g.input("logits", {3, 2}), labels = g.input("labels", {3}, DType::i32);
  Tensor probs = g.input("probs", {3, 2});
  const reference::Feeds feeds{{"logits", {0, 0, 0, std::log(3.0), 5, 1}},
                               {"labels", {1, 1, -100}},
                               {"probs", {0.5, 0.5, 0.25, 0.75, 1, 0}}};
  // Row 0: log 2; row 1: −log(3/4); row 2 ignored.
  expect_near(eval(g, feeds, g.cross_entropy_loss(logits, labels)), {(std::log(2.0) - std::log(0.75)) / 2}, 1e-15);
  const double row2 = std::log(1 + std::exp(-4.0));  // −log softmax(5, 1)[0]
  const double want = (std::log(2.0) + (0.25 * std::log(4.0) - 0.75 * std::log(0.75)) + row2) / 3;
  expect_near(eval(g, feeds, g.cross_entropy_loss(logits, probs)), {want}, 1e-15);
  Graph h;
  Tensor l2 = h.input("logits", {3, 2}), y2 = h.input("labels", {3}, DType::i32);
  Tensor loss = h.cross_entropy_loss(l2, y2, 7);
  expect_near(eval(h, {{"logits", feeds.at("logits")}, {"labels", {7, 7, 7}}}, loss), {0.0});  // none counted
  EXPECT_ERROR(eval(h, {{"logits", feeds.at("logits")}, {"labels", {0, 2, 0}}}, loss),
               "cross_entropy_loss: label 2 in row 1 is outside [0, 2) and is not ignore_index 7");
}

TEST(ReferenceLoss, MseAndBceWithLogits) {
  Graph g;
  Tensor a = g.input("a", {3}), t = g.input("t", {3});
  const reference::Feeds feeds{{"a", {1, 2, -100}}, {"t", {0, 2, 1}}};
  expect_near(eval(g, feeds, g.mse_loss(a, t)), {(1.0 + 0 + 101.0 * 101.0) / 3});
  const reference::Feeds bce{{"a", {0, 100, -100}}, {"t", {1, 1, 1}}};
  expect_near(eval(g, bce, g.bce_with_logits(a, t)), {(std::log(2.0) + std::log1p(std::exp(-100.0)) + 100.0) / 3}, 1e-13);
}
