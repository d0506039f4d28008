#include "optimize/egraph/runner.h"

#include <algorithm>
#include <chrono>

namespace meganeura::egraph {

const char* to_string(StopReason reason) {
  switch (reason) {
    case StopReason::kSaturated: return "saturated";
    case StopReason::kIterationLimit: return "iteration limit";
    case StopReason::kNodeLimit: return "node limit";
    case StopReason::kTimeLimit: return "time limit";
  }
  return "?";
}

namespace {

struct Backoff {
  size_t times_banned = 0;
  size_t banned_until = 0;
};

}  // namespace

RunReport run(EGraph& g, std::span<const Rule> rules, const RunnerLimits& limits) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };

  RunReport report;
  for (const Rule& r : rules) report.rules.push_back({r.name});
  std::vector<Backoff> backoff(rules.size());
  std::vector<std::vector<Match>> matches(rules.size());
  OpIndex index;
  g.rebuild();

  for (size_t iteration = 0;; ++iteration) {
    if (iteration >= limits.max_iterations) {
      report.stop = StopReason::kIterationLimit;
      break;
    }
    if (elapsed() > limits.max_seconds) {
      report.stop = StopReason::kTimeLimit;
      break;
    }
    report.iterations = iteration + 1;
    index.build(g);
    bool out_of_time = false;
    for (size_t i = 0; i < rules.size(); ++i) {
      matches[i].clear();
      if (limits.backoff && iteration < backoff[i].banned_until) continue;
      size_t threshold = limits.backoff ? limits.match_limit << backoff[i].times_banned : ~size_t(0) - 1;
      rules[i].lhs.search(g, index, rules[i].vars.size(), &matches[i], threshold);
      if (limits.backoff && matches[i].size() > threshold) {
        backoff[i].banned_until = iteration + (limits.ban_length << backoff[i].times_banned);
        ++backoff[i].times_banned;
        ++report.rules[i].times_banned;
        matches[i].clear();
      }
      if (elapsed() > limits.max_seconds) {
        out_of_time = true;
        break;
      }
    }
    size_t changes = 0;
    for (size_t i = 0; i < rules.size() && !out_of_time; ++i) {
      const Rule& rule = rules[i];
      for (const Match& m : matches[i]) {
        if (!rule.guards_hold(g, g.find(m.root), m.subst)) continue;
        ++report.rules[i].matches;
        size_t nodes_before = g.num_nodes();
        bool changed = false;
        if (rule.apply) {
          if (auto cls = rule.apply(g, m)) changed = g.merge(m.root, *cls);
        } else {
          changed = g.merge(m.root, rule.rhs->instantiate(g, m.subst));
        }
        if (changed || g.num_nodes() != nodes_before) {
          ++report.rules[i].applied;
          ++changes;
        }
      }
      if (g.num_nodes() > limits.max_nodes) break;
    }
    g.rebuild();
    if (out_of_time || elapsed() > limits.max_seconds) {
      report.stop = StopReason::kTimeLimit;
      break;
    }
    if (g.num_nodes() > limits.max_nodes) {
      report.stop = StopReason::kNodeLimit;
      break;
    }
    if (changes == 0) {
      // Saturated unless a rule sat out this iteration: lift the earliest ban and look again.
      size_t min_ban = ~size_t(0);
      for (const Backoff& b : backoff) {
        if (b.banned_until > iteration) min_ban = std::min(min_ban, b.banned_until);
      }
      if (min_ban == ~size_t(0)) {
        report.stop = StopReason::kSaturated;
        break;
      }
      size_t delta = min_ban - (iteration + 1);
      for (Backoff& b : backoff) {
        if (b.banned_until > iteration) b.banned_until -= delta;
      }
    }
  }
  report.nodes = g.num_nodes();
  report.classes = g.num_classes();
  report.seconds = elapsed();
  return report;
}

}  // namespace meganeura::egraph
