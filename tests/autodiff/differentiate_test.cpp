// differentiate(): the result's structure (names, outputs, unreached parameters), stop_gradient,
// integer operands, errors, and the gradient table's coverage of the op table.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "grad_check.h"

namespace meganeura::testing {
namespace {

TEST(GradCoverage, EveryOpHasAGradientRuleOrIsMarked) {
  for (Op op : all_ops()) {
    const GradientSupport support = gradient_support(op);
    EXPECT_NE(support, GradientSupport::missing)
        << "op " << op_name(op) << " has neither a gradient rule nor a not-differentiable marker";
    if (op_category(op) == OpCategory::leaf) {
      EXPECT_EQ(support, GradientSupport::leaf) << op_name(op);
    }
  }
  EXPECT_EQ(gradient_support(Op::argmax), GradientSupport::not_differentiable);
  EXPECT_EQ(gradient_support(Op::greater), GradientSupport::not_differentiable);
  EXPECT_EQ(gradient_support(Op::stop_gradient), GradientSupport::not_differentiable);
}

TEST(GradCoverage, EveryGradientRuleHasAFiniteDifferenceCheck) {
  std::set<Op> checked;
  for (const auto& [test, ops] : claimed_ops()) checked.insert(ops.begin(), ops.end());
  for (Op op : all_ops())
    if (gradient_support(op) == GradientSupport::rule) {
      EXPECT_TRUE(checked.count(op)) << "op " << op_name(op)
                                     << " has a gradient rule but no finite-difference test (MEGANEURA_GRAD_TEST)";
    }
}

TEST(DifferentiateGrad, GradientThroughAKvCacheWriteIsAnError) {
  Graph g;
  Tensor w = g.parameter("w", {1, 1, 2, 4}, Init::normal(0, 1));
  Tensor cache = g.input("cache", {1, 1, 6, 4});
  Tensor written = g.kv_cache_write(cache, w * 2.0, g.input("offset", {1}, DType::i32));
  g.set_outputs({g.sum_all(written)});
  try {
    differentiate(g);
    ADD_FAILURE() << "a gradient through kv_cache_write was dropped silently";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("kv_cache_write"), std::string::npos) << e.what();
  }
  // Off the loss's path the write is harmless (an inference output beside the training loss).
  g.set_outputs({g.sum_all(w * w), written});
  EXPECT_NO_THROW(differentiate(g));
}

TEST(DifferentiateGrad, SecondDerivativesAreAnError) {
  Graph g;
  Tensor x = g.parameter("x", {2, 3}, Init::normal(0, 1));
  Tensor w = g.parameter("w", {3}, Init::ones());
  g.set_outputs({g.sum_all(g.rms_norm_grad(x, w, x, 1e-6))});
  EXPECT_THROW(differentiate(g), Error);
}

TEST(DifferentiateGrad, InputGradientsOnRequest) {
  GradCheck c;
  Tensor x = c.data("pixels", {2, 3});
  Tensor w = c.leaf("w", {3});
  Tensor ids = c.ints("ids", {2}, {1, 0});
  Tensor loss = c.g.sum_all(c.g.exp(x * w) * c.g.cast(c.g.reshape(ids, {2, 1}), DType::f32));
  c.g.set_outputs({loss});
  DifferentiateOptions options;
  options.inputs = {"pixels", "pixels"};
  const GradientGraph d = differentiate(c.g, options);
  EXPECT_EQ(d.parameters, (std::vector<std::string>{"w", "pixels"}));
  EXPECT_EQ(d.graph.find("grad/pixels"), d.gradients.at("pixels"));
  const auto values = reference::run(d.graph, c.feeds);
  const auto& grad = values[static_cast<size_t>(d.gradients.at("pixels"))];
  for (size_t row = 0; row < 2; ++row)
    for (size_t i = 0; i < 3; ++i) {
      const double xi = c.feeds["pixels"][row * 3 + i], wi = c.feeds["w"][i];
      EXPECT_NEAR(grad[row * 3 + i], std::exp(xi * wi) * wi * c.feeds["ids"][row], 1e-12);
    }
  options.inputs = {"ids"};
  EXPECT_THROW(differentiate(c.g, options), Error);
  options.inputs = {"no_such_input"};
  EXPECT_THROW(differentiate(c.g, options), Error);
}

TEST(DifferentiateGrad, NamesOutputsAndOrder) {
  Graph g;
  Tensor x = g.input("x", {4, 3});
  Tensor w = g.parameter("fc.weight", {2, 3}, Init::normal(0, 1));
  Tensor b = g.parameter("fc.bias", {2}, Init::normal(0, 1));
  Tensor frozen = g.parameter("frozen", {2}, Init::ones(), /*trainable=*/false);
  Tensor logits = g.matmul(x, w, false, true) + b * frozen;
  g.set_outputs({g.mean_all(logits * logits), logits});

  const GradientGraph d = differentiate(g);
  EXPECT_EQ(d.parameters, (std::vector<std::string>{"fc.weight", "fc.bias"}));
  EXPECT_TRUE(d.unreached.empty());
  const auto& outputs = d.graph.outputs();
  ASSERT_EQ(outputs.size(), 4u);
  EXPECT_EQ(outputs[0], g.outputs()[0]);
  EXPECT_EQ(outputs[1], logits.id);
  EXPECT_EQ(outputs[2], d.gradients.at("fc.weight"));
  EXPECT_EQ(outputs[3], d.gradients.at("fc.bias"));
  EXPECT_EQ(d.graph.find("grad/fc.weight"), d.gradients.at("fc.weight"));
  EXPECT_EQ(d.graph.node(d.gradients.at("fc.weight")).shape, (Shape{2, 3}));
  EXPECT_EQ(d.graph.node(d.gradients.at("fc.bias")).shape, (Shape{2}));
  EXPECT_FALSE(d.gradients.count("frozen"));
  // The forward nodes keep their ids.
  for (size_t i = 0; i < g.size(); ++i) EXPECT_EQ(d.graph.nodes()[i].op, g.nodes()[i].op);
}

TEST(DifferentiateGrad, LinearRegressionMatchesClosedForm) {
  // loss = mean((x·wᵀ − y)²): d/dw = 2/(N·O)·(x·wᵀ − y)ᵀ·x.
  GradCheck c;
  Tensor x = c.data("x", {5, 3});
  Tensor y = c.data("y", {5, 2});
  Tensor w = c.leaf("w", {2, 3});
  c.g.set_outputs({c.g.mse_loss(c.g.matmul(x, w, false, true), y)});
  const GradientGraph d = differentiate(c.g);
  const auto values = reference::run(d.graph, c.feeds);
  const auto& grad = values[static_cast<size_t>(d.gradients.at("w"))];
  const auto& xv = c.feeds["x"];
  const auto& yv = c.feeds["y"];
  const auto& wv = c.feeds["w"];
  std::vector<double> expected(6, 0.0);
  for (int n = 0; n < 5; ++n)
    for (int o = 0; o < 2; ++o) {
      double pred = 0;
      for (int i = 0; i < 3; ++i) pred += xv[n * 3 + i] * wv[o * 3 + i];
      for (int i = 0; i < 3; ++i) expected[o * 3 + i] += 2.0 / 10.0 * (pred - yv[n * 2 + o]) * xv[n * 3 + i];
    }
  EXPECT_LE(relative_error(grad, expected), 1e-12);
}

TEST(DifferentiateGrad, UnreachedParameterGetsZeroGradient) {
  GradCheck c;
  Tensor used = c.leaf("used", {3});
  Tensor unused = c.leaf("unused", {2, 2});
  Tensor blocked = c.leaf("blocked", {3});
  c.g.set_outputs({c.g.sum_all(c.g.exp(used) + c.g.stop_gradient(blocked)), c.g.sum_all(unused)});
  const GradientGraph d = differentiate(c.g);
  EXPECT_EQ(d.unreached, (std::vector<std::string>{"unused", "blocked"}));
  const auto values = reference::run(d.graph, c.feeds);
  EXPECT_EQ(values[static_cast<size_t>(d.gradients.at("unused"))], std::vector<double>(4, 0.0));
  EXPECT_EQ(values[static_cast<size_t>(d.gradients.at("blocked"))], std::vector<double>(3, 0.0));
  const auto& used_grad = values[static_cast<size_t>(d.gradients.at("used"))];
  for (size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(used_grad[i], std::exp(c.feeds["used"][i]));
}

TEST(DifferentiateGrad, StopGradientBlocksOnePathOnly) {
  // loss = Σ x·sg(x): the gradient is sg(x) = x, not 2x.
  GradCheck c;
  Tensor x = c.leaf("x", {4});
  c.g.set_outputs({c.g.sum_all(x * c.g.stop_gradient(x))});
  const GradientGraph d = differentiate(c.g);
  const auto values = reference::run(d.graph, c.feeds);
  const auto& grad = values[static_cast<size_t>(d.gradients.at("x"))];
  for (size_t i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(grad[i], c.feeds["x"][i]);
}

TEST(DifferentiateGrad, IntegerPathsCarryNoGradient) {
  // argmax and a cast to i32 feed an embedding; only the table receives a gradient.
  GradCheck c;
  Tensor scores = c.leaf("scores", {3, 4});
  Tensor table = c.leaf("table", {4, 2});
  Tensor ids = c.g.argmax(scores, 1);
  Tensor rounded = c.g.cast(c.g.abs(scores) * 3.0, DType::i32);
  Tensor rows = c.g.embedding(table, ids) + c.g.sum(c.g.cast(rounded, DType::f32), 1, true);
  c.g.set_outputs({c.g.sum_all(rows * rows)});
  const GradientGraph d = differentiate(c.g);
  EXPECT_EQ(d.unreached, (std::vector<std::string>{"scores"}));
  const auto values = reference::run(d.graph, c.feeds);
  const auto& grad = values[static_cast<size_t>(d.gradients.at("table"))];
  double norm = 0;
  for (double v : grad) norm += v * v;
  EXPECT_GT(norm, 0.0);
}

TEST(DifferentiateGrad, SharedUpstreamGivesEachParameterItsOwnNode) {
  GradCheck c;
  Tensor a = c.leaf("a", {3});
  Tensor b = c.leaf("b", {3});
  c.g.set_outputs({c.g.sum_all(a + b)});
  const GradientGraph d = differentiate(c.g);
  EXPECT_NE(d.gradients.at("a"), d.gradients.at("b"));
  const auto values = reference::run(d.graph, c.feeds);
  EXPECT_EQ(values[static_cast<size_t>(d.gradients.at("a"))], std::vector<double>(3, 1.0));
  EXPECT_EQ(values[static_cast<size_t>(d.gradients.at("b"))], std::vector<double>(3, 1.0));
}

TEST(DifferentiateGrad, LossMayBeTheParameterItself) {
  Graph g;
  Tensor p = g.parameter("p", {1}, Init::ones());
  g.set_outputs({p});
  const GradientGraph d = differentiate(g);
  const auto values = reference::run(d.graph, {});
  EXPECT_EQ(values[static_cast<size_t>(d.gradients.at("p"))], std::vector<double>{1.0});
}

TEST(DifferentiateGrad, ErrorsNameTheProblem) {
  Graph no_outputs;
  no_outputs.parameter("p", {2});
  EXPECT_THROW(differentiate(no_outputs), Error);

  Graph not_scalar;
  not_scalar.set_outputs({not_scalar.parameter("p", {2})});
  try {
    differentiate(not_scalar);
    ADD_FAILURE() << "a non-scalar loss was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("float scalar"), std::string::npos) << e.what();
  }

  Graph learned_mask;
  Tensor q = learned_mask.input("q", {1, 1, 2, 4});
  Tensor mask = learned_mask.parameter("mask", {2, 2}, Init::normal(0, 1));
  learned_mask.set_outputs({learned_mask.sum_all(learned_mask.attention(q, q, q, {}, mask))});
  try {
    differentiate(learned_mask);
    ADD_FAILURE() << "a gradient into the attention mask was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("stop_gradient"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace meganeura::testing
