#include "grad_check.h"

#include <gtest/gtest.h>

#include <cmath>

namespace meganeura::testing {

std::vector<float> GradCheck::random(size_t n, double low, double high) {
  std::uniform_real_distribution<double> dist(low, high);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(dist(rng_));
  return v;
}

Tensor GradCheck::leaf(const std::string& name, Shape shape, double low, double high) {
  const auto n = static_cast<size_t>(num_elements(shape));
  Tensor p = g.parameter(name, shape, Init::zeros(), /*trainable=*/true);
  std::vector<float> values = random(n, low, high);
  feeds[name] = std::vector<double>(values.begin(), values.end());
  return p;
}

Tensor GradCheck::operand(const std::string& name, Shape shape, double low, double high) {
  const auto n = static_cast<size_t>(num_elements(shape));
  Tensor p = leaf(name, shape, low, high);
  return p * g.constant(random(n, 0.5, 1.5), shape);
}

Tensor GradCheck::ints(const std::string& name, Shape shape, std::vector<double> values) {
  Tensor t = g.input(name, shape, DType::i32);
  feeds[name] = std::move(values);
  return t;
}

Tensor GradCheck::data(const std::string& name, Shape shape, double low, double high) {
  Tensor t = g.input(name, shape);
  std::vector<float> values = random(static_cast<size_t>(num_elements(shape)), low, high);
  feeds[name] = std::vector<double>(values.begin(), values.end());
  return t;
}

namespace {

std::map<std::string, std::vector<Op>>& claims() {
  static std::map<std::string, std::vector<Op>> by_test;
  return by_test;
}

// The claims of the running test must all appear in the graph it checks.
void expect_claimed_ops_present(const Graph& graph) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (!info) return;
  auto it = claims().find(std::string(info->test_suite_name()) + "." + info->name());
  if (it == claims().end()) return;
  for (Op op : it->second) {
    bool found = false;
    for (const Node& n : graph.nodes()) found = found || n.op == op;
    EXPECT_TRUE(found) << "the test claims to check " << op_name(op) << " but its graph has no such node";
  }
}

}  // namespace

bool claim_ops(const char* test_name, std::vector<Op> ops) {
  claims()[test_name] = std::move(ops);
  return true;
}

const std::map<std::string, std::vector<Op>>& claimed_ops() { return claims(); }

double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    ref += b[i] * b[i];
  }
  if (a.size() != b.size()) return INFINITY;
  return std::sqrt(diff) / std::max(std::sqrt(ref), 1e-300);
}

double GradCheck::check(Tensor y, double tolerance) {
  const auto n = static_cast<size_t>(num_elements(y.shape()));
  return check_loss(g.sum_all(y * g.constant(random(n, -1.5, 1.5), y.shape())), tolerance);
}

double GradCheck::check_loss(Tensor loss, double tolerance) {
  g.set_outputs({loss});
  expect_claimed_ops_present(g);
  const GradientGraph d = differentiate(g);
  const reference::Values values = reference::run(d.graph, feeds);
  EXPECT_TRUE(d.unreached.empty()) << "a parameter does not reach the loss: " << d.unreached.front();
  double worst = 0;
  const double step = 1e-6;
  for (const std::string& name : d.parameters) {
    const std::vector<double>& analytic = values[static_cast<size_t>(d.gradients.at(name))];
    std::vector<double> numeric(feeds[name].size());
    for (size_t i = 0; i < numeric.size(); ++i) {
      const double saved = feeds[name][i];
      feeds[name][i] = saved + step;
      const double up = reference::run(g, feeds)[static_cast<size_t>(loss.id)][0];
      feeds[name][i] = saved - step;
      const double down = reference::run(g, feeds)[static_cast<size_t>(loss.id)][0];
      feeds[name][i] = saved;
      numeric[i] = (up - down) / (2 * step);
    }
    double norm = 0;
    for (double v : numeric) norm += v * v;
    EXPECT_GT(norm, 1e-12) << "gradient of " << name << " is zero: the check would prove nothing";
    const double error = relative_error(analytic, numeric);
    EXPECT_LE(error, tolerance) << "gradient of " << name << "\n" << d.graph.dump();
    worst = std::max(worst, error);
  }
  return worst;
}

}  // namespace meganeura::testing
