// Rewrite rules parsed from s-expression text, with named guards supplied by the client.
//
//   egraph::GuardRegistry guards;
//   guards.add("is-const", [](const EGraph& g, ClassId root, const Subst& s, std::span<const GuardArg> a) {...});
//   auto rules = egraph::parse_rules(g, R"(
//       (rewrite (* ?x 1) ?x :name mul-one)
//       (rewrite (* ?x ?c) ?x :if (is-const ?c 1.0) :name mul-const-one))", guards);
//
// Form: `(rewrite LHS RHS [:if GUARD...] [:name NAME])`; a guard is `(name arg...)` where an argument
// is a variable bound by LHS, a number or a bare symbol. Every guard must hold for a match to apply.
#pragma once

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "optimize/egraph/pattern.h"

namespace meganeura::egraph {

struct GuardArg {
  int var = -1;  // a variable slot, or -1
  double number = std::numeric_limits<double>::quiet_NaN();
  std::string symbol;  // the argument as written
  bool is_number() const { return var < 0 && !std::isnan(number); }
};

// A guard sees the class the left side matched (`root`) and the variables it bound.
using Guard = std::function<bool(const EGraph&, ClassId root, const Subst&, std::span<const GuardArg>)>;

class GuardRegistry {
 public:
  void add(std::string name, Guard guard) { guards_[std::move(name)] = std::move(guard); }
  const Guard* find(std::string_view name) const;

 private:
  std::map<std::string, Guard, std::less<>> guards_;
};

struct GuardCall {
  std::string name;
  Guard fn;
  std::vector<GuardArg> args;
};

struct Rule {
  std::string name;
  VarTable vars;
  Pattern lhs;
  std::optional<Pattern> rhs;
  std::vector<GuardCall> guards;
  // Instead of `rhs`, a client may compute the equivalent class itself (nullopt: nothing to add).
  std::function<std::optional<ClassId>(EGraph&, const Match&)> apply;

  bool guards_hold(const EGraph& g, ClassId root, const Subst& s) const;
};

std::vector<Rule> parse_rules(EGraph& g, std::string_view text, const GuardRegistry& guards);

}  // namespace meganeura::egraph
