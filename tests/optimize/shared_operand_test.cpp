// Products that share their left operand (q/k/v projections, gate/up) merge into one product over
// the stacked weights plus a slice each, when the cost model says it pays: always considered by the
// rule, chosen at inference (the stacked weights are a derived copy) and for single-row products
// (the slices are views), not for many-row training products (the slices would be copies).
#include <gtest/gtest.h>

#include "meganeura/autodiff.h"
#include "meganeura/optimize.h"
#include "optimize/equivalence.h"

using meganeura::Graph;
using meganeura::Init;
using meganeura::Op;
using meganeura::OptimizeOptions;
using meganeura::OptimizeResult;
using meganeura::Tensor;

namespace {

using optimize_test::count_ops;

size_t applied(const OptimizeResult& r, const std::string& rule) {
  auto it = r.report.rules_applied.find(rule);
  return it == r.report.rules_applied.end() ? 0 : it->second;
}

Tensor proj(Graph& g, Tensor x, const std::string& name, int64_t out) {
  return g.matmul(x, g.parameter(name, {out, x.dim(-1)}, Init::normal(0, 0.3)), false, true);
}

OptimizeResult optimized(Graph& g, bool inference) {
  OptimizeOptions options;
  options.inference = inference;
  OptimizeResult r = meganeura::optimize(g, options);
  optimize_test::expect_equivalent(g, r.graph);
  return r;
}

// q/k/v of one token (rows = 1) or of many; widths multiple of 64 floats, so the slices start on
// 256-byte boundaries and are views.
Graph qkv_graph(int64_t rows) {
  Graph g;
  Tensor x = g.input("x", {1, rows, 64});
  Tensor q = proj(g, x, "q", 128), k = proj(g, x, "k", 64), v = proj(g, x, "v", 64);
  g.set_outputs({g.sigmoid(q), g.tanh(k), v * v});
  return g;
}

}  // namespace

TEST(SharedOperand, QkvBecomeOneProductAtInference) {
  Graph g = qkv_graph(1);
  OptimizeResult r = optimized(g, /*inference=*/true);
  EXPECT_GT(applied(r, "shared-operand-matmul"), 0u);
  EXPECT_EQ(count_ops(r.graph, Op::matmul), 1u);
  ASSERT_EQ(count_ops(r.graph, Op::concat), 1u);
  EXPECT_EQ(count_ops(r.graph, Op::slice), 3u);
  // The three weights are stacked in graph order and stay parameters of their own.
  for (const auto& n : r.graph.nodes()) {
    if (n.op != Op::concat) continue;
    ASSERT_EQ(n.inputs.size(), 3u);
    EXPECT_EQ(r.graph.node(n.inputs[0]).name, "q");
    EXPECT_EQ(r.graph.node(n.inputs[1]).name, "k");
    EXPECT_EQ(r.graph.node(n.inputs[2]).name, "v");
    EXPECT_EQ(n.shape, (meganeura::Shape{256, 64}));
  }
  EXPECT_EQ(r.graph.parameters().size(), 3u);
  EXPECT_LT(r.report.dispatches_after, r.report.dispatches_before);
}

TEST(SharedOperand, ManyRowTrainingProductsStaySeparate) {
  // Slices of a [rows, 256] product along its last axis are copies when rows > 1, and the stacked
  // weights a kernel per step: three products are cheaper.
  Graph g = qkv_graph(64);
  OptimizeResult r = optimized(g, /*inference=*/false);
  EXPECT_GT(applied(r, "shared-operand-matmul"), 0u);  // considered...
  EXPECT_EQ(count_ops(r.graph, Op::matmul), 3u);             // ...and rejected by the cost model
  EXPECT_EQ(count_ops(r.graph, Op::concat), 0u);
}

TEST(SharedOperand, SingleRowTrainingProductsMerge) {
  Graph g = qkv_graph(1);
  OptimizeResult r = optimized(g, /*inference=*/false);
  EXPECT_EQ(count_ops(r.graph, Op::matmul), 1u);
  EXPECT_EQ(count_ops(r.graph, Op::concat), 1u);
}

TEST(SharedOperand, GateAndUpWithBiasesStackBoth) {
  Graph g;
  Tensor x = g.input("x", {1, 64});
  Tensor gw = g.parameter("gate.weight", {128, 64}, Init::normal(0, 0.3));
  Tensor gb = g.parameter("gate.bias", {128}, Init::normal(0, 0.3));
  Tensor uw = g.parameter("up.weight", {128, 64}, Init::normal(0, 0.3));
  Tensor ub = g.parameter("up.bias", {128}, Init::normal(0, 0.3));
  Tensor gate = g.matmul(x, gw, false, true) + gb;
  Tensor up = g.matmul(x, uw, false, true) + ub;
  g.set_outputs({gate * g.sigmoid(gate) * up});
  OptimizeResult r = optimized(g, /*inference=*/true);
  EXPECT_GT(applied(r, "shared-operand-linear"), 0u);
  EXPECT_EQ(count_ops(r.graph, Op::linear), 1u);
  EXPECT_EQ(count_ops(r.graph, Op::matmul), 0u);
  EXPECT_EQ(count_ops(r.graph, Op::concat), 2u);  // weights and biases
  EXPECT_EQ(count_ops(r.graph, Op::swiglu), 1u);
}

TEST(SharedOperand, NearMissesAreLeftAlone) {
  {  // different left operands
    Graph g;
    Tensor x1 = g.input("x1", {1, 64}), x2 = g.input("x2", {1, 64});
    g.set_outputs({proj(g, x1, "a", 64), proj(g, x2, "b", 64)});
    OptimizeResult r = optimized(g, true);
    EXPECT_EQ(applied(r, "shared-operand-matmul"), 0u);
    EXPECT_EQ(count_ops(r.graph, Op::concat), 0u);
  }
  {  // different flags: one weight read transposed, one not
    Graph g;
    Tensor x = g.input("x", {1, 64});
    Tensor a = proj(g, x, "a", 64);
    Tensor b = g.matmul(x, g.parameter("b", {64, 64}, Init::normal(0, 0.3)));
    g.set_outputs({a, b});
    OptimizeResult r = optimized(g, true);
    EXPECT_EQ(applied(r, "shared-operand-matmul"), 0u);
    EXPECT_EQ(count_ops(r.graph, Op::concat), 0u);
  }
  {  // different dtypes: an f16 product of the same values is another left operand
    Graph g;
    Tensor x = g.input("x", {1, 64});
    Tensor a = proj(g, x, "a", 64);
    Tensor w16 = g.parameter("b", {64, 64}, Init::normal(0, 0.3), true, meganeura::DType::f16);
    Tensor b = g.cast(g.matmul(g.cast(x, meganeura::DType::f16), w16, false, true), meganeura::DType::f32);
    g.set_outputs({a, b});
    OptimizeResult r = optimized(g, true);
    EXPECT_EQ(applied(r, "shared-operand-matmul"), 0u);
    EXPECT_EQ(count_ops(r.graph, Op::concat), 0u);
  }
  {  // the right operands are activations, not weights (nothing to stack once)
    Graph g;
    Tensor x = g.input("x", {1, 64});
    Tensor w1 = g.input("w1", {64, 64}), w2 = g.input("w2", {64, 64});
    g.set_outputs({g.matmul(x, w1, false, true), g.matmul(x, w2, false, true)});
    OptimizeResult r = optimized(g, true);
    EXPECT_EQ(applied(r, "shared-operand-matmul"), 0u);
    EXPECT_EQ(count_ops(r.graph, Op::concat), 0u);
  }
  {  // only one of two linears has a bias: the products merge, the bias stays an add
    Graph g;
    Tensor x = g.input("x", {1, 64});
    Tensor a = proj(g, x, "a", 64) + g.parameter("a.bias", {64}, Init::normal(0, 0.3));
    Tensor b = proj(g, x, "b", 64);
    g.set_outputs({a, b});
    OptimizeResult r = optimized(g, true);
    EXPECT_EQ(applied(r, "shared-operand-linear"), 0u);
    EXPECT_LE(count_ops(r.graph, Op::concat), 1u);
  }
}

TEST(SharedOperand, Deterministic) {
  Graph a = qkv_graph(1), b = qkv_graph(1);
  OptimizeOptions inference;
  inference.inference = true;
  OptimizeResult ra = meganeura::optimize(a, inference), rb = meganeura::optimize(b, inference);
  OptimizeResult ra2 = meganeura::optimize(a, inference);
  EXPECT_EQ(ra.graph.dump(), rb.graph.dump());
  EXPECT_EQ(ra.graph.dump(), ra2.graph.dump());
}

TEST(SharedOperand, MergedForwardDifferentiatesToTheSameGradients) {
  // The training path: optimize(forward) merges (single row), differentiate splits the stacked
  // weights' gradient back through concat, optimize(whole graph) keeps it equal.
  Graph g;
  Tensor x = g.input("x", {1, 64});
  Tensor target = g.input("target", {1, 256});
  Tensor q = proj(g, x, "q", 128), k = proj(g, x, "k", 64), v = proj(g, x, "v", 64);
  Tensor y = g.concat({g.tanh(q), g.sigmoid(k), v}, 1);
  g.set_outputs({g.mse_loss(y, target)});
  OptimizeResult fwd = meganeura::optimize(g);
  ASSERT_EQ(count_ops(fwd.graph, Op::concat), 2u);  // the weights', and the user's
  auto merged = meganeura::differentiate(fwd.graph);
  auto whole = meganeura::optimize(merged.graph);
  auto plain = meganeura::differentiate(g);
  EXPECT_EQ(merged.parameters, plain.parameters);
  optimize_test::expect_equivalent(plain.graph, whole.graph, {}, 1e-9);
}

TEST(SharedOperand, EveryLayerOfADeepDecodeStepMerges) {
  // Behind a long residual stream the products' classes carry the whole network's cost; the
  // merge must still be found in every layer (one token, so every slice is a view).
  Graph g;
  Tensor x = g.input("x", {1, 1, 64});
  constexpr int kLayers = 4;
  for (int l = 0; l < kLayers; ++l) {
    const std::string p = "layer" + std::to_string(l) + ".";
    Tensor n = g.parameter(p + "norm", {64}, Init::normal(1, 0.1));
    Tensor h = x * g.rsqrt(g.mean(x * x, -1, true) + 1e-5) * n;
    Tensor q = proj(g, h, p + "q", 64), k = proj(g, h, p + "k", 128), v = proj(g, h, p + "v", 64);
    Tensor mixed = g.softmax(q, -1) + g.slice(g.softmax(k, -1), 2, 0, 64) + g.softmax(v, -1);
    x = x + proj(g, mixed, p + "o", 64);
  }
  g.set_outputs({x});
  OptimizeResult r = optimized(g, /*inference=*/true);
  EXPECT_EQ(count_ops(r.graph, Op::concat), size_t(kLayers));
  EXPECT_EQ(count_ops(r.graph, Op::matmul), size_t(2 * kLayers));  // the wide one and o per layer
}
