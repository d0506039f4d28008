// Each layer's reference output against the formula computed by hand in the test, on random
// parameters and inputs; parameter names and shapes as Hugging Face writes them.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "meganeura/nn.h"
#include "meganeura/reference.h"

namespace meganeura {
namespace {

using Vec = std::vector<double>;

class LayerTest : public ::testing::Test {
 protected:
  Graph g;
  reference::Feeds feeds;
  std::mt19937_64 rng{42};

  Vec random(size_t n, double low = -1.0, double high = 1.0) {
    std::uniform_real_distribution<double> dist(low, high);
    Vec v(n);
    for (double& x : v) x = dist(rng);
    return v;
  }
  Tensor input(const std::string& name, Shape shape) {
    feeds[name] = random(static_cast<size_t>(num_elements(shape)));
    return g.input(name, shape);
  }
  // Feeds every parameter not fed yet with random values; returns them by name.
  void randomize_parameters() {
    for (int32_t id : g.parameters()) {
      const Node& p = g.node(id);
      if (!feeds.count(p.name)) feeds[p.name] = random(static_cast<size_t>(num_elements(p.shape)));
    }
  }
  Vec run(Tensor y) {
    randomize_parameters();
    g.set_outputs({y});
    return reference::run(g, feeds)[static_cast<size_t>(y.id)];
  }
  const Vec& fed(const std::string& name) { return feeds.at(name); }
  Shape shape_of(const std::string& name) { return g.node(g.find(name)).shape; }
};

void expect_close(const Vec& got, const Vec& want, double tolerance = 1e-12) {
  ASSERT_EQ(got.size(), want.size());
  double diff = 0, ref = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    ref += want[i] * want[i];
  }
  EXPECT_GT(ref, 0.0);
  EXPECT_LE(std::sqrt(diff / ref), tolerance);
}

// y[r, o] = Σ_i x[r, i]·w[o, i] (+ b[o]) for rows r.
Vec linear(const Vec& x, const Vec& w, const Vec* b, size_t in, size_t out) {
  const size_t rows = x.size() / in;
  Vec y(rows * out);
  for (size_t r = 0; r < rows; ++r)
    for (size_t o = 0; o < out; ++o) {
      double s = b ? (*b)[o] : 0.0;
      for (size_t i = 0; i < in; ++i) s += x[r * in + i] * w[o * in + i];
      y[r * out + o] = s;
    }
  return y;
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

TEST_F(LayerTest, LinearWithBias) {
  nn::Linear fc(g, "encoder.fc", 4, 3, /*bias=*/true);
  EXPECT_EQ(shape_of("encoder.fc.weight"), (Shape{3, 4}));
  EXPECT_EQ(shape_of("encoder.fc.bias"), (Shape{3}));
  Tensor x = input("x", {2, 5, 4});
  const Vec y = run(fc.forward(g, x));
  expect_close(y, linear(fed("x"), fed("encoder.fc.weight"), &fed("encoder.fc.bias"), 4, 3));
}

TEST_F(LayerTest, LinearWithoutBiasHasNoBiasParameter) {
  nn::Linear fc(g, "proj", 4, 6);
  EXPECT_FALSE(g.contains("proj.bias"));
  const Vec y = run(fc.forward(g, input("x", {3, 4})));
  expect_close(y, linear(fed("x"), fed("proj.weight"), nullptr, 4, 6));
}

TEST_F(LayerTest, LinearInitialisation) {
  nn::Linear torch_style(g, "a", 16, 4, /*bias=*/true);
  EXPECT_EQ(g.node(torch_style.weight.id).init, Init::uniform(-0.25, 0.25));
  EXPECT_EQ(g.node(torch_style.bias->id).init, Init::uniform(-0.25, 0.25));
  nn::Linear hf_style(g, "b", 16, 4, /*bias=*/true, Init::normal(0.0, 0.02));
  EXPECT_EQ(g.node(hf_style.weight.id).init, Init::normal(0.0, 0.02));
  EXPECT_EQ(g.node(hf_style.bias->id).init, Init::zeros());
}

TEST_F(LayerTest, EmbeddingGathersRows) {
  nn::Embedding embed(g, "model.embed_tokens", 7, 3);
  EXPECT_EQ(shape_of("model.embed_tokens.weight"), (Shape{7, 3}));
  Tensor ids = g.input("ids", {2, 2}, DType::i32);
  feeds["ids"] = {6, 0, 3, 6};
  const Vec y = run(embed.forward(g, ids));
  const Vec& table = fed("model.embed_tokens.weight");
  Vec want;
  for (int id : {6, 0, 3, 6})
    for (int d = 0; d < 3; ++d) want.push_back(table[static_cast<size_t>(id * 3 + d)]);
  expect_close(y, want);
}

TEST_F(LayerTest, RmsNormFormula) {
  nn::RmsNorm norm(g, "model.norm", 5, 1e-5);
  EXPECT_EQ(shape_of("model.norm.weight"), (Shape{5}));
  const Vec y = run(norm.forward(g, input("x", {3, 5})));
  const Vec& x = fed("x");
  const Vec& w = fed("model.norm.weight");
  Vec want(15);
  for (size_t r = 0; r < 3; ++r) {
    double ms = 0;
    for (size_t i = 0; i < 5; ++i) ms += x[r * 5 + i] * x[r * 5 + i] / 5;
    for (size_t i = 0; i < 5; ++i) want[r * 5 + i] = x[r * 5 + i] / std::sqrt(ms + 1e-5) * w[i];
  }
  expect_close(y, want);
}

TEST_F(LayerTest, LayerNormFormula) {
  nn::LayerNorm norm(g, "layer_norm1", 4, 1e-6);
  EXPECT_EQ(shape_of("layer_norm1.bias"), (Shape{4}));
  const Vec y = run(norm.forward(g, input("x", {2, 3, 4})));
  const Vec& x = fed("x");
  const Vec& w = fed("layer_norm1.weight");
  const Vec& b = fed("layer_norm1.bias");
  Vec want(24);
  for (size_t r = 0; r < 6; ++r) {
    double mean = 0, var = 0;
    for (size_t i = 0; i < 4; ++i) mean += x[r * 4 + i] / 4;
    for (size_t i = 0; i < 4; ++i) var += (x[r * 4 + i] - mean) * (x[r * 4 + i] - mean) / 4;
    for (size_t i = 0; i < 4; ++i) want[r * 4 + i] = (x[r * 4 + i] - mean) / std::sqrt(var + 1e-6) * w[i] + b[i];
  }
  expect_close(y, want);
}

TEST_F(LayerTest, GroupNormFormula) {
  nn::GroupNorm norm(g, "norm1", 2, 4, 1e-5);
  EXPECT_EQ(shape_of("norm1.weight"), (Shape{4}));
  const Vec y = run(norm.forward(g, input("x", {2, 4, 2, 3})));
  const Vec& x = fed("x");
  const Vec& w = fed("norm1.weight");
  const Vec& b = fed("norm1.bias");
  Vec want(x.size());
  const size_t group_size = 2 * 6;  // 2 channels × 6 positions
  for (size_t n = 0; n < 2; ++n)
    for (size_t grp = 0; grp < 2; ++grp) {
      const size_t base = n * 24 + grp * group_size;
      double mean = 0, var = 0;
      for (size_t i = 0; i < group_size; ++i) mean += x[base + i] / group_size;
      for (size_t i = 0; i < group_size; ++i) var += (x[base + i] - mean) * (x[base + i] - mean) / group_size;
      for (size_t i = 0; i < group_size; ++i) {
        const size_t channel = grp * 2 + i / 6;
        want[base + i] = (x[base + i] - mean) / std::sqrt(var + 1e-5) * w[channel] + b[channel];
      }
    }
  expect_close(y, want);
}

TEST_F(LayerTest, SwiGluMlpFormula) {
  nn::SwiGluMlp mlp(g, "mlp", 4, 6);
  EXPECT_EQ(shape_of("mlp.gate_proj.weight"), (Shape{6, 4}));
  EXPECT_EQ(shape_of("mlp.up_proj.weight"), (Shape{6, 4}));
  EXPECT_EQ(shape_of("mlp.down_proj.weight"), (Shape{4, 6}));
  const Vec y = run(mlp.forward(g, input("x", {3, 4})));
  Vec gate = linear(fed("x"), fed("mlp.gate_proj.weight"), nullptr, 4, 6);
  const Vec up = linear(fed("x"), fed("mlp.up_proj.weight"), nullptr, 4, 6);
  for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] * sigmoid(gate[i]) * up[i];
  expect_close(y, linear(gate, fed("mlp.down_proj.weight"), nullptr, 6, 4));
}

TEST_F(LayerTest, GeluMlpFormulaBothApproximations) {
  for (bool tanh_form : {true, false}) {
    Graph fresh;
    g = fresh;
    feeds.clear();
    nn::GeluMlp mlp(g, "mlp", 4, 8, tanh_form);
    EXPECT_EQ(shape_of("mlp.fc1.weight"), (Shape{8, 4}));
    EXPECT_EQ(shape_of("mlp.fc2.bias"), (Shape{4}));
    const Vec y = run(mlp.forward(g, input("x", {3, 4})));
    Vec h = linear(fed("x"), fed("mlp.fc1.weight"), &fed("mlp.fc1.bias"), 4, 8);
    for (double& v : h) {
      v = tanh_form ? 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)))
                    : 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
    }
    expect_close(y, linear(h, fed("mlp.fc2.weight"), &fed("mlp.fc2.bias"), 8, 4));
  }
}

TEST_F(LayerTest, Conv2dFormula) {
  Conv2dOptions o;
  o.stride = {2, 1};
  o.padding = {1, 0};
  nn::Conv2d conv(g, "patch_embedding", 2, 3, {3, 2}, o);
  EXPECT_EQ(shape_of("patch_embedding.weight"), (Shape{3, 2, 3, 2}));
  EXPECT_EQ(shape_of("patch_embedding.bias"), (Shape{3}));
  const Vec y = run(conv.forward(g, input("x", {1, 2, 5, 4})));
  const Vec& x = fed("x");
  const Vec& w = fed("patch_embedding.weight");
  const Vec& b = fed("patch_embedding.bias");
  const int H = 5, W = 4, OH = (5 + 2 - 3) / 2 + 1, OW = 4 - 2 + 1;
  Vec want;
  for (int co = 0; co < 3; ++co)
    for (int oy = 0; oy < OH; ++oy)
      for (int ox = 0; ox < OW; ++ox) {
        double s = b[static_cast<size_t>(co)];
        for (int ci = 0; ci < 2; ++ci)
          for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 2; ++kx) {
              const int iy = oy * 2 - 1 + ky, ix = ox + kx;
              if (iy < 0 || iy >= H) continue;
              s += x[static_cast<size_t>((ci * H + iy) * W + ix)] * w[static_cast<size_t>(((co * 2 + ci) * 3 + ky) * 2 + kx)];
            }
        want.push_back(s);
      }
  expect_close(y, want);
}

}  // namespace
}  // namespace meganeura
