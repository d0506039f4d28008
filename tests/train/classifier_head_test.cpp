// The classifier-head kernel (compile/grouping.h, codegen/classifier.cpp) against the same step
// with every node its own kernel: loss, logits and every gradient on random inputs, for index
// labels with ignored rows, for class probabilities, with and without a bias, one row and several
// rows per workgroup.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "gpu/context.h"
#include "meganeura/session.h"
#include "runtime/session_impl.h"

namespace meganeura {
namespace {

struct HeadCase {
  int64_t rows, features, hidden, classes;
  bool bias, probabilities;
};

Graph head_graph(const HeadCase& c) {
  Graph g;
  Tensor x = g.input("x", {c.rows, c.features});
  Tensor labels = c.probabilities ? g.input("labels", {c.rows, c.classes}) : g.input("labels", {c.rows}, DType::i32);
  Tensor w1 = g.parameter("fc1.weight", {c.hidden, c.features}, Init::kaiming());
  Tensor b1 = g.parameter("fc1.bias", {c.hidden}, Init::uniform(-0.5, 0.5));
  Tensor w2 = g.parameter("head.weight", {c.classes, c.hidden}, Init::xavier());
  Tensor h = g.relu(g.linear(x, w1, b1));
  Tensor logits = c.bias ? g.linear(h, w2, g.parameter("head.bias", {c.classes}, Init::uniform(-0.5, 0.5)))
                         : g.matmul(h, w2, false, true);
  g.set_name(logits, "logits");
  g.set_outputs({g.cross_entropy_loss(logits, labels), logits});
  return g;
}

void feed(Session& session, const HeadCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(c.rows * c.features));
  for (float& v : x) v = uniform(rng);
  session.set_input("x", std::span<const float>(x));
  if (c.probabilities) {
    std::vector<float> p(static_cast<size_t>(c.rows * c.classes));
    for (int64_t r = 0; r < c.rows; ++r) {
      float total = 0;
      for (int64_t k = 0; k < c.classes; ++k) total += p[r * c.classes + k] = uniform(rng) + 1.5f;
      for (int64_t k = 0; k < c.classes; ++k) p[r * c.classes + k] /= total;
    }
    session.set_input("labels", std::span<const float>(p));
  } else {
    std::vector<int32_t> labels(static_cast<size_t>(c.rows));
    for (int32_t& l : labels) l = static_cast<int32_t>(rng() % c.classes);
    labels[1] = -100;  // ignored: no loss, no gradient, not counted in the mean
    session.set_input("labels", std::span<const int32_t>(labels));
  }
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 0;
  for (float v : want) scale = std::max(scale, std::abs(static_cast<double>(v)));
  ASSERT_GT(scale, 0.0) << what << " is all zeros: the comparison would prove nothing";
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 2e-5 * scale + 1e-7) << what << "[" << i << "]";
  }
}

// With subgroups the partial sums meet through subgroupAdd, without through a shared-memory tree.
void expect_same_as_unfused(const HeadCase& c, uint32_t rows_per_workgroup, bool subgroups) {
  const Graph graph = head_graph(c);
  compile::DeviceCaps caps = gpu::Context::shared()->caps();
  if (!subgroups) caps.supports_subgroup_arithmetic = false;
  const SessionOptions options{.seed = 3, .optimizer = OptimizerSpec::sgd(0.1)};
  Session fused = runtime::build_session_for_caps(graph, options, caps, true);
  Session plain = build_session(graph, {.seed = 3, .fuse = false, .optimizer = OptimizerSpec::sgd(0.1)});
  const auto& kernels = fused.impl().plan.kernels;
  const auto head = std::find_if(kernels.begin(), kernels.end(),
                                 [](const compile::Kernel& k) { return k.archetype == compile::Archetype::classifier; });
  ASSERT_NE(head, kernels.end()) << fused.impl().plan.summary();
  EXPECT_EQ(head->register_tile[0], rows_per_workgroup);
  if (subgroups && caps.supports_subgroup_arithmetic && caps.min_subgroup_size == caps.max_subgroup_size) {
    EXPECT_EQ(head->register_tile[1], caps.subgroup_size);
  }
  if (!subgroups) {
    EXPECT_EQ(head->register_tile[1], 0u);
  }
  for (uint32_t step = 0; step < 2; ++step) {
    feed(fused, c, step);
    feed(plain, c, step);
    fused.compute_gradients();
    plain.compute_gradients();
    EXPECT_NEAR(fused.read_loss(), plain.read_loss(), 1e-5 * std::abs(plain.read_loss()));
    expect_close(fused.read_output("logits"), plain.read_output("logits"), "logits");
    for (const std::string& name : fused.parameter_names()) {
      expect_close(fused.read_gradient(name), plain.read_gradient(name), "gradient of " + name);
    }
    // A forward pass alone still computes the logits (the kernel also holds part of the backward).
    feed(fused, c, step + 10);
    feed(plain, c, step + 10);
    fused.run();
    plain.run();
    expect_close(fused.read_output("logits"), plain.read_output("logits"), "logits of run()");
  }
}

TEST(ClassifierHead, IndexLabelsWithAnIgnoredRowMatchTheUnfusedStep) {
  expect_same_as_unfused({.rows = 32, .features = 24, .hidden = 40, .classes = 10, .bias = true, .probabilities = false},
                         1, true);
}

TEST(ClassifierHead, ClassProbabilitiesWithoutBiasMatchTheUnfusedStep) {
  expect_same_as_unfused({.rows = 20, .features = 12, .hidden = 300, .classes = 7, .bias = false, .probabilities = true},
                         1, false);
}

TEST(ClassifierHead, SeveralRowsPerWorkgroupMatchTheUnfusedStep) {
  // 300 rows of 3 classes: 2 rows per workgroup, the last workgroup half empty.
  expect_same_as_unfused({.rows = 300, .features = 8, .hidden = 16, .classes = 3, .bias = true, .probabilities = false},
                         2, true);
  expect_same_as_unfused({.rows = 300, .features = 8, .hidden = 16, .classes = 3, .bias = true, .probabilities = false},
                         2, false);
}

TEST(ClassifierHead, RowsLongerThanEightStridesMatchTheUnfusedStep) {
  // 2100 features in the head: a plain strided loop instead of the unrolled one.
  expect_same_as_unfused({.rows = 4, .features = 3, .hidden = 2100, .classes = 2, .bias = true, .probabilities = false},
                         1, true);
}

}  // namespace
}  // namespace meganeura
