// Training steps on the GPU follow the reference SGD (momentum), Adam and AdamW updates, computed
// here in double precision from the reference gradients.
#include <cmath>

#include "meganeura/autodiff.h"
#include "runtime/session_impl.h"
#include "session/session_test_util.h"

namespace meganeura {
namespace {

using testing_support::random_feeds;
using testing_support::relative_error;

Graph small_mlp() {
  Graph g;
  auto x = g.input("x", {8, 6});
  auto labels = g.input("labels", {8}, DType::i32);
  auto w1 = g.parameter("fc1.weight", {5, 6}, Init::kaiming());
  auto b1 = g.parameter("fc1.bias", {5}, Init::uniform(-0.5, 0.5));
  auto w2 = g.parameter("fc2.weight", {3, 5}, Init::xavier());
  auto b2 = g.parameter("fc2.bias", {3});
  auto hidden = g.relu(g.matmul(x, w1, false, true) + b1);
  g.set_outputs({g.cross_entropy_loss(g.matmul(hidden, w2, false, true) + b2, labels)});
  return g;
}

struct ReferenceOptimizer {
  OptimizerSpec spec;
  std::map<std::string, std::vector<double>> m, v;
  int step = 0;

  void update(std::map<std::string, std::vector<double>>& params,
              const std::map<std::string, std::vector<double>>& grads) {
    ++step;
    double scale = 1.0;
    if (spec.clip_global_norm > 0) {
      double total = 0;
      for (const auto& [name, g] : grads) for (double x : g) total += x * x;
      scale = std::min(1.0, spec.clip_global_norm / (std::sqrt(total) + 1e-6));
    }
    for (auto& [name, p] : params) {
      const auto& g0 = grads.at(name);
      auto& mm = m[name];
      auto& vv = v[name];
      mm.resize(p.size(), 0.0);
      vv.resize(p.size(), 0.0);
      for (size_t i = 0; i < p.size(); ++i) {
        double g = g0[i] * scale;
        if (spec.kind == OptimizerSpec::Kind::sgd) {
          g += spec.weight_decay * p[i];
          if (spec.momentum != 0) {
            mm[i] = spec.momentum * mm[i] + g;
            g = mm[i];
          }
          p[i] -= spec.learning_rate * g;
        } else {
          if (spec.kind == OptimizerSpec::Kind::adam) g += spec.weight_decay * p[i];
          else p[i] -= spec.learning_rate * spec.weight_decay * p[i];
          mm[i] = spec.beta1 * mm[i] + (1 - spec.beta1) * g;
          vv[i] = spec.beta2 * vv[i] + (1 - spec.beta2) * g * g;
          const double m_hat = mm[i] / (1 - std::pow(spec.beta1, step));
          const double v_hat = vv[i] / (1 - std::pow(spec.beta2, step));
          p[i] -= spec.learning_rate * m_hat / (std::sqrt(v_hat) + spec.eps);
        }
      }
    }
  }
};

void check_training(const OptimizerSpec& spec, bool optimize_graph) {
  const Graph g = small_mlp();
  const GradientGraph d = differentiate(g);
  SessionOptions options;
  options.seed = 21;
  options.optimize = optimize_graph;
  options.optimizer = spec;
  Session session = build_session(g, options);

  // Parameters as the session starts them.
  std::map<std::string, std::vector<double>> params;
  for (const std::string& name : session.parameter_names()) {
    const auto values = session.read_parameter(name);
    params[name] = std::vector<double>(values.begin(), values.end());
  }
  ReferenceOptimizer reference_optimizer;
  reference_optimizer.spec = spec;
  for (int step = 0; step < 4; ++step) {
    auto feeds = random_feeds(g, 100 + step, 3);
    testing_support::apply(session, feeds);
    for (const auto& [name, values] : params) feeds.reference[name] = values;
    const auto values = reference::run(d.graph, feeds.reference);
    std::map<std::string, std::vector<double>> grads;
    for (const auto& [name, id] : d.gradients) grads[name] = values[id];
    session.step();
    const double loss_error =
        std::abs(session.read_loss() - values[g.outputs()[0]][0]) / std::abs(values[g.outputs()[0]][0]);
    EXPECT_LE(loss_error, 1e-5) << "step " << step;
    for (const auto& [name, grad] : grads) {
      EXPECT_LE(relative_error(session.read_gradient(name), grad), 1e-5) << "gradient of " << name << ", step " << step;
    }
    reference_optimizer.update(params, grads);
    for (const auto& [name, expected] : params) {
      EXPECT_LE(relative_error(session.read_parameter(name), expected), 1e-5) << name << " after step " << step;
    }
  }
}

TEST(Training, SgdMatchesReference) { check_training(OptimizerSpec::sgd(0.1), false); }
TEST(Training, SgdMomentumMatchesReference) { check_training(OptimizerSpec::sgd(0.05, 0.9), false); }
TEST(Training, AdamMatchesReference) { check_training(OptimizerSpec::adam(0.01), false); }
TEST(Training, AdamWMatchesReference) { check_training(OptimizerSpec::adamw(0.01, 0.1), false); }
TEST(Training, ClippedSgdMatchesReference) {
  OptimizerSpec spec = OptimizerSpec::sgd(0.1, 0.5);
  spec.clip_global_norm = 0.05;
  check_training(spec, false);
}
TEST(Training, OptimizedGraphTrainsLikeTheReference) { check_training(OptimizerSpec::adamw(0.01, 0.1), true); }

TEST(Training, LearningRateChangesWithoutRerecording) {
  const Graph g = small_mlp();
  SessionOptions options;
  options.optimize = false;
  options.optimizer = OptimizerSpec::sgd(0.1);
  Session session = build_session(g, options);
  const auto feeds = random_feeds(g, 3, 3);
  testing_support::apply(session, feeds);
  const gpu::Recording* recording = session.impl().recording.get();
  session.set_learning_rate(0.0);
  const auto before = session.read_parameter("fc1.weight");
  session.step_n(3);
  EXPECT_EQ(session.read_parameter("fc1.weight"), before);  // lr 0: nothing moves
  session.set_learning_rate(0.1);
  session.step();
  EXPECT_NE(session.read_parameter("fc1.weight"), before);
  EXPECT_EQ(session.impl().recording.get(), recording);  // the same recorded step
}

TEST(Training, StepNMatchesRepeatedSteps) {
  const Graph g = small_mlp();
  SessionOptions options;
  options.optimize = false;
  options.optimizer = OptimizerSpec::adam(0.01);
  Session a = build_session(g, options);
  Session b = build_session(g, options);
  const auto feeds = random_feeds(g, 4, 3);
  testing_support::apply(a, feeds);
  testing_support::apply(b, feeds);
  a.step_n(5);
  for (int i = 0; i < 5; ++i) b.step();
  EXPECT_EQ(a.read_parameter("fc2.weight"), b.read_parameter("fc2.weight"));
  EXPECT_EQ(a.read_loss(), b.read_loss());
}

}  // namespace
}  // namespace meganeura
