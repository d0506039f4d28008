// optimize(): Graph → e-graph → saturate with the embedded rules → extract by GPU cost → Graph.
#include "meganeura/optimize.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "meganeura/trace.h"
#include "optimize/cost_model.h"
#include "optimize/egraph/runner.h"
#include "optimize/nn_egraph.h"

extern const char optimize_rules_text[];

namespace meganeura {

namespace {

// Ops the rules produce from decompositions; the report counts how many more of each come out.
constexpr Op kFusedOps[] = {Op::linear,  Op::silu,        Op::swiglu,    Op::rms_norm,  Op::layer_norm,
                            Op::softmax, Op::log_softmax, Op::gelu_tanh, Op::attention};

std::map<Op, size_t> count_ops(const Graph& g) {
  std::map<Op, size_t> counts;
  for (const Node& n : g.nodes()) ++counts[n.op];
  return counts;
}

bool log_enabled() {
  const char* env = std::getenv("MEGANEURA_LOG");
  return env && std::strstr(env, "optimize") != nullptr;
}

std::string format_bytes(double b) {
  char text[32];
  if (b >= 1e9) std::snprintf(text, sizeof text, "%.2f GB", b / 1e9);
  else if (b >= 1e6) std::snprintf(text, sizeof text, "%.2f MB", b / 1e6);
  else std::snprintf(text, sizeof text, "%.1f kB", b / 1e3);
  return text;
}

}  // namespace

std::string OptimizeReport::to_string() const {
  std::string s = "optimize: " + std::to_string(nodes_before) + " -> " + std::to_string(nodes_after) + " nodes";
  char text[160];
  std::snprintf(text, sizeof text, " in %.1f ms (%zu iterations, %s, %zu e-nodes, %zu e-classes)\n", milliseconds,
                iterations, stop_reason.c_str(), enodes, eclasses);
  s += text;
  s += "  fusions:";
  bool any = false;
  for (const auto& [op, n] : fusions) {
    if (n == 0) continue;
    s += (any ? ", " : " ") + op + " x" + std::to_string(n);
    any = true;
  }
  s += any ? "\n" : " none\n";
  s += "  dispatches: " + std::to_string(dispatches_before) + " -> " + std::to_string(dispatches_after) + "\n";
  s += "  bytes moved: " + format_bytes(bytes_before) + " -> " + format_bytes(bytes_after) + "\n";
  s += "  rules applied:";
  any = false;
  for (const auto& [rule, n] : rules_applied) {
    if (n == 0) continue;
    s += (any ? ", " : " ") + rule + " " + std::to_string(n);
    any = true;
  }
  s += any ? "\n" : " none\n";
  return s;
}

OptimizeResult optimize(const Graph& graph, const OptimizeOptions& options) {
  trace::Scope trace_scope("optimize", std::to_string(graph.size()) + " nodes");
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  if (!graph.has_outputs()) throw Error("optimize: the graph has no outputs; call Graph::set_outputs first");

  optimizer::NnEGraph eg(graph);
  egraph::GuardRegistry guards;
  eg.register_guards(&guards);
  std::vector<egraph::Rule> rules = egraph::parse_rules(eg.egraph(), optimize_rules_text, guards);
  for (egraph::Rule& r : eg.computed_rules()) rules.push_back(std::move(r));
  if (!options.extra_rules.empty()) {
    for (egraph::Rule& r : egraph::parse_rules(eg.egraph(), options.extra_rules, guards)) rules.push_back(std::move(r));
  }
  eg.check_ops_known();

  egraph::RunnerLimits limits;
  limits.max_iterations = options.max_iterations;
  limits.max_nodes = options.max_enodes;
  limits.max_seconds = options.max_seconds;
  egraph::RunReport run = [&] {
    trace::Scope saturate("saturate", std::to_string(rules.size()) + " rules");
    return egraph::run(eg.egraph(), rules, limits);
  }();

  trace::Scope extract_scope("extract");
  optimizer::NnCostModel cost(eg, {}, options.inference);
  egraph::Extraction best = egraph::extract(eg.egraph(), cost, eg.roots());
  OptimizeResult result{eg.to_graph(egraph::build_term(eg.egraph(), best, eg.roots())), {}};

  OptimizeReport& r = result.report;
  r.nodes_before = graph.size();
  r.nodes_after = result.graph.size();
  auto before = count_ops(graph), after = count_ops(result.graph);
  for (Op op : kFusedOps) {
    size_t b = before[op], a = after[op];
    r.fusions[op_name(op)] = a > b ? a - b : 0;
  }
  optimizer::GraphEstimate eb = optimizer::estimate_graph(graph, {}, options.inference);
  optimizer::GraphEstimate ea = optimizer::estimate_graph(result.graph, {}, options.inference);
  r.dispatches_before = eb.dispatches;
  r.dispatches_after = ea.dispatches;
  r.bytes_before = eb.bytes;
  r.bytes_after = ea.bytes;
  r.enodes = run.nodes;
  r.eclasses = run.classes;
  r.iterations = run.iterations;
  r.stop_reason = egraph::to_string(run.stop);
  for (const egraph::RuleStats& s : run.rules) r.rules_applied[s.name] += s.applied;
  r.milliseconds = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (log_enabled()) std::fprintf(stderr, "%s", r.to_string().c_str());
  return result;
}

}  // namespace meganeura
