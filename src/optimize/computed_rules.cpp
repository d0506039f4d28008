// Rewrites whose right-hand side depends on shapes in a way the rules file cannot spell.
#include "optimize/nn_egraph.h"

namespace meganeura::optimizer {

using egraph::ClassId;
using egraph::Match;

namespace {

egraph::Rule make_rule(egraph::EGraph& g, const char* name, const char* lhs) {
  egraph::Rule rule;
  rule.name = name;
  rule.lhs = egraph::Pattern::parse(g, lhs, &rule.vars);
  return rule;
}

}  // namespace

std::vector<egraph::Rule> NnEGraph::computed_rules() {
  std::vector<egraph::Rule> rules;

  // sum over the batch of per-batch aᵀ·x ([B, S, N] and [B, S, K] → [B, N, K] → [N, K]) is one
  // aᵀ·x over the flattened [B·S] rows: the [B, N, K] intermediate is never written.
  {
    egraph::Rule r = make_rule(egraph_, "batched-weight-gradient",
                               "(sum[axis=0,keepdim=0] (matmul[transpose_a=1,transpose_b=0] ?a ?x))");
    const int a = r.vars.find("?a"), x = r.vars.find("?x");
    r.apply = [this, a, x](egraph::EGraph&, const Match& m) -> std::optional<ClassId> {
      const ClassInfo &ia = info(m.subst.cls(a)), &ix = info(m.subst.cls(x));
      const Shape &sa = ia.type.shape, &sx = ix.type.shape;
      if (!ia.valid || !ix.valid || sa.size() != 3 || sx.size() != 3 || sa[0] != sx[0] || sa[1] != sx[1]) {
        return std::nullopt;
      }
      Attrs ra, rx, mm;
      ra.ints = {sa[0] * sa[1], sa[2]};
      rx.ints = {sx[0] * sx[1], sx[2]};
      mm.transpose_a = true;
      ClassId flat_a = add(Op::reshape, ra, {m.subst.cls(a)});
      ClassId flat_x = add(Op::reshape, rx, {m.subst.cls(x)});
      return add(Op::matmul, mm, {flat_a, flat_x});
    };
    rules.push_back(std::move(r));
  }

  // Two sums over the leading axis are one sum over the flattened leading pair.
  {
    egraph::Rule r = make_rule(egraph_, "sum-leading-pair", "(sum[axis=0,keepdim=0] (sum[axis=0,keepdim=0] ?x))");
    const int x = r.vars.find("?x");
    r.apply = [this, x](egraph::EGraph&, const Match& m) -> std::optional<ClassId> {
      const ClassInfo& ix = info(m.subst.cls(x));
      const Shape& s = ix.type.shape;
      if (!ix.valid || s.size() < 3) return std::nullopt;
      Attrs flat, sum;
      flat.ints = {s[0] * s[1]};
      flat.ints.insert(flat.ints.end(), s.begin() + 2, s.end());
      sum.axis = 0;
      return add(Op::sum, sum, {add(Op::reshape, flat, {m.subst.cls(x)})});
    };
    rules.push_back(std::move(r));
  }
  return rules;
}

}  // namespace meganeura::optimizer
