// The generic e-graph engine on a toy arithmetic language (+, *, -, numbers, symbols).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <optional>
#include <random>

#include "meganeura/error.h"
#include "optimize/egraph/extract.h"
#include "optimize/egraph/runner.h"

namespace eg = meganeura::egraph;
using eg::ClassId;

namespace {

// Constant folding: a class whose value is known gets the number node too.
class ConstFold : public eg::Analysis {
 public:
  std::vector<std::optional<double>> value;

  void make(const eg::EGraph& g, const eg::ENode& n, ClassId fresh) override {
    if (value.size() <= fresh) value.resize(fresh + 1);
    value[fresh] = eval(g, n);
  }
  bool merge(ClassId into, ClassId from) override {
    if (!value[into] && value[from]) {
      value[into] = value[from];
      return true;
    }
    return false;
  }
  bool refine(const eg::EGraph& g, const eg::ENode& n, ClassId cls) override {
    if (value[cls]) return false;
    value[cls] = eval(g, n);
    return value[cls].has_value();
  }
  void modify(eg::EGraph& g, ClassId cls) override {
    if (!value[cls]) return;
    char text[32];
    std::snprintf(text, sizeof text, "%g", *value[cls]);
    g.merge(cls, g.add({g.op(text), 0, {}}));
  }

 private:
  std::optional<double> eval(const eg::EGraph& g, const eg::ENode& n) const {
    const std::string& name = g.op_name(n.op);
    if (n.children.empty()) {
      char* end = nullptr;
      double v = std::strtod(name.c_str(), &end);
      if (end != name.c_str() && *end == 0) return v;
      return std::nullopt;
    }
    if (n.children.size() != 2) return std::nullopt;
    auto a = value[g.find(n.children[0])], b = value[g.find(n.children[1])];
    if (!a || !b) return std::nullopt;
    if (name == "+") return *a + *b;
    if (name == "*") return *a * *b;
    return std::nullopt;
  }
};

// Every node costs 1, except ops listed with their own price.
struct PricedSize : eg::CostModel {
  std::map<std::string, double> price;
  double node_cost(const eg::EGraph& g, ClassId, const eg::ENode& n) const override {
    auto it = price.find(g.op_name(n.op));
    return it == price.end() ? 1.0 : it->second;
  }
};

// Reads an expression like (+ x (* y 1)) into the graph.
ClassId add_expr(eg::EGraph& g, const eg::SExpr& e) {
  if (!e.is_list()) return g.add({g.op(e.atom), 0, {}});
  eg::ENode n{g.op(e.list[0].atom), 0, {}};
  for (size_t i = 1; i < e.list.size(); ++i) n.children.push_back(add_expr(g, e.list[i]));
  return g.add(std::move(n));
}
ClassId add_expr(eg::EGraph& g, std::string_view text) { return add_expr(g, eg::parse_sexprs(text).at(0)); }

std::string term_string(const eg::EGraph& g, const eg::Term& t, uint32_t i) {
  const eg::ENode& n = t.nodes[i];
  if (n.children.empty()) return g.op_name(n.op);
  std::string s = "(" + g.op_name(n.op);
  for (ClassId c : n.children) s += " " + term_string(g, t, c);
  return s + ")";
}

std::string best(const eg::EGraph& g, ClassId root, const eg::CostModel& cost = PricedSize{}) {
  ClassId roots[] = {root};
  eg::Term t = eg::build_term(g, eg::extract(g, cost, roots), roots);
  return term_string(g, t, t.roots[0]);
}

}  // namespace

TEST(EGraph, HashconsSharesIdenticalNodes) {
  eg::EGraph g;
  ClassId a = add_expr(g, "(+ x (* y 2))");
  ClassId b = add_expr(g, "(+ x (* y 2))");
  EXPECT_EQ(a, b);
  EXPECT_EQ(g.num_nodes(), 5u);
  EXPECT_NE(add_expr(g, "(+ x (* y 3))"), a);
}

TEST(EGraph, CongruenceClosurePropagatesThroughParents) {
  eg::EGraph g;
  ClassId fa = add_expr(g, "(f (g a))");
  ClassId fb = add_expr(g, "(f (g b))");
  ClassId ha = add_expr(g, "(h a b)");
  ClassId hb = add_expr(g, "(h b a)");
  EXPECT_NE(g.find(fa), g.find(fb));
  g.merge(add_expr(g, "a"), add_expr(g, "b"));
  g.rebuild();
  EXPECT_EQ(g.find(fa), g.find(fb));
  EXPECT_EQ(g.find(ha), g.find(hb));
  EXPECT_EQ(g.find(add_expr(g, "(g a)")), g.find(add_expr(g, "(g b)")));
  // After rebuild the hashcons is canonical: re-adding finds the merged class, nothing new.
  size_t nodes = g.num_nodes();
  EXPECT_EQ(g.find(add_expr(g, "(f (g b))")), g.find(fa));
  EXPECT_EQ(g.num_nodes(), nodes);
}

TEST(EGraph, AttributesAreComparedByValue) {
  eg::EGraph g;
  eg::AttrId a = g.attrs({{"keepdim", {1}}, {"axis", {-1}}});
  eg::AttrId b = g.attrs({{"axis", {-1}}, {"keepdim", {1}}});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, g.attrs({{"axis", {0}}, {"keepdim", {1}}}));
  ClassId x = g.add({g.op("x"), 0, {}});
  EXPECT_EQ(g.add({g.op("sum"), a, {x}}), g.add({g.op("sum"), b, {x}}));
  EXPECT_EQ(g.attrs({}), 0u);
}

TEST(EGraph, RejectsDanglingChildren) {
  eg::EGraph g;
  EXPECT_THROW(g.add({g.op("f"), 0, {42}}), meganeura::Error);
}

TEST(Rules, MultiplyByOneSimplifies) {
  eg::EGraph g;
  ClassId root = add_expr(g, "(+ (* x 1) (* (* y 1) 1))");
  auto rules = eg::parse_rules(g, "(rewrite (* ?x 1) ?x :name mul-one)", {});
  eg::RunReport r = eg::run(g, rules, {});
  EXPECT_EQ(r.stop, eg::StopReason::kSaturated);
  EXPECT_EQ(best(g, root), "(+ x y)");
  EXPECT_EQ(r.rules[0].name, "mul-one");
  EXPECT_EQ(r.rules[0].applied, 3u);
}

TEST(Rules, RepeatedVariableMustMatchOneClass) {
  eg::EGraph g;
  ClassId same = add_expr(g, "(- a a)");
  ClassId differ = add_expr(g, "(- a b)");
  auto rules = eg::parse_rules(g, "(rewrite (- ?x ?x) 0)", {});
  eg::run(g, rules, {});
  EXPECT_EQ(best(g, same), "0");
  EXPECT_EQ(best(g, differ), "(- a b)");
}

TEST(Rules, AttributeConstraintsBindAndCopy) {
  eg::EGraph g;
  ClassId x = add_expr(g, "x");
  ClassId last = g.add({g.op("sum"), g.attrs({{"axis", {-1}}, {"keepdim", {1}}}), {x}});
  ClassId first = g.add({g.op("sum"), g.attrs({{"axis", {0}}, {"keepdim", {1}}}), {x}});
  auto rules = eg::parse_rules(g, R"(
      ; only the last axis, any keepdim, becomes mean times a count (copying the axis value)
      (rewrite (sum[axis=-1,keepdim=?k] ?x) (scaled_mean[axis=-1,keepdim=?k] ?x))
      (rewrite (sum[?a] ?x) (total[?a, extra=2:3] ?x) :name copy-set))", {});
  eg::run(g, rules, {});
  auto has_op = [&](ClassId c, const char* op) {
    for (const eg::ENode& n : g.eclass(c).nodes)
      if (g.op_name(n.op) == op) return true;
    return false;
  };
  EXPECT_TRUE(has_op(last, "scaled_mean"));
  EXPECT_FALSE(has_op(first, "scaled_mean"));
  for (const eg::ENode& n : g.eclass(last).nodes) {
    if (g.op_name(n.op) == "scaled_mean") {
      EXPECT_EQ(*g.attr_value(n.attr, "keepdim"), std::vector<double>{1});
    }
    if (g.op_name(n.op) == "total") {
      EXPECT_EQ(*g.attr_value(n.attr, "axis"), std::vector<double>{-1});
      EXPECT_EQ(*g.attr_value(n.attr, "extra"), (std::vector<double>{2, 3}));
    }
  }
  EXPECT_TRUE(has_op(first, "total"));
}

TEST(Rules, GuardsSeeTheAnalysis) {
  ConstFold fold;
  eg::EGraph g(&fold);
  ClassId root = add_expr(g, "(* x (+ 0.5 0.5))");
  ClassId near_miss = add_expr(g, "(* y (+ 0.5 0.25))");
  eg::GuardRegistry guards;
  guards.add("is-const", [&](const eg::EGraph& gr, ClassId, const eg::Subst& s, std::span<const eg::GuardArg> a) {
    auto v = fold.value[gr.find(s.cls(a[0].var))];
    return v && *v == a[1].number;
  });
  auto rules = eg::parse_rules(g, "(rewrite (* ?x ?c) ?x :if (is-const ?c 1))", guards);
  eg::run(g, rules, {});
  EXPECT_EQ(best(g, root), "x");
  EXPECT_EQ(best(g, near_miss), "(* y 0.75)");  // folded, but not one
}

TEST(Rules, ParseErrorsNameTheProblem) {
  eg::EGraph g;
  eg::GuardRegistry none;
  auto message = [&](const char* text) {
    try {
      eg::parse_rules(g, text, none);
    } catch (const meganeura::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("(rewrite (f ?x) (g ?y))").find("?y"), std::string::npos);
  EXPECT_NE(message("(rewrite (f ?x) ?x :if (nope ?x))").find("unknown guard 'nope'"), std::string::npos);
  EXPECT_NE(message("(rewrite (f ?x) ?x").find("')' is missing"), std::string::npos);
  EXPECT_NE(message("(rewrite ?x (f ?x))").find("bare variable"), std::string::npos);
}

// Associativity and commutativity explode; the limits stop the run and say which one did.
TEST(Runner, AssociativityCommutativityRespectLimits) {
  const char* ac = R"(
      (rewrite (+ ?a ?b) (+ ?b ?a) :name comm)
      (rewrite (+ ?a (+ ?b ?c)) (+ (+ ?a ?b) ?c) :name assoc))";
  {
    eg::EGraph g;
    ClassId root = add_expr(g, "(+ a (+ b (+ c (+ d (+ e (+ f (+ g h)))))))");
    auto rules = eg::parse_rules(g, ac, {});
    eg::RunnerLimits limits;
    limits.max_nodes = 2000;
    limits.backoff = false;
    eg::RunReport r = eg::run(g, rules, limits);
    EXPECT_EQ(r.stop, eg::StopReason::kNodeLimit);
    EXPECT_GT(r.nodes, 2000u);
    EXPECT_LT(r.nodes, 200000u);  // stopped within one iteration of the limit
    EXPECT_EQ(best(g, root).size(), std::string("(+ a (+ b (+ c (+ d (+ e (+ f (+ g h)))))))").size());
  }
  {
    eg::EGraph g;
    add_expr(g, "(+ a (+ b (+ c d)))");
    auto rules = eg::parse_rules(g, ac, {});
    eg::RunnerLimits limits;
    limits.max_iterations = 2;
    eg::RunReport r = eg::run(g, rules, limits);
    EXPECT_EQ(r.stop, eg::StopReason::kIterationLimit);
    EXPECT_EQ(r.iterations, 2u);
  }
  {
    eg::EGraph g;
    add_expr(g, "(+ a (+ b (+ c (+ d (+ e (+ f (+ g (+ h (+ i j)))))))))");
    auto rules = eg::parse_rules(g, ac, {});
    eg::RunnerLimits limits;
    limits.max_seconds = 0.05;
    limits.max_nodes = ~size_t(0);
    limits.max_iterations = 1000;
    eg::RunReport r = eg::run(g, rules, limits);
    EXPECT_EQ(r.stop, eg::StopReason::kTimeLimit);
    EXPECT_LT(r.seconds, 5.0);
  }
  {
    // Small enough to saturate: 4 terms have finitely many bracketings and orders.
    eg::EGraph g;
    ClassId x = add_expr(g, "(+ a (+ b (+ c d)))");
    ClassId y = add_expr(g, "(+ (+ d b) (+ c a))");
    auto rules = eg::parse_rules(g, ac, {});
    eg::RunReport r = eg::run(g, rules, {});
    EXPECT_EQ(r.stop, eg::StopReason::kSaturated);
    EXPECT_EQ(g.find(x), g.find(y));
  }
}

TEST(Runner, BackoffBansTheExplodingRuleAndLetsOthersWork) {
  eg::EGraph g;
  // Many independent sums feed comm; a cheap rule elsewhere must still fire.
  std::string big = "(k";
  for (int i = 0; i < 300; ++i) big += " (+ v" + std::to_string(i) + " w" + std::to_string(i) + ")";
  big += ")";
  add_expr(g, big);
  ClassId target = add_expr(g, "(* q 1)");
  auto rules = eg::parse_rules(g, R"(
      (rewrite (+ ?a ?b) (+ ?b ?a) :name comm)
      (rewrite (* ?x 1) ?x :name mul-one))", {});
  eg::RunnerLimits limits;
  limits.match_limit = 100;
  limits.ban_length = 2;
  eg::RunReport r = eg::run(g, rules, limits);
  EXPECT_GE(r.rules[0].times_banned, 1u);
  EXPECT_EQ(r.rules[1].times_banned, 0u);
  EXPECT_EQ(best(g, target), "q");
  // Bans are lifted before declaring saturation, so comm eventually ran on every sum.
  EXPECT_EQ(r.stop, eg::StopReason::kSaturated);
  EXPECT_EQ(r.rules[0].applied, 300u);
}

TEST(Extract, SharedSubexpressionIsPaidOnce) {
  eg::EGraph g;
  // Two roots: S = (g x) is needed anyway; P can be computed fused (5) or reuse S through h (1).
  ClassId s = add_expr(g, "(g x)");
  ClassId fused = add_expr(g, "(fused x)");
  ClassId reuse = add_expr(g, "(h (g x))");
  g.merge(fused, reuse);
  g.rebuild();
  PricedSize cost;
  cost.price = {{"g", 6}, {"fused", 5}, {"h", 1}, {"x", 0.001}};
  EXPECT_EQ(best(g, fused, cost), "(fused x)");  // alone, fusing wins (5 < 7)
  ClassId roots[] = {s, fused};
  eg::Extraction e = eg::extract(g, cost, roots);
  eg::Term t = eg::build_term(g, e, roots);
  EXPECT_EQ(term_string(g, t, t.roots[1]), "(h (g x))");  // together, sharing g wins (7 < 11)
  EXPECT_NEAR(e.dag_cost, 7.001, 1e-6);
  EXPECT_EQ(t.nodes.size(), 3u);
}

TEST(Extract, CyclesAreNeverChosen) {
  eg::EGraph g;
  ClassId x = add_expr(g, "x");
  ClassId twice = add_expr(g, "(neg (neg x))");
  g.merge(twice, x);  // x == neg(neg(x)) makes a cycle through neg(x)
  g.rebuild();
  EXPECT_EQ(best(g, twice), "x");
  EXPECT_EQ(best(g, add_expr(g, "(neg x)")), "(neg x)");
}

TEST(Runner, DeterministicAcrossRuns) {
  auto once = [] {
    eg::EGraph g;
    ClassId root = add_expr(g, "(+ (* a 1) (+ b (* (+ c 0) 1)))");
    auto rules = eg::parse_rules(g, R"(
        (rewrite (* ?x 1) ?x) (rewrite (+ ?x 0) ?x)
        (rewrite (+ ?a ?b) (+ ?b ?a)) (rewrite (+ ?a (+ ?b ?c)) (+ (+ ?a ?b) ?c)))", {});
    eg::run(g, rules, {});
    return best(g, root);
  };
  std::string first = once();
  EXPECT_EQ(first.size(), std::string("(+ a (+ b c))").size());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(once(), first);
}

TEST(EGraph, AnalysisReachesParentsWhenAChildLearnsAFact) {
  ConstFold fold;
  eg::EGraph g(&fold);
  ClassId sum = add_expr(g, "(* (+ a 2) 10)");
  EXPECT_FALSE(fold.value[g.find(sum)].has_value());
  g.merge(add_expr(g, "a"), add_expr(g, "3"));  // a is 3
  g.rebuild();
  ASSERT_TRUE(fold.value[g.find(sum)].has_value());
  EXPECT_EQ(*fold.value[g.find(sum)], 50.0);
  EXPECT_EQ(g.find(sum), g.find(add_expr(g, "50")));  // modify added the folded literal
  EXPECT_EQ(best(g, sum), "50");
}

// Random graphs and random merges: after rebuild every node is canonical, the hashcons finds each
// node's class, and no node appears in two classes (congruence closure holds).
TEST(EGraph, InvariantsHoldAfterRandomMerges) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    eg::EGraph g;
    const eg::OpId ops[] = {g.op("f"), g.op("g"), g.op("h")};
    std::vector<ClassId> ids;
    for (int i = 0; i < 6; ++i) ids.push_back(g.add({g.op("leaf" + std::to_string(i)), 0, {}}));
    for (int i = 0; i < 200; ++i) {
      eg::ENode n{ops[rng() % 3], 0, {}};
      size_t arity = 1 + rng() % 2;
      for (size_t k = 0; k < arity; ++k) n.children.push_back(ids[rng() % ids.size()]);
      ids.push_back(g.add(std::move(n)));
    }
    for (int round = 0; round < 3; ++round) {
      for (int i = 0; i < 8; ++i) g.merge(ids[rng() % ids.size()], ids[rng() % ids.size()]);
      g.rebuild();
      std::map<std::vector<uint32_t>, ClassId> owner;
      for (ClassId c : g.class_ids()) {
        for (const eg::ENode& n : g.eclass(c).nodes) {
          for (ClassId child : n.children) ASSERT_TRUE(g.is_canonical(child)) << "seed " << seed;
          ClassId found = 0;
          ASSERT_TRUE(g.lookup(n, &found)) << "seed " << seed;
          EXPECT_EQ(found, c) << "seed " << seed;
          std::vector<uint32_t> key{n.op, n.attr};
          key.insert(key.end(), n.children.begin(), n.children.end());
          auto [it, fresh] = owner.emplace(key, c);
          EXPECT_TRUE(fresh || it->second == c) << "seed " << seed << ": a node lives in two classes";
        }
      }
    }
  }
}
