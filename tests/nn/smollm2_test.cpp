// The nn layers assembled into the SmolLM2 architecture (Llama), loaded with the fixture's
// Hugging Face weights: parameter names and shapes match the checkpoint, the reference forward
// matches transformers' logits, and differentiate() matches PyTorch's loss gradients.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "meganeura/autodiff.h"
#include "meganeura/nn.h"
#include "meganeura/reference.h"
#include "meganeura/safetensors.h"

namespace meganeura {
namespace {

const std::string kFixture = std::string(MEGANEURA_TEST_DATA_DIR) + "/fixtures/smollm2-tiny/";

// SmolLM2-tiny: hidden 64, intermediate 128, 2 layers, 4 heads, 2 KV heads, vocab 512, tied
// embeddings (config.json).
struct TinyLlama {
  explicit TinyLlama(Graph& g)
      : embed_tokens(g, "model.embed_tokens", 512, 64), norm(g, "model.norm", 64, 1e-5) {
    nn::TransformerConfig c;
    c.hidden = 64;
    c.intermediate = 128;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.rope_theta = 100000.0;
    c.rms_norm_eps = 1e-5;
    for (int i = 0; i < 2; ++i) layers.emplace_back(g, "model.layers." + std::to_string(i), c);
  }
  // ids i32 [B, S] → logits [B, S, 512]; the tied lm_head reuses the embedding table.
  Tensor forward(Graph& g, Tensor ids) const {
    Tensor h = embed_tokens.forward(g, ids);
    for (const auto& layer : layers) h = layer.forward(g, h);
    return g.matmul(norm.forward(g, h), embed_tokens.weight, false, true);
  }
  // Decoding with one KV cache per layer; ids hold positions [offset, offset + S).
  Tensor forward_cached(Graph& g, Tensor ids, std::vector<nn::KvCache>& caches, Tensor offset) const {
    Tensor h = embed_tokens.forward(g, ids);
    for (size_t i = 0; i < layers.size(); ++i) h = layers[i].forward_cached(g, h, caches[i], offset);
    return g.matmul(norm.forward(g, h), embed_tokens.weight, false, true);
  }
  nn::Embedding embed_tokens;
  std::vector<nn::TransformerBlock> layers;
  nn::RmsNorm norm;
};

reference::Feeds checkpoint_feeds(const Graph& g, const SafeTensorsFile& weights) {
  reference::Feeds feeds;
  for (int32_t id : g.parameters()) {
    const std::string& name = g.node(id).name;
    const std::vector<float> values = weights.to_f32(name);
    feeds[name] = std::vector<double>(values.begin(), values.end());
  }
  return feeds;
}

std::vector<double> as_doubles(const std::vector<int32_t>& v) { return {v.begin(), v.end()}; }

double relative_error(const std::vector<double>& got, const std::vector<float>& want) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (got.at(i) - want[i]) * (got.at(i) - want[i]);
    ref += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(diff / ref);
}

TEST(SmolLM2, ParameterNamesAndShapesMatchTheCheckpoint) {
  Graph g;
  TinyLlama model(g);
  const auto weights = SafeTensorsFile::open(kFixture + "model.safetensors");
  std::set<std::string> ours;
  for (int32_t id : g.parameters()) {
    const Node& p = g.node(id);
    ours.insert(p.name);
    ASSERT_TRUE(weights.contains(p.name)) << p.name << " is not in the checkpoint";
    for (const auto& t : weights.tensors()) {
      if (t.name == p.name) {
        EXPECT_EQ(t.shape, p.shape) << p.name;
      }
    }
  }
  for (const auto& t : weights.tensors()) {
    if (t.name != "lm_head.weight") {
      EXPECT_TRUE(ours.count(t.name)) << t.name << " has no parameter";
    }
  }
}

TEST(SmolLM2, LayersEmitPrimitiveOpsOnly) {
  Graph g;
  TinyLlama model(g);
  model.forward(g, g.input("input_ids", {1, 4}, DType::i32));
  for (const Node& n : g.nodes())
    for (Op fused : {Op::rms_norm, Op::swiglu, Op::silu, Op::softmax, Op::log_softmax, Op::layer_norm,
                     Op::gelu_tanh, Op::linear, Op::group_norm})
      EXPECT_NE(n.op, fused) << "the layers must not call the fused builder " << op_name(fused);
}

TEST(SmolLM2, ReferenceLogitsMatchTransformers) {
  Graph g;
  TinyLlama model(g);
  const Tensor ids = g.input("input_ids", {1, 12}, DType::i32);
  const Tensor logits = model.forward(g, ids);
  g.set_outputs({logits});
  const auto weights = SafeTensorsFile::open(kFixture + "model.safetensors");
  const auto golden = SafeTensorsFile::open(kFixture + "reference.safetensors");
  reference::Feeds feeds = checkpoint_feeds(g, weights);
  feeds["input_ids"] = as_doubles(golden.to_i32("input_ids"));
  const auto values = reference::run(g, feeds);
  const std::vector<float> want = golden.to_f32("logits");
  const auto& got = values[static_cast<size_t>(logits.id)];
  double largest = 0, worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    largest = std::max(largest, std::fabs(static_cast<double>(want[i])));
    worst = std::max(worst, std::fabs(got.at(i) - want[i]));
  }
  EXPECT_LE(worst, 1e-4 * largest);
}

TEST(SmolLM2, GreedyDecodingWithKvCacheMatchesTransformers) {
  // A prefill graph over the 12 prompt tokens and a one-token decode graph share the caches,
  // which are fed back in after every step (as a session aliases them).
  const int64_t max_positions = 28;  // 12 prompt tokens + 16 generated
  struct Step {
    Graph g;
    Tensor logits;
    std::vector<nn::KvCache> caches;
    explicit Step(int64_t length, int64_t max_positions) {
      TinyLlama model(g);
      for (int i = 0; i < 2; ++i) {
        const std::string layer = std::to_string(i);
        caches.push_back({g.input("cache_k." + layer, {1, 2, max_positions, 16}),
                          g.input("cache_v." + layer, {1, 2, max_positions, 16})});
      }
      logits = model.forward_cached(g, g.input("ids", {1, length}, DType::i32), caches,
                                    g.input("offset", {1}, DType::i32));
      std::vector<Tensor> outputs{logits};
      for (const auto& c : caches) outputs.insert(outputs.end(), {c.k, c.v});
      g.set_outputs(outputs);
    }
  };
  const auto weights = SafeTensorsFile::open(kFixture + "model.safetensors");
  const std::vector<int32_t> prompt = SafeTensorsFile::open(kFixture + "reference.safetensors").to_i32("input_ids");
  Step prefill(static_cast<int64_t>(prompt.size()), max_positions), decode(1, max_positions);
  reference::Feeds feeds = checkpoint_feeds(prefill.g, weights);
  for (int i = 0; i < 2; ++i)
    for (const char* kv : {"cache_k.", "cache_v."})
      feeds[kv + std::to_string(i)] = std::vector<double>(2 * max_positions * 16, 0.0);

  std::ifstream golden(kFixture + "reference.json");
  const auto expected = nlohmann::json::parse(golden).at("greedy_new_ids").get<std::vector<int>>();
  std::vector<double> ids = as_doubles(prompt);
  std::vector<int> generated;
  int64_t offset = 0;
  for (size_t step = 0; step < expected.size(); ++step) {
    Step& s = step == 0 ? prefill : decode;
    feeds["ids"] = step == 0 ? ids : std::vector<double>{static_cast<double>(generated.back())};
    feeds["offset"] = {static_cast<double>(offset)};
    const auto values = reference::run(s.g, feeds);
    const auto& logits = values[static_cast<size_t>(s.logits.id)];
    const size_t last = logits.size() - 512;
    generated.push_back(static_cast<int>(
        std::max_element(logits.begin() + static_cast<long>(last), logits.end()) - logits.begin() - static_cast<long>(last)));
    for (int i = 0; i < 2; ++i) {
      feeds["cache_k." + std::to_string(i)] = values[static_cast<size_t>(s.caches[static_cast<size_t>(i)].k.id)];
      feeds["cache_v." + std::to_string(i)] = values[static_cast<size_t>(s.caches[static_cast<size_t>(i)].v.id)];
    }
    offset += step == 0 ? static_cast<int64_t>(prompt.size()) : 1;
  }
  EXPECT_EQ(generated, expected);
}

TEST(SmolLM2, LossGradientsMatchPyTorch) {
  // batch_loss: mean next-token cross entropy on batch_input_ids [2, 9], labels shifted by one.
  Graph g;
  TinyLlama model(g);
  const Tensor ids = g.input("input_ids", {2, 9}, DType::i32);
  const Tensor logits = model.forward(g, ids);
  const Tensor predictions = g.reshape(g.slice(logits, 1, 0, 8), {16, 512});
  const Tensor labels = g.reshape(g.slice(ids, 1, 1, 9), {16});
  g.set_outputs({g.cross_entropy_loss(predictions, labels)});
  const GradientGraph d = differentiate(g);
  EXPECT_TRUE(d.unreached.empty());

  const auto weights = SafeTensorsFile::open(kFixture + "model.safetensors");
  const auto golden = SafeTensorsFile::open(kFixture + "reference.safetensors");
  const auto golden_grads = SafeTensorsFile::open(kFixture + "reference_grads.safetensors");
  reference::Feeds feeds = checkpoint_feeds(g, weights);
  feeds["input_ids"] = as_doubles(golden.to_i32("batch_input_ids"));
  const auto values = reference::run(d.graph, feeds);

  std::ifstream golden_json(kFixture + "reference.json");
  const double batch_loss = nlohmann::json::parse(golden_json).at("batch_loss").get<double>();
  EXPECT_NEAR(values[static_cast<size_t>(g.outputs()[0])][0], batch_loss, 1e-5);
  ASSERT_EQ(d.parameters.size(), 20u);
  for (const std::string& name : d.parameters) {
    const auto& got = values[static_cast<size_t>(d.gradients.at(name))];
    EXPECT_LE(relative_error(got, golden_grads.to_f32(name)), 1e-4) << name;
  }
}

}  // namespace
}  // namespace meganeura
