// Extraction: choose one node per e-class so the expression reachable from the roots is cheapest.
//
//   struct Size : egraph::CostModel {
//     double node_cost(const EGraph&, ClassId, const ENode&) const override { return 1; }
//   };
//   egraph::Extraction best = egraph::extract(g, Size{}, roots);
//   egraph::Term term = egraph::build_term(g, best, roots);  // nodes in dependency order
//
// Classes are visited once, children first, in an order that makes every choice acyclic. A node's
// cost is its own plus each child's cost shared among that child's users, so shared
// subexpressions are not counted once per path (plain tree cost grows exponentially along a
// residual stream). Then a DAG-aware refinement: what the chosen expression already computes is
// free for other users to share, and each refined choice is kept only if its true DAG cost (every
// chosen class counted once) drops. Last, nodes the placement order ruled out because one child is
// placed later (classes proved equal to slices of one product computed from a wider operand) are
// tried together per such child, kept when the DAG cost drops and no cycle forms.
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
