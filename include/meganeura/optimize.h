// meganeura/optimize.h — find kernel fusions by equality saturation on an e-graph.
//
//   meganeura::Graph g = ...;                       // primitive ops, as nn layers emit them
//   meganeura::OptimizeResult r = meganeura::optimize(g);
//   std::cout << r.report.to_string();              // "... rms_norm ×61, swiglu ×30 ..."
//   run(r.graph);                                   // same outputs, fewer and cheaper kernels
//
// The rewrite rules live in one s-expression file embedded in the library (src/optimize/rules.txt):
// algebraic clean-up, matmul + bias → linear, transposes folded into matmul flags, products that
// share their left operand merged into one over stacked weights (q/k/v, gate/up), and the
// decompositions of silu, swiglu, rms_norm, layer_norm, softmax, log_softmax and gelu_tanh. The
// cheapest equivalent graph is extracted with a GPU cost model (bytes moved plus a fixed cost per
// dispatch, plus FLOPs for matrix products). Inputs, parameters (with their names, init and
// order), constants and named outputs are preserved; the same graph in gives the same graph out.
// With MEGANEURA_LOG containing "optimize" the report is printed to stderr.
//
// Scale: the e-graph hash-conses the whole graph, so repeated blocks share every identical
// subexpression, and the rules keep e-class growth bounded (commutativity only, no associativity;
// a back-off scheduler bans any rule that explodes), so each block is matched once per iteration
// and the SmolLM2-135M training graph saturates in a few iterations (bench_optimize). Grouping
// chains of elementwise ops and matmul epilogues into kernels is left to compile(), which fuses
// them without new ops.
#pragma once

#include <cstddef>
#include <map>
#include <string>

#include "meganeura/graph.h"

namespace meganeura {

struct OptimizeOptions {
  size_t max_iterations = 12;
  size_t max_enodes = 500000;
  double max_seconds = 10.0;
  std::string extra_rules;  // more rules in the rules-file syntax, applied with the built-in ones
  // For an inference session: what depends only on parameters and constants (two weights stacked
  // for one wider matmul) is computed when the parameters change, not per step, so costs nothing.
  bool inference = false;
};

struct OptimizeReport {
  size_t nodes_before = 0;
  size_t nodes_after = 0;
  std::map<std::string, size_t> fusions;  // fused op name → how many more the result has
  size_t dispatches_before = 0;           // estimated kernels (views and leaves are free)
  size_t dispatches_after = 0;
  double bytes_before = 0;                // estimated bytes read + written by those kernels
  double bytes_after = 0;
  size_t enodes = 0;                      // e-graph size when saturation stopped
  size_t eclasses = 0;
  size_t iterations = 0;
  std::string stop_reason;                // "saturated", "iteration limit", "node limit", "time limit"
  double milliseconds = 0;                // whole optimize() call
  std::map<std::string, size_t> rules_applied;  // rule name → rewrites that changed the e-graph

  size_t fused(const std::string& op) const {
    auto it = fusions.find(op);
    return it == fusions.end() ? 0 : it->second;
  }
  std::string to_string() const;  // multi-line, human readable
};

struct OptimizeResult {
  Graph graph;
  OptimizeReport report;
};

// Throws meganeura::Error when the graph has no outputs or a rule is malformed.
OptimizeResult optimize(const Graph& graph, const OptimizeOptions& options = {});

}  // namespace meganeura
