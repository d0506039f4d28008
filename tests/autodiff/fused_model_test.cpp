// Training differentiates the optimized forward graph (DESIGN.md): the fused ops' own gradient
// rules must give the same gradients as differentiating the primitive ops the layers emit.
#include <gtest/gtest.h>

#include <random>

#include "grad_check.h"
#include "meganeura/nn.h"
#include "meganeura/optimize.h"

namespace meganeura::testing {
namespace {

void expect_same_gradients(const Graph& forward, const std::vector<Op>& expected_fusions) {
  const OptimizeResult fused = optimize(forward);
  for (Op op : expected_fusions) {
    bool found = false;
    for (const Node& n : fused.graph.nodes()) found = found || n.op == op;
    EXPECT_TRUE(found) << "the optimizer did not form " << op_name(op) << "\n" << fused.report.to_string();
  }
  const GradientGraph plain = differentiate(forward);
  const GradientGraph optimized = differentiate(fused.graph);
  ASSERT_EQ(plain.parameters, optimized.parameters);

  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  reference::Feeds feeds;
  for (const Node& n : forward.nodes()) {
    if (n.op != Op::input && n.op != Op::parameter) continue;
    std::vector<double> v(static_cast<size_t>(num_elements(n.shape)));
    for (double& x : v) x = n.dtype == DType::i32 ? static_cast<double>(rng() % 3) : dist(rng);
    feeds[n.name] = v;
  }
  const auto a = reference::run(plain.graph, feeds);
  const auto b = reference::run(optimized.graph, feeds);
  for (const std::string& name : plain.parameters) {
    const auto& want = a[static_cast<size_t>(plain.gradients.at(name))];
    const auto& got = b[static_cast<size_t>(optimized.gradients.at(name))];
    EXPECT_LE(relative_error(got, want), 1e-10) << name;
  }
}

TEST(FusedModelGrad, TransformerBlockGradMatchesUnfused) {
  Graph g;
  nn::TransformerConfig c;
  c.hidden = 8;
  c.intermediate = 12;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.rope_theta = 100.0;
  nn::TransformerBlock block(g, "model.layers.0", c);
  nn::RmsNorm norm(g, "model.norm", 8);
  nn::Linear head(g, "lm_head", 8, 3);
  Tensor logits = g.reshape(head.forward(g, norm.forward(g, block.forward(g, g.input("x", {2, 3, 8})))), {6, 3});
  g.set_outputs({g.cross_entropy_loss(logits, g.input("labels", {6}, DType::i32))});
  expect_same_gradients(g, {Op::rms_norm, Op::swiglu});
}

TEST(FusedModelGrad, VisionLayersGradMatchesUnfused) {
  Graph g;
  nn::Conv2d conv(g, "patch_embedding", 2, 4, {2, 2}, Conv2dOptions{{2, 2}});
  nn::LayerNorm norm(g, "layer_norm1", 4, 1e-6);
  nn::GeluMlp mlp(g, "mlp", 4, 8);
  Tensor patches = conv.forward(g, g.input("pixels", {1, 2, 4, 4}));                      // [1, 4, 2, 2]
  Tensor tokens = g.transpose(g.reshape(patches, {1, 4, 4}), 1, 2);                       // [1, 4 positions, 4]
  Tensor y = mlp.forward(g, norm.forward(g, tokens));
  g.set_outputs({g.mean_all(nn::softmax(g, y, -1) * y)});
  expect_same_gradients(g, {Op::layer_norm, Op::gelu_tanh, Op::softmax, Op::linear});
}

}  // namespace
}  // namespace meganeura::testing
