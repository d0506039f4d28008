// Patterns over an e-graph: parsing from s-expressions, e-matching and instantiation.
//
//   egraph::VarTable vars;
//   auto lhs = egraph::Pattern::parse(g, "(mul ?x (sigmoid ?x))", &vars);
//   auto rhs = egraph::Pattern::parse(g, "(silu ?x)", &vars);
//   egraph::OpIndex index;
//   index.build(g);
//   std::vector<egraph::Match> matches;
//   lhs.search(g, index, vars.size(), &matches);
//   for (const egraph::Match& m : matches) g.merge(m.root, rhs.instantiate(g, m.subst));
//
// Syntax: `?name` is a variable (a repeated variable must match one class); any other atom is a
// nullary operator; `(op child...)` an operator application. Attributes follow the operator name in
// brackets: `(sum[axis=-1,keepdim=1] ?x)` requires those values (other attributes are free),
// `(const[value=?c])` binds a value variable, `(sum[?a] ?x)` binds the whole attribute set, and
// `(sum[?a,keepdim=0] ?x)` on the right-hand side copies a set and overrides one key.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "optimize/egraph/egraph.h"

namespace meganeura::egraph {

// A parsed s-expression: an atom or a list.
struct SExpr {
  std::string atom;  // empty for lists
  std::vector<SExpr> list;
  bool is_list() const { return atom.empty(); }
  std::string to_string() const;
};
// Parses every top-level expression; `;` starts a comment to end of line.
std::vector<SExpr> parse_sexprs(std::string_view text);

enum class VarKind : uint8_t { kClass, kValue, kAttrSet };

// Variable names shared by a rule's left side, right side and guards.
class VarTable {
 public:
  int find(std::string_view name) const;
  int intern(std::string_view name, VarKind kind);  // throws when one name is used with two kinds
  size_t size() const { return names_.size(); }
  const std::string& name(int slot) const { return names_[slot]; }
  VarKind kind(int slot) const { return kinds_[slot]; }

 private:
  std::vector<std::string> names_;
  std::vector<VarKind> kinds_;
};

// A substitution: one slot per variable. Class slots hold a ClassId; value slots an attribute set id
// and entry index; attribute-set slots an AttrId.
struct Subst {
  static constexpr uint64_t kUnbound = ~uint64_t(0);
  std::vector<uint64_t> slots;
  ClassId cls(int slot) const { return ClassId(slots[slot]); }
  bool bound(int slot) const { return slots[slot] != kUnbound; }
};
// The value bound to a value variable.
const std::vector<double>& bound_value(const EGraph& g, const Subst& s, int slot);

struct AttrSpec {
  std::string key;
  int var = -1;                 // value variable, or -1 for a literal
  std::vector<double> literal;
};

struct PatternNode {
  int var = -1;  // >= 0: a class variable; otherwise an operator
  OpId op = 0;
  int attr_set_var = -1;
  std::vector<AttrSpec> attrs;
  std::vector<PatternNode> children;
};

// Classes holding at least one node of each operator; rebuilt once per search round.
class OpIndex {
 public:
  void build(const EGraph& g);
  std::span<const ClassId> classes_with(OpId op) const;

 private:
  std::vector<std::vector<ClassId>> by_op_;
};

struct Match {
  ClassId root;
  Subst subst;
};

class Pattern {
 public:
  // Parses `text` (or an already parsed expression), interning names into `vars`.
  static Pattern parse(EGraph& g, std::string_view text, VarTable* vars);
  static Pattern parse(EGraph& g, const SExpr& expr, VarTable* vars);

  const PatternNode& root() const { return root_; }
  // Every match rooted anywhere in the graph (only classes that hold the root operator are tried).
  void search(const EGraph& g, const OpIndex& index, size_t num_vars, std::vector<Match>* out,
              size_t limit = ~size_t(0)) const;
  // Matches rooted at one class, extending `start`.
  void match_class(const EGraph& g, ClassId cls, const Subst& start, std::vector<Subst>* out) const;
  // Adds the pattern's nodes under `subst`; returns the root class.
  ClassId instantiate(EGraph& g, const Subst& subst) const;
  std::string to_string(const EGraph& g) const;

 private:
  PatternNode root_;
  std::vector<std::string> var_names_;
};

}  // namespace meganeura::egraph
