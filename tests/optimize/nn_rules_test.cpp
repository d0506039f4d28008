// optimize() on small graphs: each rule fires on its pattern and not on near misses, leaves keep
// their identity, and the same graph in gives the same graph out.
#include <gtest/gtest.h>

#include <cmath>

#include "meganeura/nn.h"
#include "meganeura/optimize.h"
#include "optimize/equivalence.h"

using meganeura::Graph;
using meganeura::Op;
using meganeura::OptimizeResult;
using meganeura::Tensor;

namespace {

using optimize_test::count_ops;

// Optimizes and checks on the CPU reference that every output is unchanged.
OptimizeResult run(Graph& g, std::vector<Tensor> outputs) {
  g.set_outputs(outputs);
  OptimizeResult r = meganeura::optimize(g);
  optimize_test::expect_equivalent(g, r.graph);
  return r;
}

}  // namespace

TEST(NnRules, SiluFromSigmoidProduct) {
  Graph g;
  auto x = g.input("x", {4, 8});
  auto r = run(g, {x * g.sigmoid(x)});
  EXPECT_EQ(count_ops(r.graph, Op::silu), 1u);
  EXPECT_EQ(count_ops(r.graph, Op::sigmoid), 0u);
  EXPECT_EQ(count_ops(r.graph, Op::mul), 0u);
  EXPECT_EQ(r.report.fused("silu"), 1u);
  EXPECT_LT(r.report.dispatches_after, r.report.dispatches_before);
  EXPECT_LT(r.report.bytes_after, r.report.bytes_before);
}

TEST(NnRules, SigmoidOfAnotherTensorStays) {
  Graph g;
  auto x = g.input("x", {4, 8});
  auto y = g.input("y", {4, 8});
  auto r = run(g, {x * g.sigmoid(y)});
  EXPECT_EQ(count_ops(r.graph, Op::silu), 0u);
  EXPECT_EQ(count_ops(r.graph, Op::sigmoid), 1u);
  EXPECT_EQ(count_ops(r.graph, Op::mul), 1u);
}

TEST(NnRules, SwigluFromGatedProduct) {
  Graph g;
  auto gate = g.input("gate", {2, 3, 16});
  auto up = g.input("up", {2, 3, 16});
  auto r = run(g, {(gate * g.sigmoid(gate)) * up});
  EXPECT_EQ(count_ops(r.graph, Op::swiglu), 1u);
  EXPECT_EQ(r.graph.nodes().back().op, Op::swiglu);
  // Broadcasting up: swiglu needs equal shapes, so only silu is found.
  Graph h;
  auto gate2 = h.input("gate", {2, 3, 16});
  auto up2 = h.input("up", {16});
  auto r2 = run(h, {(gate2 * h.sigmoid(gate2)) * up2});
  EXPECT_EQ(count_ops(r2.graph, Op::swiglu), 0u);
  EXPECT_EQ(count_ops(r2.graph, Op::silu), 1u);
}

TEST(NnRules, RmsNormDecomposition) {
  Graph g;
  auto x = g.input("x", {2, 5, 12});
  auto w = g.parameter("norm.weight", {12});
  auto y = x * g.rsqrt(g.mean(x * x, -1, true) + 1e-5) * w;
  auto r = run(g, {y});
  ASSERT_EQ(count_ops(r.graph, Op::rms_norm), 1u);
  EXPECT_EQ(count_ops(r.graph, Op::mean), 0u);
  for (const auto& n : r.graph.nodes()) {
    if (n.op == Op::rms_norm) {
      EXPECT_DOUBLE_EQ(n.attrs.eps, 1e-5);
    }
  }
  // The weight-first order and pow(x, 2) are the same maths.
  Graph h;
  auto x2 = h.input("x", {2, 5, 12});
  auto w2 = h.parameter("norm.weight", {12});
  auto r2 = run(h, {w2 * (x2 * h.rsqrt(h.mean(h.pow(x2, 2), -1, true) + 1e-6))});
  EXPECT_EQ(count_ops(r2.graph, Op::rms_norm), 1u);
}

TEST(NnRules, RmsNormNearMissesStay) {
  Graph g;
  auto x = g.input("x", {6, 12});
  auto w = g.parameter("w", {12});
  auto wrong_axis = x * g.rsqrt(g.mean(x * x, 0, true) + 1e-5) * g.parameter("w0", {12});
  auto y = g.input("y", {6, 12});
  auto other_tensor = x * g.rsqrt(g.mean(y * y, -1, true) + 1e-5) * w;
  auto r = run(g, {wrong_axis, other_tensor});
  EXPECT_EQ(count_ops(r.graph, Op::rms_norm), 0u);
}

TEST(NnRules, SoftmaxAndLogSoftmax) {
  Graph g;
  auto x = g.input("x", {3, 7});
  auto shifted = x - g.max(x, -1, true);
  auto e = g.exp(shifted);
  auto softmax = e / g.sum(e, -1, true);
  auto log_softmax = shifted - g.log(g.sum(e, -1, true));
  auto r = run(g, {softmax, log_softmax});
  EXPECT_EQ(count_ops(r.graph, Op::softmax), 1u);
  EXPECT_EQ(count_ops(r.graph, Op::log_softmax), 1u);
  EXPECT_EQ(count_ops(r.graph, Op::exp), 0u);
  for (const auto& n : r.graph.nodes()) {
    if (n.op == Op::softmax || n.op == Op::log_softmax) {
      EXPECT_EQ(n.attrs.axis, 1);
    }
  }
}

TEST(NnRules, LayerNormDecomposition) {
  Graph g;
  auto x = g.input("x", {4, 10});
  auto w = g.parameter("ln.weight", {10});
  auto b = g.parameter("ln.bias", {10});
  auto centered = x - g.mean(x, -1, true);
  auto y = centered * g.rsqrt(g.mean(centered * centered, -1, true) + 1e-5) * w + b;
  auto r = run(g, {y});
  EXPECT_EQ(count_ops(r.graph, Op::layer_norm), 1u);
  EXPECT_EQ(r.report.fused("layer_norm"), 1u);
}

TEST(NnRules, GroupNormFromNnLayer) {
  Graph g;
  auto x = g.input("x", {2, 8, 3, 5});
  meganeura::nn::GroupNorm norm(g, "norm", 4, 8, 1e-6);
  auto r = run(g, {norm.forward(g, x)});
  ASSERT_EQ(count_ops(r.graph, Op::group_norm), 1u);
  EXPECT_EQ(count_ops(r.graph, Op::mean), 0u);
  EXPECT_EQ(count_ops(r.graph, Op::rsqrt), 0u);
  for (const auto& n : r.graph.nodes()) {
    if (n.op != Op::group_norm) continue;
    EXPECT_EQ(n.attrs.groups, 4);
    EXPECT_DOUBLE_EQ(n.attrs.eps, 1e-6);
  }
}

TEST(NnRules, GroupNormNeedsPerChannelAffine) {
  // The same normalisation scaled by a per-position vector is not a GroupNorm.
  Graph g;
  auto x = g.input("x", {2, 8, 3, 5});
  auto w = g.parameter("w", {5});
  auto b = g.parameter("b", {5});
  auto grouped = g.reshape(x, {2, 4, -1});
  auto centered = grouped - g.mean(grouped, -1, true);
  auto normalized = g.reshape(centered * g.rsqrt(g.mean(centered * centered, -1, true) + 1e-5), {2, 8, 3, 5});
  auto r = run(g, {normalized * g.reshape(w, {1, 1, 1, 5}) + g.reshape(b, {1, 1, 1, 5})});
  EXPECT_EQ(count_ops(r.graph, Op::group_norm), 0u);
}

TEST(NnRules, GeluTanhFormula) {
  Graph g;
  auto x = g.input("x", {4, 10});
  auto inner = 0.7978845608028654 * (x + 0.044715 * g.pow(x, 3));
  auto y = 0.5 * x * (1.0 + g.tanh(inner));
  auto r = run(g, {y});
  EXPECT_EQ(count_ops(r.graph, Op::gelu_tanh), 1u);
  EXPECT_EQ(count_ops(r.graph, Op::tanh), 0u);
  // A different constant is another function.
  Graph h;
  auto x2 = h.input("x", {4, 10});
  auto r2 = run(h, {0.5 * x2 * (1.0 + h.tanh(0.79 * (x2 + 0.044715 * h.pow(x2, 3))))});
  EXPECT_EQ(count_ops(r2.graph, Op::gelu_tanh), 0u);
}

TEST(NnRules, MatmulBiasBecomesLinearAndTransposesFold) {
  Graph g;
  auto x = g.input("x", {2, 6, 8});
  auto w = g.parameter("fc.weight", {5, 8});
  auto b = g.parameter("fc.bias", {5});
  auto y = g.matmul(x, g.transpose(w)) + b;
  auto r = run(g, {y});
  ASSERT_EQ(count_ops(r.graph, Op::linear), 1u);
  EXPECT_EQ(count_ops(r.graph, Op::permute), 0u);
  EXPECT_EQ(count_ops(r.graph, Op::add), 0u);
  for (const auto& n : r.graph.nodes()) {
    if (n.op == Op::linear) {
      EXPECT_TRUE(n.attrs.transpose_b);
      EXPECT_EQ(r.graph.node(n.inputs[1]).name, "fc.weight");
      EXPECT_EQ(r.graph.node(n.inputs[2]).name, "fc.bias");
    }
  }
  // A bias over the wrong axis is not a linear bias.
  Graph h;
  auto x2 = h.input("x", {5, 8});
  auto w2 = h.parameter("w", {8, 5});
  auto col = h.input("col", {5, 1});
  auto r2 = run(h, {h.matmul(x2, w2) + col});
  EXPECT_EQ(count_ops(r2.graph, Op::linear), 0u);
}

TEST(NnRules, AlgebraicCleanUp) {
  Graph g;
  auto x = g.input("x", {3, 4});
  auto a = (x * 1.0 + 0.0) / 1.0;
  auto b = -(-g.exp(x));
  auto c = g.permute(g.permute(g.input("z", {2, 3, 4}), {2, 0, 1}), {1, 2, 0});
  auto d = g.reshape(g.reshape(x, {12}), {4, 3});
  auto r = run(g, {a, b, c, d});
  const auto& outs = r.graph.outputs();
  EXPECT_EQ(r.graph.node(outs[0]).name, "x");  // x itself
  EXPECT_EQ(r.graph.node(outs[1]).op, Op::exp);
  EXPECT_EQ(r.graph.node(outs[2]).name, "z");
  EXPECT_EQ(r.graph.node(outs[3]).op, Op::reshape);
  EXPECT_EQ(r.graph.node(r.graph.node(outs[3]).inputs[0]).name, "x");
  EXPECT_EQ(count_ops(r.graph, Op::neg), 0u);
  EXPECT_EQ(count_ops(r.graph, Op::mul), 0u);
  // Multiplying by a constant that is not one keeps the product.
  Graph h;
  auto x2 = h.input("x", {3, 4});
  auto r2 = run(h, {x2 * 1.5});
  EXPECT_EQ(count_ops(r2.graph, Op::mul), 1u);
}

TEST(NnRules, LeavesKeepIdentityNamesAndOrder) {
  Graph g;
  auto x = g.input("x", {4, 8});
  auto unused = g.parameter("unused", {3}, meganeura::Init::normal(0, 0.02));
  auto w = g.parameter("w", {8, 8}, meganeura::Init::kaiming());
  auto frozen = g.parameter("frozen", {8}, meganeura::Init::ones(), /*trainable=*/false);
  auto y = g.matmul(x, w) * g.sigmoid(g.matmul(x, w)) * frozen;
  g.set_name(y, "activations");
  auto r = run(g, {y});
  (void)unused;
  auto params = r.graph.parameters();
  ASSERT_EQ(params.size(), 3u);
  EXPECT_EQ(r.graph.node(params[0]).name, "unused");
  EXPECT_EQ(r.graph.node(params[1]).name, "w");
  EXPECT_EQ(r.graph.node(params[2]).name, "frozen");
  EXPECT_EQ(r.graph.node(params[1]).init, meganeura::Init::kaiming());
  EXPECT_FALSE(r.graph.node(params[2]).trainable);
  EXPECT_EQ(r.graph.node(r.graph.outputs()[0]).name, "activations");
  EXPECT_EQ(count_ops(r.graph, Op::matmul), 1u);  // hash-consing shares the repeated product
  EXPECT_EQ(count_ops(r.graph, Op::silu), 1u);
}

TEST(NnRules, SameGraphInSameGraphOut) {
  auto build = [] {
    Graph g;
    auto x = g.input("x", {2, 4, 16});
    auto w1 = g.parameter("w1", {16, 16});
    auto w2 = g.parameter("w2", {16, 16});
    auto n = g.parameter("n", {16});
    auto h = x * g.rsqrt(g.mean(x * x, -1, true) + 1e-6) * n;
    auto gate = g.matmul(h, w1);
    auto up = g.matmul(h, w2);
    g.set_outputs({x + gate * g.sigmoid(gate) * up});
    return g;
  };
  Graph a = build(), b = build();
  auto ra = meganeura::optimize(a), rb = meganeura::optimize(b), ra2 = meganeura::optimize(a);
  EXPECT_EQ(ra.graph.dump(), rb.graph.dump());
  EXPECT_EQ(ra.graph.dump(), ra2.graph.dump());
  EXPECT_EQ(count_ops(ra.graph, Op::rms_norm), 1u);
  EXPECT_EQ(count_ops(ra.graph, Op::swiglu), 1u);
}

TEST(NnRules, ReportAndLimits) {
  Graph g;
  auto x = g.input("x", {4, 8});
  g.set_outputs({x * g.sigmoid(x) + 0.0});
  meganeura::OptimizeOptions options;
  options.max_iterations = 1;
  auto r = meganeura::optimize(g, options);
  EXPECT_EQ(r.report.iterations, 1u);
  EXPECT_EQ(r.report.stop_reason, "iteration limit");
  EXPECT_GT(r.report.enodes, 0u);
  EXPECT_NE(r.report.to_string().find("silu x1"), std::string::npos) << r.report.to_string();
  Graph empty;
  empty.input("x", {1});
  EXPECT_THROW(meganeura::optimize(empty), meganeura::Error);
  options.extra_rules = "(rewrite (mul ?x (frobnicate ?x)) ?x)";
  EXPECT_THROW(meganeura::optimize(g, options), meganeura::Error);
}

TEST(NnRules, BatchedWeightGradientBecomesOneMatmul) {
  Graph g;
  auto dy = g.input("dy", {3, 5, 4});
  auto x = g.input("x", {3, 5, 6});
  auto r = run(g, {g.sum(g.matmul(dy, x, /*transpose_a=*/true), 0)});
  EXPECT_EQ(count_ops(r.graph, Op::sum), 0u);
  ASSERT_EQ(count_ops(r.graph, Op::matmul), 1u);
  const auto& out = r.graph.node(r.graph.outputs()[0]);
  EXPECT_EQ(out.op, Op::matmul);
  EXPECT_EQ(out.shape, (meganeura::Shape{4, 6}));
  // Summing over another axis is a different computation.
  Graph h;
  auto dy2 = h.input("dy", {3, 5, 4});
  auto x2 = h.input("x", {3, 5, 6});
  auto r2 = run(h, {h.sum(h.matmul(dy2, x2, true), 1)});
  EXPECT_EQ(count_ops(r2.graph, Op::sum), 1u);
}

TEST(NnRules, ScalarArithmeticIsFolded) {
  Graph g;
  auto x = g.input("x", {3, 4});
  auto scale = g.recip(g.sqrt(g.scalar(16.0)));  // 0.25, computed by no kernel
  auto r = run(g, {x * scale, g.sum(g.sum(g.input("y", {2, 3, 4}), 0), 0)});
  EXPECT_EQ(count_ops(r.graph, Op::recip), 0u);
  EXPECT_EQ(count_ops(r.graph, Op::sqrt), 0u);
  EXPECT_EQ(count_ops(r.graph, Op::sum), 1u);  // the two leading-axis sums became one
  for (const auto& n : r.graph.nodes()) {
    if (n.op == Op::scalar) {
      EXPECT_DOUBLE_EQ(n.attrs.value, 0.25);
    }
  }
}

// The remaining rules, each on its own pattern, each checked on the reference by run().
TEST(NnRules, EveryOtherRuleFiresAndPreservesOutputs) {
  auto single = [](auto build) {
    Graph g;
    Tensor out = build(g);
    return run(g, {out});
  };
  auto x_of = [](Graph& g) { return g.input("x", {3, 5}); };
  // silu written with exp: x / (1 + exp(-x)) as x * recip(1 + exp(-x)).
  auto r = single([&](Graph& g) { Tensor x = x_of(g); return x * g.recip(1.0 + g.exp(-x)); });
  EXPECT_EQ(count_ops(r.graph, Op::silu), 1u);
  r = single([&](Graph& g) { Tensor x = x_of(g); return g.exp(x) / g.sum(g.exp(x), -1, true); });
  EXPECT_EQ(count_ops(r.graph, Op::softmax), 1u);
  r = single([&](Graph& g) { Tensor x = x_of(g); return x - g.log(g.sum(g.exp(x), -1, true)); });
  EXPECT_EQ(count_ops(r.graph, Op::log_softmax), 1u);
  r = single([&](Graph& g) { return g.log(g.softmax(x_of(g), -1)); });
  EXPECT_EQ(count_ops(r.graph, Op::log_softmax), 1u);
  EXPECT_EQ(count_ops(r.graph, Op::log), 0u);
  // x / sqrt(y) costs what x * rsqrt(y) costs; the rule only makes the second form available.
  r = single([&](Graph& g) { Tensor x = x_of(g); return x / g.sqrt(g.abs(x) + 1.0); });
  EXPECT_EQ(r.report.rules_applied.at("div-sqrt"), 1u);
  r = single([&](Graph& g) { Tensor x = x_of(g); return g.recip(g.sqrt(g.abs(x))); });
  EXPECT_EQ(count_ops(r.graph, Op::rsqrt), 1u);
  r = single([&](Graph& g) { Tensor x = x_of(g); return x * (x * x); });
  EXPECT_EQ(count_ops(r.graph, Op::pow), 1u);
  r = single([&](Graph& g) { Tensor x = x_of(g); return (0.0 - g.exp(x)) + x * -1.0; });
  EXPECT_EQ(count_ops(r.graph, Op::mul), 0u);
  EXPECT_EQ(r.report.rules_applied.at("zero-sub"), 1u);
  EXPECT_EQ(r.report.rules_applied.at("mul-minus-one"), 1u);
  r = single([&](Graph& g) { Tensor x = x_of(g); return x + g.broadcast_to(g.scalar(2.0), {3, 5}); });
  EXPECT_EQ(count_ops(r.graph, Op::broadcast_to), 0u);
  r = single([&](Graph& g) { return g.broadcast_to(x_of(g), {3, 5}) * 3.0; });
  EXPECT_EQ(count_ops(r.graph, Op::broadcast_to), 0u);
  // A transposed left operand becomes transpose_a; a transpose of an already transposed right
  // operand cancels the flag.
  r = single([&](Graph& g) {
    Tensor a = g.input("a", {2, 7, 4});
    Tensor b = g.input("b", {2, 6, 7});
    return g.matmul(g.transpose(a), b, false, true);
  });
  EXPECT_EQ(count_ops(r.graph, Op::permute), 0u);
  for (const auto& n : r.graph.nodes()) {
    if (n.op == Op::matmul) {
      EXPECT_TRUE(n.attrs.transpose_a);
      EXPECT_TRUE(n.attrs.transpose_b);
    }
  }
  r = single([&](Graph& g) {
    Tensor a = g.input("a", {7, 4});
    Tensor b = g.input("b", {4, 6});
    return g.matmul(a, g.transpose(b), false, true);
  });
  EXPECT_EQ(count_ops(r.graph, Op::permute), 0u);
  for (const auto& n : r.graph.nodes()) {
    if (n.op == Op::matmul) {
      EXPECT_FALSE(n.attrs.transpose_b);
    }
  }
}
