// Shared pieces of the kernel benchmarks: random inputs for a graph and an inference session fed
// with them, so every benchmark checks its kernels against the CPU reference on the same data it
// times.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "meganeura/reference.h"
#include "meganeura/session.h"

namespace meganeura::bench_util {

// Uniform values in [-1, 1) for every input of the graph (never zeros).
inline reference::Feeds random_feeds(const Graph& graph, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  reference::Feeds feeds;
  for (int32_t id : graph.inputs()) {
    std::vector<double> values(static_cast<size_t>(num_elements(graph.node(id).shape)));
    for (double& v : values) v = uniform(rng);
    feeds[graph.node(id).name] = values;
  }
  return feeds;
}

// An unoptimized inference session (the kernels under test run as written) with the feeds uploaded.
inline Session fed_inference_session(const Graph& graph, const reference::Feeds& feeds) {
  SessionOptions options;
  options.optimize = false;
  Session session = build_inference_session(graph, options);
  for (const auto& [name, values] : feeds) {
    std::vector<float> floats(values.begin(), values.end());
    session.set_input(name, std::span<const float>(floats));
  }
  return session;
}

}  // namespace meganeura::bench_util
