// Finite-difference gradient checks on the CPU reference: a small graph around the op under test,
// its gradients from differentiate(), and central differences of the loss, compared per parameter
// as ‖autodiff − numeric‖ / ‖numeric‖.
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "meganeura/autodiff.h"
#include "meganeura/graph.h"
#include "meganeura/reference.h"

namespace meganeura::testing {

class GradCheck {
 public:
  explicit GradCheck(uint64_t seed = 1) : rng_(seed) {}

  Graph g;
  reference::Feeds feeds;

  // A trainable parameter fed with uniform values in [low, high], then scaled elementwise by a
  // random constant in [0.5, 1.5]: the op under test sees an interior node, not a leaf.
  Tensor operand(const std::string& name, Shape shape, double low = -1.0, double high = 1.0);
  // The raw trainable parameter (for ops whose operand must be a particular value range exactly).
  Tensor leaf(const std::string& name, Shape shape, double low = -1.0, double high = 1.0);
  // An integer input with the given values.
  Tensor ints(const std::string& name, Shape shape, std::vector<double> values);
  // A float input (not differentiated) with uniform values in [low, high].
  Tensor data(const std::string& name, Shape shape, double low = -1.0, double high = 1.0);
  std::vector<float> random(size_t n, double low, double high);

  // loss = sum_all(y · random constant); checks every trainable parameter's gradient and returns
  // the largest relative error seen.
  double check(Tensor y, double tolerance = 1e-6);
  double check_loss(Tensor loss, double tolerance = 1e-6);  // y is already the scalar loss

 private:
  std::mt19937_64 rng_;
};

// Which ops each finite-difference test checks, by "Suite.Name". A test that claims an op fails
// unless the graph it checks contains it; GradCoverage fails unless every op with a gradient rule
// is claimed by some test.
bool claim_ops(const char* test_name, std::vector<Op> ops);
const std::map<std::string, std::vector<Op>>& claimed_ops();

// ‖a − b‖ / ‖b‖.
double relative_error(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace meganeura::testing

// A gradient test that checks the listed ops: TEST(suite, name) plus its claim.
#define MEGANEURA_GRAD_TEST(suite, name, ...)                                                     \
  [[maybe_unused]] const bool suite##_##name##_claim =                                            \
      ::meganeura::testing::claim_ops(#suite "." #name, {__VA_ARGS__});                           \
  TEST(suite, name)
