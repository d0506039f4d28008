// E-graph core: e-nodes, union-find, hashcons and egg-style deferred rebuilding.
//
//   egraph::EGraph g;
//   OpId mul = g.op("*"), one = g.op("1"), x = g.op("x");
//   ClassId cx = g.add({x, 0, {}});
//   ClassId prod = g.add({mul, 0, {cx, g.add({one, 0, {}})}});
//   g.merge(prod, cx);   // x * 1 == x
//   g.rebuild();         // restore congruence closure before the next search
//
// The engine knows nothing about the client's language: operators are interned names, attributes are
// interned sets of numeric values compared by value, and an optional Analysis computes per-class facts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace meganeura::egraph {

using ClassId = uint32_t;
using OpId = uint32_t;
using AttrId = uint32_t;  // 0 is the empty attribute set

// One named attribute; scalars are one-element values.
struct Attribute {
  std::string key;
  std::vector<double> value;
  bool operator==(const Attribute&) const = default;
};
using AttrSet = std::vector<Attribute>;  // kept sorted by key once interned

struct ENode {
  OpId op = 0;
  AttrId attr = 0;
  std::vector<ClassId> children;
  bool operator==(const ENode&) const = default;
};

struct ENodeHash {
  size_t operator()(const ENode& n) const noexcept;
};

class EGraph;

// Per-class facts (shape, constant value, ...). The client keeps the data in its own table indexed
// by class id; the engine tells it when classes appear and merge.
class Analysis {
 public:
  virtual ~Analysis() = default;
  // Rewrites `node` into the client's canonical form before it is hashed (e.g. attribute defaults).
  virtual void canonicalize(EGraph& /*graph*/, ENode& /*node*/) {}
  // A class `fresh` was created holding only `node`: compute its data.
  virtual void make(const EGraph& graph, const ENode& node, ClassId fresh) = 0;
  // Class `from` was merged into `into`: fold its data in; return whether `into`'s data changed.
  virtual bool merge(ClassId into, ClassId from) = 0;
  // `node` (canonical) lives in class `cls` and a child's data changed: refine cls; return whether it changed.
  virtual bool refine(const EGraph& /*graph*/, const ENode& /*node*/, ClassId /*cls*/) { return false; }
  // Called after a class's data changed; may add nodes or merge (e.g. constant folding).
  virtual void modify(EGraph& /*graph*/, ClassId /*cls*/) {}
};

struct EClass {
  std::vector<ENode> nodes;                          // canonical after rebuild, sorted, unique
  std::vector<std::pair<ENode, ClassId>> parents;    // nodes that use this class, with their class
};

class EGraph {
 public:
  EGraph() = default;
  explicit EGraph(Analysis* analysis) : analysis_(analysis) {}
  EGraph(const EGraph&) = delete;
  EGraph& operator=(const EGraph&) = delete;

  // Interning of operator names and attribute sets.
  OpId op(std::string_view name);
  const std::string& op_name(OpId op) const { return op_names_[op]; }
  size_t num_ops() const { return op_names_.size(); }
  bool has_op(std::string_view name) const { return op_ids_.count(std::string(name)) != 0; }
  AttrId attrs(AttrSet set);
  const AttrSet& attrs_of(AttrId id) const { return attr_sets_[id]; }
  // The value of `key` in an attribute set, or nullptr.
  const std::vector<double>* attr_value(AttrId id, std::string_view key) const;

  // Adds a node (children are canonicalised first); returns its class.
  ClassId add(ENode node);
  // The class a node would join, if it is already present.
  bool lookup(ENode node, ClassId* out) const;
  // Declares two classes equal. Returns false when they already were. Call rebuild() afterwards.
  bool merge(ClassId a, ClassId b);
  // Restores the hashcons and congruence invariants after merges (egg's deferred rebuild).
  void rebuild();

  ClassId find(ClassId id) const;
  const EClass& eclass(ClassId id) const { return classes_[find(id)]; }
  // Ids of every canonical class, ascending.
  std::vector<ClassId> class_ids() const;
  size_t num_classes() const { return num_canonical_; }
  size_t num_nodes() const { return memo_.size(); }
  size_t id_bound() const { return classes_.size(); }  // every id is below this
  bool is_canonical(ClassId id) const { return find(id) == id; }
  Analysis* analysis() const { return analysis_; }

 private:
  ENode canonical(ENode node) const;
  ClassId find_mutable(ClassId id);

  Analysis* analysis_ = nullptr;
  std::vector<std::string> op_names_;
  std::unordered_map<std::string, OpId> op_ids_;
  std::vector<AttrSet> attr_sets_{AttrSet{}};
  std::unordered_map<std::string, AttrId> attr_ids_;

  mutable std::vector<ClassId> parent_;  // union-find; path-halving in find
  std::vector<EClass> classes_;
  std::unordered_map<ENode, ClassId, ENodeHash> memo_;
  std::vector<std::pair<ENode, ClassId>> pending_;
  std::vector<std::pair<ENode, ClassId>> analysis_pending_;
  size_t num_canonical_ = 0;
};

}  // namespace meganeura::egraph
