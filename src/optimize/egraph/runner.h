// Equality saturation: search every rule, apply the matches, rebuild, repeat until nothing changes or
// a limit is hit. A back-off scheduler (as in egg) bans a rule that matches too often for a growing
// number of iterations, so one exploding rule (associativity, commutativity) cannot starve the rest.
//
//   egraph::RunnerLimits limits;
//   limits.max_nodes = 50000;
//   egraph::RunReport report = egraph::run(g, rules, limits);
//   if (report.stop == egraph::StopReason::kNodeLimit) { ... }
#pragma once

#include <span>
#include <string>
#include <vector>

#include "optimize/egraph/rule.h"

namespace meganeura::egraph {

struct RunnerLimits {
  size_t max_iterations = 30;
  size_t max_nodes = 200000;
  double max_seconds = 5.0;
  bool backoff = true;
  size_t match_limit = 1000;  // matches per iteration before a rule is banned (doubles per ban)
  size_t ban_length = 5;      // iterations of the first ban (doubles per ban)
};

enum class StopReason { kSaturated, kIterationLimit, kNodeLimit, kTimeLimit };
const char* to_string(StopReason reason);

struct RuleStats {
  std::string name;
  size_t matches = 0;  // matches that passed the guards
  size_t applied = 0;  // matches that changed the graph
  size_t times_banned = 0;
};

struct RunReport {
  StopReason stop = StopReason::kSaturated;
  size_t iterations = 0;
  size_t nodes = 0;
  size_t classes = 0;
  double seconds = 0;
  std::vector<RuleStats> rules;
};

RunReport run(EGraph& g, std::span<const Rule> rules, const RunnerLimits& limits);

}  // namespace meganeura::egraph
