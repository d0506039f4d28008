#include "optimize/egraph/pattern.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "meganeura/error.h"

namespace meganeura::egraph {

std::string SExpr::to_string() const {
  if (!is_list()) return atom;
  std::string s = "(";
  for (size_t i = 0; i < list.size(); ++i) {
    if (i) s += ' ';
    s += list[i].to_string();
  }
  return s + ")";
}

namespace {

struct Reader {
  std::string_view text;
  size_t pos = 0;
  int line = 1;

  void skip_space() {
    while (pos < text.size()) {
      char c = text[pos];
      if (c == ';') {
        while (pos < text.size() && text[pos] != '\n') ++pos;
      } else if (std::isspace(static_cast<unsigned char>(c))) {
        if (c == '\n') ++line;
        ++pos;
      } else {
        break;
      }
    }
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error("s-expression line " + std::to_string(line) + ": " + what);
  }

  SExpr read() {
    skip_space();
    if (pos >= text.size()) fail("unexpected end of text; a ')' is missing");
    SExpr e;
    if (text[pos] == '(') {
      ++pos;
      for (;;) {
        skip_space();
        if (pos >= text.size()) fail("unexpected end of text; a ')' is missing");
        if (text[pos] == ')') {
          ++pos;
          return e;
        }
        e.list.push_back(read());
      }
    }
    if (text[pos] == ')') fail("unbalanced ')'");
    // An atom; brackets may hold spaces, e.g. `sum[axis=-1, keepdim=1]`.
    int depth = 0;
    while (pos < text.size()) {
      char c = text[pos];
      if (c == '[') ++depth;
      if (c == ']') --depth;
      if (depth == 0 && (std::isspace(static_cast<unsigned char>(c)) || c == '(' || c == ')' || c == ';')) break;
      if (depth == 0 || !std::isspace(static_cast<unsigned char>(c))) e.atom.push_back(c);
      ++pos;
    }
    if (depth != 0) fail("unbalanced '[' in '" + e.atom + "'");
    return e;
  }
};

double parse_number(std::string_view s, std::string_view context) {
  std::string str(s);
  char* end = nullptr;
  double v = std::strtod(str.c_str(), &end);
  if (str.empty() || end != str.c_str() + str.size()) {
    throw Error("pattern '" + std::string(context) + "': attribute value '" + str +
                "' is not a number (use digits, or ':' between vector elements)");
  }
  return v;
}

bool is_var(std::string_view s) { return s.size() > 1 && s[0] == '?'; }

}  // namespace

std::vector<SExpr> parse_sexprs(std::string_view text) {
  Reader r{text};
  std::vector<SExpr> out;
  for (;;) {
    r.skip_space();
    if (r.pos >= text.size()) return out;
    out.push_back(r.read());
  }
}

int VarTable::find(std::string_view name) const {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == name) return int(i);
  }
  return -1;
}

int VarTable::intern(std::string_view name, VarKind kind) {
  int slot = find(name);
  if (slot >= 0) {
    if (kinds_[slot] != kind) {
      throw Error("pattern variable '" + std::string(name) +
                  "' is used both as an e-class and as an attribute; rename one of them");
    }
    return slot;
  }
  names_.emplace_back(name);
  kinds_.push_back(kind);
  return int(names_.size() - 1);
}

const std::vector<double>& bound_value(const EGraph& g, const Subst& s, int slot) {
  uint64_t v = s.slots[slot];
  return g.attrs_of(AttrId(v >> 32))[size_t(v & 0xffffffffu)].value;
}

void OpIndex::build(const EGraph& g) {
  for (auto& v : by_op_) v.clear();
  for (ClassId id : g.class_ids()) {
    OpId last = ~OpId(0);
    for (const ENode& n : g.eclass(id).nodes) {  // nodes are sorted by op after rebuild
      if (n.op == last) continue;
      last = n.op;
      if (n.op >= by_op_.size()) by_op_.resize(n.op + 1);
      by_op_[n.op].push_back(id);
    }
  }
}

std::span<const ClassId> OpIndex::classes_with(OpId op) const {
  if (op >= by_op_.size()) return {};
  return by_op_[op];
}

namespace {

PatternNode parse_node(EGraph& g, const SExpr& e, VarTable* vars, std::string_view context) {
  PatternNode p;
  std::string head;
  if (!e.is_list()) {
    if (is_var(e.atom)) {
      p.var = vars->intern(e.atom, VarKind::kClass);
      return p;
    }
    head = e.atom;
  } else {
    if (e.list.empty() || e.list[0].is_list() || is_var(e.list[0].atom)) {
      throw Error("pattern '" + std::string(context) + "': '" + e.to_string() +
                  "' must start with an operator name");
    }
    head = e.list[0].atom;
  }
  size_t bracket = head.find('[');
  std::string name = head.substr(0, bracket);
  if (name.empty()) throw Error("pattern '" + std::string(context) + "': empty operator name");
  p.op = g.op(name);
  if (bracket != std::string::npos) {
    if (head.back() != ']') throw Error("pattern '" + std::string(context) + "': '" + head + "' lacks ']'");
    std::string_view body(head);
    body = body.substr(bracket + 1, body.size() - bracket - 2);
    while (!body.empty()) {
      size_t comma = body.find(',');
      std::string_view item = body.substr(0, comma);
      body = comma == std::string_view::npos ? std::string_view() : body.substr(comma + 1);
      if (item.empty()) continue;
      size_t eq = item.find('=');
      if (eq == std::string_view::npos) {
        if (!is_var(item)) {
          throw Error("pattern '" + std::string(context) + "': attribute '" + std::string(item) +
                      "' needs the form key=value, key=?var or ?set");
        }
        p.attr_set_var = vars->intern(item, VarKind::kAttrSet);
        continue;
      }
      AttrSpec spec;
      spec.key = std::string(item.substr(0, eq));
      std::string_view value = item.substr(eq + 1);
      if (is_var(value)) {
        spec.var = vars->intern(value, VarKind::kValue);
      } else {
        while (!value.empty()) {
          size_t colon = value.find(':');
          spec.literal.push_back(parse_number(value.substr(0, colon), context));
          value = colon == std::string_view::npos ? std::string_view() : value.substr(colon + 1);
        }
      }
      p.attrs.push_back(std::move(spec));
    }
  }
  if (e.is_list()) {
    for (size_t i = 1; i < e.list.size(); ++i) p.children.push_back(parse_node(g, e.list[i], vars, context));
  }
  return p;
}

// Checks the attribute constraints of `p` against a node's set, binding value variables in `s`.
bool match_attrs(const EGraph& g, const PatternNode& p, AttrId attr, Subst& s) {
  if (p.attr_set_var >= 0) {
    if (s.bound(p.attr_set_var)) {
      if (s.slots[p.attr_set_var] != attr) return false;
    } else {
      s.slots[p.attr_set_var] = attr;
    }
  }
  if (p.attrs.empty()) return true;
  const AttrSet& set = g.attrs_of(attr);
  for (const AttrSpec& spec : p.attrs) {
    size_t i = 0;
    while (i < set.size() && set[i].key != spec.key) ++i;
    if (i == set.size()) return false;
    if (spec.var < 0) {
      if (set[i].value != spec.literal) return false;
    } else if (s.bound(spec.var)) {
      if (bound_value(g, s, spec.var) != set[i].value) return false;
    } else {
      s.slots[spec.var] = uint64_t(attr) << 32 | i;
    }
  }
  return true;
}

void match_node(const EGraph& g, const PatternNode& p, ClassId cls, Subst s, std::vector<Subst>* out) {
  cls = g.find(cls);
  if (p.var >= 0) {
    if (s.bound(p.var)) {
      if (g.find(s.cls(p.var)) == cls) out->push_back(std::move(s));
    } else {
      s.slots[p.var] = cls;
      out->push_back(std::move(s));
    }
    return;
  }
  const auto& nodes = g.eclass(cls).nodes;
  auto first = std::lower_bound(nodes.begin(), nodes.end(), p.op,
                                [](const ENode& n, OpId op) { return n.op < op; });
  std::vector<Subst> current, next;
  for (auto it = first; it != nodes.end() && it->op == p.op; ++it) {
    const ENode& n = *it;
    if (n.children.size() != p.children.size()) continue;
    Subst base = s;
    if (!match_attrs(g, p, n.attr, base)) continue;
    current.clear();
    current.push_back(std::move(base));
    for (size_t i = 0; i < p.children.size() && !current.empty(); ++i) {
      next.clear();
      for (Subst& c : current) match_node(g, p.children[i], n.children[i], std::move(c), &next);
      std::swap(current, next);
    }
    for (Subst& c : current) out->push_back(std::move(c));
  }
}

ClassId instantiate_node(EGraph& g, const PatternNode& p, const Subst& s) {
  if (p.var >= 0) {
    if (!s.bound(p.var)) throw Error("rewrite right-hand side uses a variable the left side does not bind");
    return g.find(s.cls(p.var));
  }
  ENode n;
  n.op = p.op;
  for (const PatternNode& c : p.children) n.children.push_back(instantiate_node(g, c, s));
  if (p.attr_set_var >= 0 || !p.attrs.empty()) {
    AttrSet set;
    if (p.attr_set_var >= 0) set = g.attrs_of(AttrId(s.slots[p.attr_set_var]));
    for (const AttrSpec& spec : p.attrs) {
      std::vector<double> value = spec.var >= 0 ? bound_value(g, s, spec.var) : spec.literal;
      auto it = std::find_if(set.begin(), set.end(), [&](const Attribute& a) { return a.key == spec.key; });
      if (it != set.end()) {
        it->value = std::move(value);
      } else {
        set.push_back({spec.key, std::move(value)});
      }
    }
    n.attr = g.attrs(std::move(set));
  }
  return g.add(std::move(n));
}

std::string node_to_string(const EGraph& g, const PatternNode& p, const std::vector<std::string>& names) {
  if (p.var >= 0) return p.var < int(names.size()) ? names[p.var] : "?" + std::to_string(p.var);
  std::string s = g.op_name(p.op);
  if (p.attr_set_var >= 0 || !p.attrs.empty()) s += "[...]";
  if (p.children.empty()) return s;
  s = "(" + s;
  for (const PatternNode& c : p.children) s += " " + node_to_string(g, c, names);
  return s + ")";
}

}  // namespace

Pattern Pattern::parse(EGraph& g, std::string_view text, VarTable* vars) {
  auto exprs = parse_sexprs(text);
  if (exprs.size() != 1) throw Error("pattern '" + std::string(text) + "': expected exactly one expression");
  return parse(g, exprs[0], vars);
}

Pattern Pattern::parse(EGraph& g, const SExpr& expr, VarTable* vars) {
  Pattern p;
  p.root_ = parse_node(g, expr, vars, expr.to_string());
  for (size_t i = 0; i < vars->size(); ++i) p.var_names_.push_back(vars->name(int(i)));
  return p;
}

void Pattern::search(const EGraph& g, const OpIndex& index, size_t num_vars, std::vector<Match>* out,
                     size_t limit) const {
  Subst start;
  start.slots.assign(num_vars, Subst::kUnbound);
  std::vector<Subst> found;
  auto try_class = [&](ClassId cls) {
    found.clear();
    match_class(g, cls, start, &found);
    for (Subst& s : found) out->push_back({cls, std::move(s)});
  };
  if (root_.var >= 0) {
    for (ClassId cls : g.class_ids()) {
      try_class(cls);
      if (out->size() > limit) return;
    }
    return;
  }
  for (ClassId cls : index.classes_with(root_.op)) {
    try_class(cls);
    if (out->size() > limit) return;
  }
}

void Pattern::match_class(const EGraph& g, ClassId cls, const Subst& start, std::vector<Subst>* out) const {
  match_node(g, root_, cls, start, out);
}

ClassId Pattern::instantiate(EGraph& g, const Subst& subst) const { return instantiate_node(g, root_, subst); }

std::string Pattern::to_string(const EGraph& g) const { return node_to_string(g, root_, var_names_); }

}  // namespace meganeura::egraph
