// The neural-network language on top of the generic e-graph: a Graph goes in as e-nodes (one
// operator per Op, attributes by value, every input/parameter/constant kept as its own leaf), an
// analysis gives each class its shape, dtype and constant value, guards let rules test them, and an
// extracted term comes back out as a Graph.
//
//   NnEGraph eg(graph);
//   egraph::GuardRegistry guards;
//   eg.register_guards(&guards);
//   auto rules = egraph::parse_rules(eg.egraph(), rules_text, guards);
//   egraph::run(eg.egraph(), rules, limits);
//   Graph out = eg.to_graph(egraph::build_term(eg.egraph(), extraction, eg.roots()));
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "meganeura/graph.h"
#include "optimize/egraph/extract.h"
#include "optimize/egraph/rule.h"

namespace meganeura::optimizer {

struct ClassInfo {
  TensorType type;
  std::optional<double> constant;  // every element has this value
  bool valid = true;               // false when shape inference rejected the class's first node
};

class NnEGraph : private egraph::Analysis {
 public:
  explicit NnEGraph(const Graph& graph);

  egraph::EGraph& egraph() { return egraph_; }
  const egraph::EGraph& egraph() const { return egraph_; }
  const ClassInfo& info(egraph::ClassId cls) const { return info_[egraph_.find(cls)]; }
  // The classes of the graph's outputs, in output order.
  const std::vector<egraph::ClassId>& roots() const { return roots_; }

  Op op_of(const egraph::ENode& node) const { return static_cast<Op>(node.op); }
  Attrs attrs_of(const egraph::ENode& node) const;
  // The original leaf node an e-node stands for, or -1.
  int32_t leaf_of(const egraph::ENode& node) const;
  // Whether source node `leaf` is a parameter, a constant or a named scalar (values fixed per step).
  bool is_weight_leaf_node(int32_t leaf) const;
  // The type `node` computes from its children's classes; nullopt when shape inference rejects it.
  std::optional<TensorType> node_type(const egraph::ENode& node) const;

  // Adds a node built from graph terms (attributes encoded canonically); returns its class.
  egraph::ClassId add(Op op, const Attrs& attrs, std::vector<egraph::ClassId> children);
  // Rewrites whose right side is computed from shapes (reshapes that flatten batch dims), which the
  // rules file cannot spell: batched weight gradients summed over the batch become one matmul over
  // the flattened batch, two leading-axis sums become one, and products sharing their left operand
  // become one product over the stacked weights plus a slice each.
  std::vector<egraph::Rule> computed_rules();

  // Guards the rules file may use: same-shape, is-const, last-axis, vector-over-last, rank,
  // swaps-last-two, inverse-perms, bias-for, root-same-shape, is-float.
  void register_guards(egraph::GuardRegistry* guards) const;
  // Throws when a rule names an operator that is not in the ops table.
  void check_ops_known() const;

  Graph to_graph(const egraph::Term& term) const;

 private:
  egraph::AttrId encode(Op op, const Attrs& attrs);
  // Whether the class holds a parameter or constant leaf; the leaf's source node id (or -1).
  bool is_weight_leaf(egraph::ClassId cls) const;
  int32_t leaf_index(egraph::ClassId cls) const;
  // matmul (or linear, with bias) products sharing their left operand → one wider product + slices.
  egraph::Rule shared_operand_rule(bool with_bias);
  Attrs decode(egraph::AttrId id) const;

  void canonicalize(egraph::EGraph& graph, egraph::ENode& node) override;
  void make(const egraph::EGraph& graph, const egraph::ENode& node, egraph::ClassId fresh) override;
  bool merge(egraph::ClassId into, egraph::ClassId from) override;
  bool refine(const egraph::EGraph& graph, const egraph::ENode& node, egraph::ClassId cls) override;
  ClassInfo compute(const egraph::ENode& node) const;
  std::optional<double> fold(Op op, const Attrs& attrs, const std::vector<egraph::ClassId>& children) const;
  void modify(egraph::EGraph& graph, egraph::ClassId cls) override;

  const Graph& source_;
  egraph::EGraph egraph_;
  std::vector<ClassInfo> info_;
  std::vector<egraph::ClassId> roots_;
  std::vector<std::string> labels_;
  std::unordered_map<uint64_t, egraph::AttrId> canonical_attr_;
};

}  // namespace meganeura::optimizer
