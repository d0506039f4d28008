#include "optimize/egraph/rule.h"

#include <cmath>
#include <cstdlib>

#include "meganeura/error.h"

namespace meganeura::egraph {

const Guard* GuardRegistry::find(std::string_view name) const {
  auto it = guards_.find(name);
  return it == guards_.end() ? nullptr : &it->second;
}

bool Rule::guards_hold(const EGraph& g, ClassId root, const Subst& s) const {
  for (const GuardCall& call : guards) {
    if (!call.fn(g, root, s, call.args)) return false;
  }
  return true;
}

namespace {

GuardCall parse_guard(const SExpr& e, const Rule& rule, const GuardRegistry& registry) {
  const std::string where = "rule '" + rule.name + "'";
  if (!e.is_list() || e.list.empty() || e.list[0].is_list()) {
    throw Error(where + ": guard '" + e.to_string() + "' must look like (guard-name arg...)");
  }
  GuardCall call;
  call.name = e.list[0].atom;
  const Guard* fn = registry.find(call.name);
  if (!fn) throw Error(where + ": unknown guard '" + call.name + "'; register it before parsing the rules");
  call.fn = *fn;
  for (size_t i = 1; i < e.list.size(); ++i) {
    const SExpr& a = e.list[i];
    if (a.is_list()) throw Error(where + ": guard argument '" + a.to_string() + "' must be an atom");
    GuardArg arg;
    arg.symbol = a.atom;
    if (a.atom[0] == '?') {
      arg.var = rule.vars.find(a.atom);
      if (arg.var < 0) {
        throw Error(where + ": guard '" + call.name + "' uses " + a.atom + ", which the left side does not bind");
      }
    } else {
      char* end = nullptr;
      double v = std::strtod(a.atom.c_str(), &end);
      if (end == a.atom.c_str() + a.atom.size()) arg.number = v;
    }
    call.args.push_back(std::move(arg));
  }
  return call;
}

}  // namespace

std::vector<Rule> parse_rules(EGraph& g, std::string_view text, const GuardRegistry& guards) {
  std::vector<Rule> rules;
  for (const SExpr& e : parse_sexprs(text)) {
    if (!e.is_list() || e.list.size() < 3 || e.list[0].atom != "rewrite") {
      throw Error("rules: '" + e.to_string().substr(0, 80) + "' is not of the form (rewrite LHS RHS ...)");
    }
    Rule rule;
    rule.name = "rule" + std::to_string(rules.size() + 1);
    // Find the name first so errors in the patterns can cite it.
    for (size_t i = 3; i + 1 < e.list.size(); ++i) {
      if (e.list[i].atom == ":name") rule.name = e.list[i + 1].atom;
    }
    rule.lhs = Pattern::parse(g, e.list[1], &rule.vars);
    if (rule.lhs.root().var >= 0) throw Error("rule '" + rule.name + "': the left side must not be a bare variable");
    size_t lhs_vars = rule.vars.size();
    rule.rhs = Pattern::parse(g, e.list[2], &rule.vars);
    if (rule.vars.size() != lhs_vars) {
      throw Error("rule '" + rule.name + "': the right side uses " + rule.vars.name(int(lhs_vars)) +
                  ", which the left side does not bind");
    }
    bool in_guards = false;
    for (size_t i = 3; i < e.list.size(); ++i) {
      const SExpr& item = e.list[i];
      if (item.atom == ":if") {
        in_guards = true;
      } else if (item.atom == ":name") {
        ++i;
        in_guards = false;
      } else if (in_guards) {
        rule.guards.push_back(parse_guard(item, rule, guards));
      } else {
        throw Error("rule '" + rule.name + "': unexpected '" + item.to_string() + "'; expected :if or :name");
      }
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

}  // namespace meganeura::egraph
