// MultiHeadAttention against attention computed by hand (projections, RoPE with Hugging Face's
// half-split pairing, grouped-query heads, causal mask, softmax), cross-attention, decoding with a
// KV cache, and the SigLIP encoder's parameter names.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "meganeura/nn.h"
#include "meganeura/reference.h"
#include "meganeura/safetensors.h"

namespace meganeura {
namespace {

using Vec = std::vector<double>;

Vec random(std::mt19937_64& rng, size_t n) {
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  Vec v(n);
  for (double& x : v) x = dist(rng);
  return v;
}

void feed_parameters(const Graph& g, reference::Feeds& feeds, std::mt19937_64& rng) {
  for (int32_t id : g.parameters()) {
    const Node& p = g.node(id);
    if (!feeds.count(p.name)) feeds[p.name] = random(rng, static_cast<size_t>(num_elements(p.shape)));
  }
}

Vec project(const Vec& x, const Vec& w, size_t in, size_t out) {
  const size_t rows = x.size() / in;
  Vec y(rows * out, 0.0);
  for (size_t r = 0; r < rows; ++r)
    for (size_t o = 0; o < out; ++o)
      for (size_t i = 0; i < in; ++i) y[r * out + o] += x[r * in + i] * w[o * in + i];
  return y;
}

// Rotates each head's vector at sequence position `first + s` (x: [S, heads·D], one batch).
void rope_by_hand(Vec& x, size_t S, size_t heads, size_t D, double theta, size_t first) {
  for (size_t s = 0; s < S; ++s)
    for (size_t h = 0; h < heads; ++h) {
      double* v = &x[(s * heads + h) * D];
      for (size_t i = 0; i < D / 2; ++i) {
        const double angle = static_cast<double>(first + s) * std::pow(theta, -2.0 * static_cast<double>(i) / D);
        const double a = v[i], b = v[i + D / 2];
        v[i] = a * std::cos(angle) - b * std::sin(angle);
        v[i + D / 2] = b * std::cos(angle) + a * std::sin(angle);
      }
    }
}

// One batch: q [S, Hq·D], k and v [Skv, Hkv·D]; query s sits at position first + s, key t at t.
Vec attend_by_hand(const Vec& q, const Vec& k, const Vec& v, size_t S, size_t Skv, size_t Hq, size_t Hkv, size_t D,
                   bool causal, size_t first) {
  Vec out(S * Hq * D, 0.0);
  for (size_t h = 0; h < Hq; ++h) {
    const size_t kv = h / (Hq / Hkv);
    for (size_t s = 0; s < S; ++s) {
      std::vector<double> scores;
      for (size_t t = 0; t < Skv; ++t) {
        double dot = 0;
        for (size_t d = 0; d < D; ++d) dot += q[(s * Hq + h) * D + d] * k[(t * Hkv + kv) * D + d];
        scores.push_back((causal && t > first + s) ? -INFINITY : dot / std::sqrt(static_cast<double>(D)));
      }
      double top = -INFINITY, total = 0;
      for (double sc : scores) top = std::max(top, sc);
      for (double& sc : scores) total += (sc = std::exp(sc - top));
      for (size_t t = 0; t < Skv; ++t)
        for (size_t d = 0; d < D; ++d) out[(s * Hq + h) * D + d] += scores[t] / total * v[(t * Hkv + kv) * D + d];
    }
  }
  return out;
}

double relative_error(const Vec& got, const Vec& want) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (got.at(i) - want[i]) * (got.at(i) - want[i]);
    ref += want[i] * want[i];
  }
  return got.size() == want.size() ? std::sqrt(diff / ref) : INFINITY;
}

nn::AttentionConfig llama_attention() {
  nn::AttentionConfig c;
  c.hidden = 8;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.rope_theta = 100.0;
  c.causal = true;
  return c;  // head_dim 2
}

TEST(MultiHeadAttention, GroupedQueryRopeCausalMatchesHandComputation) {
  Graph g;
  nn::AttentionConfig c = llama_attention();
  c.head_dim = 4;  // wider than hidden / heads, as some models use
  nn::MultiHeadAttention attn(g, "self_attn", c);
  EXPECT_EQ(g.node(g.find("self_attn.q_proj.weight")).shape, (Shape{16, 8}));
  EXPECT_EQ(g.node(g.find("self_attn.k_proj.weight")).shape, (Shape{8, 8}));
  EXPECT_EQ(g.node(g.find("self_attn.v_proj.weight")).shape, (Shape{8, 8}));
  EXPECT_EQ(g.node(g.find("self_attn.o_proj.weight")).shape, (Shape{8, 16}));
  EXPECT_FALSE(g.contains("self_attn.q_proj.bias"));

  std::mt19937_64 rng(3);
  reference::Feeds feeds;
  feeds["x"] = random(rng, 5 * 8);
  Tensor y = attn.forward(g, g.input("x", {5, 8}));
  g.set_outputs({y});
  feed_parameters(g, feeds, rng);
  const Vec got = reference::run(g, feeds)[static_cast<size_t>(y.id)];

  Vec q = project(feeds["x"], feeds["self_attn.q_proj.weight"], 8, 16);
  Vec k = project(feeds["x"], feeds["self_attn.k_proj.weight"], 8, 8);
  const Vec v = project(feeds["x"], feeds["self_attn.v_proj.weight"], 8, 8);
  rope_by_hand(q, 5, 4, 4, 100.0, 0);
  rope_by_hand(k, 5, 2, 4, 100.0, 0);
  const Vec o = attend_by_hand(q, k, v, 5, 5, 4, 2, 4, true, 0);
  EXPECT_LE(relative_error(got, project(o, feeds["self_attn.o_proj.weight"], 16, 8)), 1e-12);
}

TEST(MultiHeadAttention, CrossAttentionMatchesHandComputation) {
  Graph g;
  nn::AttentionConfig c;
  c.hidden = 6;
  c.num_heads = 2;
  c.context_hidden = 4;
  c.bias = true;
  nn::MultiHeadAttention attn(g, "attn2", c);
  EXPECT_EQ(g.node(g.find("attn2.k_proj.weight")).shape, (Shape{6, 4}));
  EXPECT_EQ(g.node(g.find("attn2.k_proj.bias")).shape, (Shape{6}));

  std::mt19937_64 rng(4);
  reference::Feeds feeds;
  feeds["x"] = random(rng, 2 * 3 * 6);
  feeds["context"] = random(rng, 2 * 5 * 4);
  Tensor y = attn.forward_cross(g, g.input("x", {2, 3, 6}), g.input("context", {2, 5, 4}));
  g.set_outputs({y});
  feed_parameters(g, feeds, rng);
  const Vec got = reference::run(g, feeds)[static_cast<size_t>(y.id)];

  auto add_bias = [](Vec t, const Vec& b) {
    for (size_t i = 0; i < t.size(); ++i) t[i] += b[i % b.size()];
    return t;
  };
  Vec want;
  for (size_t b = 0; b < 2; ++b) {
    const Vec x(feeds["x"].begin() + static_cast<long>(b * 18), feeds["x"].begin() + static_cast<long>((b + 1) * 18));
    const Vec ctx(feeds["context"].begin() + static_cast<long>(b * 20),
                  feeds["context"].begin() + static_cast<long>((b + 1) * 20));
    const Vec q = add_bias(project(x, feeds["attn2.q_proj.weight"], 6, 6), feeds["attn2.q_proj.bias"]);
    const Vec k = add_bias(project(ctx, feeds["attn2.k_proj.weight"], 4, 6), feeds["attn2.k_proj.bias"]);
    const Vec v = add_bias(project(ctx, feeds["attn2.v_proj.weight"], 4, 6), feeds["attn2.v_proj.bias"]);
    const Vec o = attend_by_hand(q, k, v, 3, 5, 2, 2, 3, false, 0);
    const Vec out = add_bias(project(o, feeds["attn2.o_proj.weight"], 6, 6), feeds["attn2.o_proj.bias"]);
    want.insert(want.end(), out.begin(), out.end());
  }
  EXPECT_LE(relative_error(got, want), 1e-12);
}

TEST(MultiHeadAttention, KvCacheDecodingMatchesFullSequence) {
  // Prefill three positions, then decode two more at offset 3: the outputs equal the full
  // five-position forward, row for row.
  std::mt19937_64 rng(5);
  const Vec x = random(rng, 5 * 8);
  reference::Feeds weights;
  Vec full;
  {
    Graph g;
    nn::MultiHeadAttention attn(g, "self_attn", llama_attention());
    reference::Feeds feeds{{"x", x}};
    Tensor y = attn.forward(g, g.input("x", {1, 5, 8}));
    g.set_outputs({y});
    feed_parameters(g, feeds, rng);
    weights = feeds;
    full = reference::run(g, feeds)[static_cast<size_t>(y.id)];
  }
  Vec cache_k(1 * 2 * 6 * 2, 0.0), cache_v(cache_k.size(), 0.0), decoded;
  for (auto [first, count] : {std::pair<size_t, size_t>{0, 3}, {3, 2}}) {
    Graph g;
    nn::MultiHeadAttention attn(g, "self_attn", llama_attention());
    const auto n = static_cast<int64_t>(count);
    nn::KvCache cache{g.input("cache_k", {1, 2, 6, 2}), g.input("cache_v", {1, 2, 6, 2})};
    Tensor y = attn.forward_cached(g, g.input("x", {1, n, 8}), cache, g.input("offset", {1}, DType::i32));
    g.set_outputs({y, cache.k, cache.v});
    reference::Feeds feeds = weights;
    feeds["x"] = Vec(x.begin() + static_cast<long>(first * 8), x.begin() + static_cast<long>((first + count) * 8));
    feeds["cache_k"] = cache_k;
    feeds["cache_v"] = cache_v;
    feeds["offset"] = {static_cast<double>(first)};
    const auto values = reference::run(g, feeds);
    const Vec& out = values[static_cast<size_t>(y.id)];
    decoded.insert(decoded.end(), out.begin(), out.end());
    cache_k = values[static_cast<size_t>(cache.k.id)];
    cache_v = values[static_cast<size_t>(cache.v.id)];
  }
  EXPECT_LE(relative_error(decoded, full), 1e-12);
}

TEST(MultiHeadAttention, BadConfigurationsAreErrors) {
  Graph g;
  nn::AttentionConfig c = llama_attention();
  c.num_kv_heads = 3;
  EXPECT_THROW(nn::MultiHeadAttention(g, "a", c), Error);
  nn::MultiHeadAttention ok(g, "b", llama_attention());
  EXPECT_THROW(ok.forward(g, g.input("x", {2, 5, 7})), Error);
}

// SigLIP's encoder layer, as SmolVLM2's vision tower names it: LayerNorms, attention with biases
// and out_proj, GELU (tanh) MLP with fc1/fc2, and the patch-embedding convolution.
TEST(SigLipNames, EncoderParametersMatchTheCheckpoint) {
  Graph g;
  const std::string vision = "model.vision_model.";
  nn::Conv2d patches(g, vision + "embeddings.patch_embedding", 3, 32, {16, 16}, Conv2dOptions{{16, 16}});
  nn::Embedding positions(g, vision + "embeddings.position_embedding", 16, 32);
  const std::string layer = vision + "encoder.layers.0.";
  nn::LayerNorm norm1(g, layer + "layer_norm1", 32, 1e-6);
  nn::AttentionConfig c;
  c.hidden = 32;
  c.num_heads = 2;
  c.causal = false;
  c.bias = true;
  c.output_name = "out_proj";
  nn::MultiHeadAttention attn(g, layer + "self_attn", c);
  nn::LayerNorm norm2(g, layer + "layer_norm2", 32, 1e-6);
  nn::GeluMlp mlp(g, layer + "mlp", 32, 64);
  nn::LayerNorm post(g, vision + "post_layernorm", 32, 1e-6);

  const auto weights =
      SafeTensorsFile::open(std::string(MEGANEURA_TEST_DATA_DIR) + "/fixtures/smolvlm2-tiny/model.safetensors");
  size_t checked = 0;
  for (int32_t id : g.parameters()) {
    const Node& p = g.node(id);
    bool found = false;
    for (const auto& t : weights.tensors()) {
      if (t.name != p.name) continue;
      found = true;
      EXPECT_EQ(t.shape, p.shape) << p.name;
    }
    EXPECT_TRUE(found) << p.name << " is not in the checkpoint";
    checked += found;
  }
  EXPECT_EQ(checked, 21u);
}

}  // namespace
}  // namespace meganeura
