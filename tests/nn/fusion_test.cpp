// The layers write the maths with primitive ops; the optimizer must recognise them as the fused
// ops (rms_norm, swiglu, layer_norm, gelu_tanh, softmax, linear) without changing the outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "meganeura/nn.h"
#include "meganeura/optimize.h"
#include "meganeura/reference.h"

namespace meganeura {
namespace {

size_t count_ops(const Graph& g, Op op) {
  size_t n = 0;
  for (const Node& node : g.nodes()) n += node.op == op;
  return n;
}

// Runs both graphs on the same random feeds; the first outputs must agree to rounding.
void expect_same_outputs(const Graph& before, const Graph& after) {
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  reference::Feeds feeds;
  for (const Node& n : before.nodes()) {
    if (n.op != Op::input && n.op != Op::parameter) continue;
    std::vector<double> v(static_cast<size_t>(num_elements(n.shape)));
    for (double& x : v) x = dist(rng);
    feeds[n.name] = v;
  }
  const auto a = reference::run(before, feeds)[static_cast<size_t>(before.outputs()[0])];
  const auto b = reference::run(after, feeds)[static_cast<size_t>(after.outputs()[0])];
  ASSERT_EQ(a.size(), b.size());
  double diff = 0, ref = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += (a[i] - b[i]) * (a[i] - b[i]), ref += a[i] * a[i];
  EXPECT_LE(std::sqrt(diff / ref), 1e-12);
}

TEST(LayerFusion, TransformerBlockFusesNormsAndSwiGlu) {
  Graph g;
  nn::TransformerConfig c;
  c.hidden = 8;
  c.intermediate = 12;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  nn::TransformerBlock block(g, "model.layers.0", c);
  g.set_outputs({block.forward(g, g.input("x", {1, 3, 8}))});
  const OptimizeResult r = optimize(g);
  EXPECT_EQ(count_ops(r.graph, Op::rms_norm), 2u) << r.report.to_string();
  EXPECT_EQ(count_ops(r.graph, Op::swiglu), 1u) << r.report.to_string();
  expect_same_outputs(g, r.graph);
}

TEST(LayerFusion, VisionLayersFuseLayerNormGeluAndLinear) {
  Graph g;
  nn::LayerNorm norm(g, "layer_norm1", 8, 1e-6);
  nn::GeluMlp mlp(g, "mlp", 8, 16);
  Tensor x = g.input("x", {2, 3, 8});
  g.set_outputs({mlp.forward(g, norm.forward(g, x))});
  const OptimizeResult r = optimize(g);
  EXPECT_EQ(count_ops(r.graph, Op::layer_norm), 1u) << r.report.to_string();
  EXPECT_EQ(count_ops(r.graph, Op::gelu_tanh), 1u) << r.report.to_string();
  EXPECT_GE(count_ops(r.graph, Op::linear), 1u) << r.report.to_string();
  expect_same_outputs(g, r.graph);
}

TEST(LayerFusion, SoftmaxAndSiluFuse) {
  Graph g;
  Tensor x = g.input("x", {3, 5});
  g.set_outputs({nn::softmax(g, nn::silu(g, x), -1)});
  const OptimizeResult r = optimize(g);
  EXPECT_EQ(count_ops(r.graph, Op::softmax), 1u) << r.report.to_string();
  EXPECT_EQ(count_ops(r.graph, Op::silu), 1u) << r.report.to_string();
  expect_same_outputs(g, r.graph);
}

}  // namespace
}  // namespace meganeura
