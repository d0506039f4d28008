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
  // GroupNorm as nn writes it: x reshaped to [N, G, M], normalised over the last axis, reshaped
  // back and scaled and shifted per channel ([C] vectors reshaped to [C, 1, ...]). The group count
  // and the channel check come from shapes, which the rules file cannot spell.
  {
    egraph::Rule r = make_rule(
        egraph_, "group_norm",
        "(add (mul (reshape (mul (sub ?g (mean[axis=?a,keepdim=1] ?g))"
        "                        (rsqrt (add (mean[axis=?a,keepdim=1] (mul (sub ?g (mean[axis=?a,keepdim=1] ?g))"
        "                                                                  (sub ?g (mean[axis=?a,keepdim=1] ?g))))"
        "                                    (scalar[value=?e])))))"
        "          (reshape ?w))"
        "     (reshape ?b))");
    const int g = r.vars.find("?g"), a = r.vars.find("?a"), e = r.vars.find("?e"), w = r.vars.find("?w"),
              b = r.vars.find("?b");
    r.apply = [this, g, a, e, w, b](egraph::EGraph& eg, const Match& m) -> std::optional<ClassId> {
      const ClassInfo &ig = info(m.subst.cls(g)), &iw = info(m.subst.cls(w)), &ib = info(m.subst.cls(b)),
                      &root = info(m.root);
      if (!ig.valid || !iw.valid || !ib.valid || !root.valid) return std::nullopt;
      const Shape &grouped = ig.type.shape, &out = root.type.shape;
      const double axis = egraph::bound_value(eg, m.subst, a).at(0);
      if (grouped.size() != 3 || (axis != 2 && axis != -1) || out.size() < 2 || out[0] != grouped[0]) {
        return std::nullopt;
      }
      const int64_t channels = out[1], groups = grouped[1];
      if (groups <= 0 || channels % groups != 0 || num_elements(out) != num_elements(grouped)) return std::nullopt;
      if (iw.type.shape != Shape{channels} || ib.type.shape != Shape{channels}) return std::nullopt;
      Attrs back, norm;
      back.ints = out;
      norm.groups = groups;
      norm.eps = egraph::bound_value(eg, m.subst, e).at(0);
      const ClassId x = add(Op::reshape, back, {m.subst.cls(g)});
      return add(Op::group_norm, norm, {x, m.subst.cls(w), m.subst.cls(b)});
    };
    rules.push_back(std::move(r));
  }
  return rules;
}

}  // namespace meganeura::optimizer
