// The nn layers assembled into the SmolLM2 architecture (Llama), loaded with the fixture's
// Hugging Face weights: parameter names and shapes match the checkpoint, the reference forward
// matches transformers' logits, and differentiate() matches PyTorch's loss gradients.
#include <gtest/gtest.h>

#include <cmath>
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

  EXPECT_NEAR(values[static_cast<size_t>(g.outputs()[0])][0], 6.199693202972412, 1e-5);
  ASSERT_EQ(d.parameters.size(), 20u);
  for (const std::string& name : d.parameters) {
    const auto& got = values[static_cast<size_t>(d.gradients.at(name))];
    EXPECT_LE(relative_error(got, golden_grads.to_f32(name)), 1e-4) << name;
  }
}

}  // namespace
}  // namespace meganeura
