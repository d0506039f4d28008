// Helpers for session tests: random feeds, the reference oracle, relative errors.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "meganeura/graph.h"
#include "meganeura/reference.h"
#include "meganeura/session.h"

namespace meganeura::testing_support {

struct Feeds {
  reference::Feeds reference;
  std::map<std::string, std::vector<float>> floats;
  std::map<std::string, std::vector<int32_t>> ints;
};

// Uniform(-1, 1) floats (never all zero) and integers in [0, int_high) for every input of the graph.
inline Feeds random_feeds(const Graph& graph, uint32_t seed, int int_high = 3) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  Feeds feeds;
  for (int32_t id : graph.inputs()) {
    const Node& node = graph.node(id);
    const size_t count = static_cast<size_t>(num_elements(node.shape));
    std::vector<double> values(count);
    if (node.dtype == DType::i32) {
      std::vector<int32_t> ints(count);
      for (size_t i = 0; i < count; ++i) values[i] = ints[i] = static_cast<int32_t>(rng() % int_high);
      feeds.ints[node.name] = ints;
    } else {
      std::vector<float> floats(count);
      for (size_t i = 0; i < count; ++i) values[i] = floats[i] = uniform(rng);
      feeds.floats[node.name] = floats;
    }
    feeds.reference[node.name] = values;
  }
  return feeds;
}

inline void apply(Session& session, const Feeds& feeds) {
  for (const auto& [name, values] : feeds.floats) session.set_input(name, std::span<const float>(values));
  for (const auto& [name, values] : feeds.ints) session.set_input(name, std::span<const int32_t>(values));
}

// ‖got − ref‖ / ‖ref‖ (absolute when the reference is all zeros).
inline double relative_error(const std::vector<float>& got, const std::vector<double>& ref) {
  EXPECT_EQ(got.size(), ref.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < std::min(got.size(), ref.size()); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    diff += (got[i] - ref[i]) * (got[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return norm == 0 ? std::sqrt(diff) : std::sqrt(diff / norm);
}

}  // namespace meganeura::testing_support
