// meganeura/reference.h — the CPU reference interpreter: naive loops in double precision for every
// op of the table. The oracle GPU kernels, fusions and gradients are checked against.
//
//   meganeura::Graph g;
//   auto x = g.input("x", {2, 3});
//   auto y = g.softmax(x * 2.0);
//   g.set_outputs({y});
//   auto values = meganeura::reference::run(g, {{"x", {1, 2, 3, 4, 5, 6}}});
//   const std::vector<double>& probabilities = values[y.id];  // row-major, 6 values
//
// Every node's value is returned (indexed by node id), so tests can read any intermediate.
// Integer tensors (i32) hold whole numbers stored as doubles. Casts to f16/bf16/f32 round to that
// format's precision; all other arithmetic stays in double.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "meganeura/graph.h"

namespace meganeura::reference {

using Values = std::vector<std::vector<double>>;  // by node id, row-major
using Feeds = std::map<std::string, std::vector<double>>;

struct Options {
  bool training = true;  // false: dropout is the identity (as in inference sessions)
  uint64_t seed = 0;     // parameters not fed get initial_values(init, shape, parameter_seed(seed, name))
  // Nodes to compute; empty means every node. Otherwise only these and what they depend on are
  // evaluated (the other values stay empty), and inputs they do not need may go unfed — what
  // finite-difference loops want when they re-run only the forward pass.
  std::vector<int32_t> targets = {};
};

// Runs every node of the graph (or options.targets and their dependencies). Every needed input must be fed (Error otherwise); parameters may be fed,
// else they take their initial values. Feeding a name that is no input or parameter, or the wrong
// number of values, is an Error. Data errors (an id outside the embedding table, a label outside
// [0, C), a KV-cache write past the end) are Errors naming the op and the offending value.
Values run(const Graph& graph, const Feeds& feeds, const Options& options = {});

// The value of one non-leaf node from its inputs' values (in node.inputs order).
std::vector<double> evaluate(const Graph& graph, int32_t id, const std::vector<const std::vector<double>*>& inputs,
                             const Options& options = {});

// Rounds to the nearest value representable in `dtype` (ties to even); i32 truncates toward zero.
double round_to(DType dtype, double value);

}  // namespace meganeura::reference
