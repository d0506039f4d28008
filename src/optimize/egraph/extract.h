// Extraction: choose one node per e-class so the expression reachable from the roots is cheapest.
//
//   struct Size : egraph::CostModel {
//     double node_cost(const EGraph&, ClassId, const ENode&) const override { return 1; }
//   };
//   egraph::Extraction best = egraph::extract(g, Size{}, roots);
//   egraph::Term term = egraph::build_term(g, best, roots);  // nodes in dependency order
//
// The search is a bottom-up fixed point on tree cost (a node's cost plus its distinct children's),
// refined DAG-aware: a class the chosen expression already computes is free for other users to share,
// and each candidate is scored by its true DAG cost (every chosen class counted once).
#pragma once

#include <span>
#include <vector>

#include "optimize/egraph/egraph.h"

namespace meganeura::egraph {

class CostModel {
 public:
  virtual ~CostModel() = default;
  // The cost of evaluating `node` alone (children already computed); must be positive.
  virtual double node_cost(const EGraph& g, ClassId cls, const ENode& node) const = 0;
};

struct Extraction {
  std::vector<int32_t> choice;  // per class id: index into the class's nodes, -1 when unreachable
  double dag_cost = 0;          // every class reachable from the roots counted once
};

Extraction extract(const EGraph& g, const CostModel& cost, std::span<const ClassId> roots);

// The chosen expression as a DAG: `nodes[i].children` index into `nodes`, children first.
struct Term {
  std::vector<ENode> nodes;
  std::vector<ClassId> classes;  // the e-class each node came from
  std::vector<uint32_t> roots;   // one per requested root
};
Term build_term(const EGraph& g, const Extraction& extraction, std::span<const ClassId> roots);

}  // namespace meganeura::egraph
