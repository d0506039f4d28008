// Helpers for kernel tests: run a graph on the GPU with poisoned outputs and arena, and compare
// every output with the CPU reference.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "gpu/transfer.h"
#include "meganeura/autodiff.h"
#include "meganeura/reference.h"
#include "runtime/session_impl.h"
#include "session/session_test_util.h"

namespace meganeura::kernel_tests {

// Fills outputs and the arena with NaN so an element a kernel never writes shows up.
inline void poison(Session& session) {
  auto& impl = session.impl();
  for (size_t i = 0; i < impl.plan.buffers.size(); ++i) {
    const auto kind = impl.plan.buffers[i].kind;
    if (kind == compile::BufferKind::arena || kind == compile::BufferKind::output) {
      gpu::fill(*impl.buffers[i], 0x7fc00000u);
    }
  }
}

// The real device's caps, or (small = true) the same device pretending to have 16 KiB of shared
// memory and 64-invocation workgroups, so tile sizes shrink and other paths run.
inline compile::DeviceCaps test_caps(bool small) {
  compile::DeviceCaps caps = gpu::Context::shared()->caps();
  if (small) {
    caps.max_shared_memory_bytes = 16 * 1024;
    caps.max_workgroup_invocations = 64;
  }
  return caps;
}

// Feeds from the reference's doubles: i32 inputs as ints, the rest as floats.
inline void apply(Session& session, const Graph& graph, const reference::Feeds& feeds) {
  for (int32_t id : graph.inputs()) {
    const Node& node = graph.node(id);
    const std::vector<double>& values = feeds.at(node.name);
    if (node.dtype == DType::i32) {
      std::vector<int32_t> ints(values.begin(), values.end());
      session.set_input(node.name, std::span<const int32_t>(ints));
    } else {
      std::vector<float> floats(values.begin(), values.end());
      session.set_input(node.name, std::span<const float>(floats));
    }
  }
}

// Uniform(-1, 1) values for every float input; i32 inputs must be given in `ints`.
inline reference::Feeds random_inputs(const Graph& graph, uint32_t seed, const std::map<std::string, int>& ints = {}) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  reference::Feeds feeds;
  for (int32_t id : graph.inputs()) {
    const Node& node = graph.node(id);
    std::vector<double> values(static_cast<size_t>(num_elements(node.shape)));
    if (node.dtype == DType::i32) {
      for (double& v : values) v = ints.at(node.name);
    } else {
      for (double& v : values) v = static_cast<double>(static_cast<float>(uniform(rng)));
    }
    feeds[node.name] = std::move(values);
  }
  return feeds;
}

// Relative errors of every graph output, GPU against the reference (inference session, unoptimized
// so each op runs its own kernel).
inline std::vector<double> output_errors(const Graph& graph, const reference::Feeds& feeds, bool small_caps,
                                         std::string* summary = nullptr) {
  reference::Options reference_options;
  reference_options.training = false;
  const auto expected = reference::run(graph, feeds, reference_options);
  SessionOptions options;
  options.optimize = false;
  Session session = runtime::build_session_for_caps(graph, options, test_caps(small_caps), false);
  apply(session, graph, feeds);
  poison(session);
  session.run();
  if (summary) *summary = session.plan_summary();
  std::vector<double> errors;
  for (size_t k = 0; k < graph.outputs().size(); ++k) {
    errors.push_back(testing_support::relative_error(session.read_output(k), expected[graph.outputs()[k]]));
  }
  return errors;
}

// Relative errors of every output of `graph` run unoptimized with `weight_storage` on `caps`, inputs
// from `seed`, against the reference on the parameters as the session holds them (rounded when
// stored as 16-bit).
inline std::vector<double> errors_on_held_parameters(const Graph& graph, DType weight_storage,
                                                     const compile::DeviceCaps& caps, uint32_t seed) {
  SessionOptions options;
  options.optimize = false;
  options.weight_storage = weight_storage;
  Session session = runtime::build_session_for_caps(graph, options, caps, false);
  const reference::Feeds feeds = random_inputs(graph, seed);
  apply(session, graph, feeds);
  poison(session);
  session.run();
  reference::Feeds held = feeds;
  for (int32_t id : graph.parameters()) {
    const std::vector<float> values = session.read_parameter(graph.node(id).name);
    held[graph.node(id).name] = std::vector<double>(values.begin(), values.end());
  }
  reference::Options reference_options;
  reference_options.training = false;
  const auto expected = reference::run(graph, held, reference_options);
  std::vector<double> errors;
  for (size_t k = 0; k < graph.outputs().size(); ++k) {
    errors.push_back(testing_support::relative_error(session.read_output(k), expected.at(graph.outputs()[k])));
  }
  return errors;
}

// One training step of `graph` (unoptimized, SGD at learning rate 0, parameters from `seed`) on the
// CI device with `feeds`; every parameter's gradient must match the CPU reference run on the
// differentiated graph within `limit`. Returns the session for checks of its plan.
inline Session expect_training_gradients(const Graph& graph, const reference::Feeds& feeds, uint64_t seed,
                                         double limit) {
  const GradientGraph d = differentiate(graph);
  SessionOptions options;
  options.seed = seed;
  options.optimize = false;
  options.optimizer = OptimizerSpec::sgd(0.0);
  Session session = runtime::build_session_for_caps(graph, options, test_caps(false), true);
  apply(session, graph, feeds);
  poison(session);
  session.step();
  reference::Options reference_options;
  reference_options.training = true;
  reference_options.seed = seed;  // parameters start from the same initial values as the session's
  const auto expected = reference::run(d.graph, feeds, reference_options);
  for (const std::string& name : d.parameters) {
    EXPECT_LE(testing_support::relative_error(session.read_gradient(name), expected[d.gradients.at(name)]), limit)
        << name;
  }
  return session;
}

// The five outputs of an attention forward + backward graph (out, lse, dq, dk, dv): the forward
// two within forward_limit, the gradients within gradient_limit.
inline void expect_attention_errors(const std::vector<double>& errors, const std::string& what,
                                    const std::string& summary, double forward_limit, double gradient_limit) {
  const char* names[] = {"attention", "lse", "dq", "dk", "dv"};
  ASSERT_EQ(errors.size(), 5u);
  for (size_t k = 0; k < errors.size(); ++k) {
    EXPECT_LE(errors[k], k < 2 ? forward_limit : gradient_limit) << what << " " << names[k] << "\n" << summary;
  }
}

// Test names for cases run with the CI device's limits and with small ones: "<case>[_small_caps]".
template <typename Case>
std::string case_and_caps_name(const ::testing::TestParamInfo<std::tuple<Case, bool>>& info) {
  return std::get<0>(info.param).name + (std::get<1>(info.param) ? "_small_caps" : "");
}

}  // namespace meganeura::kernel_tests
