// Checks that an optimized graph computes what the original does, on the CPU reference with random
// inputs and parameters: per output, ‖optimized − original‖ / ‖original‖ must stay below a bound.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "meganeura/graph.h"
#include "meganeura/reference.h"

namespace optimize_test {

// How many nodes of the graph have this op (how often a rewrite fired or a pattern survived).
inline size_t count_ops(const meganeura::Graph& g, meganeura::Op op) {
  size_t n = 0;
  for (const auto& node : g.nodes()) n += node.op == op;
  return n;
}

// Random values in [-1, 1] for every float input and parameter; integer inputs must be in `fixed`.
inline meganeura::reference::Feeds random_feeds(const meganeura::Graph& g, uint32_t seed,
                                                const meganeura::reference::Feeds& fixed = {}) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  meganeura::reference::Feeds feeds = fixed;
  for (const auto& n : g.nodes()) {
    if (n.op != meganeura::Op::input && n.op != meganeura::Op::parameter) continue;
    if (feeds.count(n.name)) continue;
    std::vector<double> v(size_t(meganeura::num_elements(n.shape)));
    for (double& x : v) x = dist(rng);
    feeds[n.name] = std::move(v);
  }
  return feeds;
}

inline double relative_error(const std::vector<double>& got, const std::vector<double>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff += (got[i] - ref[i]) * (got[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-300);
}

inline void expect_equivalent(const meganeura::Graph& original, const meganeura::Graph& optimized,
                              const meganeura::reference::Feeds& fixed = {}, double tolerance = 1e-9) {
  ASSERT_EQ(original.outputs().size(), optimized.outputs().size());
  for (uint32_t seed : {1u, 2u}) {
    auto feeds = random_feeds(original, seed, fixed);
    auto want = meganeura::reference::run(original, feeds);
    auto got = meganeura::reference::run(optimized, feeds);
    for (size_t i = 0; i < original.outputs().size(); ++i) {
      const auto& w = want[size_t(original.outputs()[i])];
      const auto& g = got[size_t(optimized.outputs()[i])];
      ASSERT_EQ(w.size(), g.size()) << "output " << i;
      double norm = 0;
      for (double v : w) norm += v * v;
      ASSERT_GT(norm, 0.0) << "output " << i << " is all zeros; the comparison would prove nothing";
      EXPECT_LT(relative_error(g, w), tolerance) << "output " << i << " differs after optimization";
    }
  }
}

}  // namespace optimize_test
