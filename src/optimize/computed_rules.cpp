// Rewrites whose right-hand side depends on shapes in a way the rules file cannot spell.
#include "optimize/nn_egraph.h"

#include <algorithm>

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
  // Products that share their left operand (attention's q/k/v projections, an MLP's gate and up)
  // are one product with the weights stacked and a slice per original: x is read once and one
  // kernel runs. The weights stay their own leaves; their concat is computed from them (at
  // inference a copy refreshed when parameters change, in training a kernel whose gradient autodiff
  // splits back). Every sibling joins one n-ary concat in graph order, so q, k and v need no chain.
  rules.push_back(shared_operand_rule(false));
  rules.push_back(shared_operand_rule(true));
  return rules;
}

bool NnEGraph::is_weight_leaf(ClassId cls) const {
  for (const egraph::ENode& node : egraph_.eclass(cls).nodes) {
    const int32_t leaf = leaf_of(node);
    if (leaf >= 0) {
      const Op op = source_.node(leaf).op;
      return op == Op::parameter || op == Op::constant;
    }
  }
  return false;
}

int32_t NnEGraph::leaf_index(ClassId cls) const {
  for (const egraph::ENode& node : egraph_.eclass(cls).nodes) {
    if (leaf_of(node) >= 0) return leaf_of(node);
  }
  return -1;
}

egraph::Rule NnEGraph::shared_operand_rule(bool with_bias) {
  egraph::Rule r = make_rule(egraph_, with_bias ? "shared-operand-linear" : "shared-operand-matmul",
                             with_bias ? "(linear[transpose_a=0,transpose_b=1] ?x ?w ?b)"
                                       : "(matmul[transpose_a=0,transpose_b=1] ?x ?w)");
  const int x = r.vars.find("?x");
  r.apply = [this, x, with_bias](egraph::EGraph& eg, const Match& m) -> std::optional<ClassId> {
    const ClassId root = eg.find(m.root), left = eg.find(m.subst.cls(x));
    const ClassInfo& ix = info(left);
    if (!ix.valid || ix.type.shape.size() < 2 || ix.type.dtype == DType::i32) return std::nullopt;
    const int64_t k = ix.type.shape.back();
    // A weight [N, K] of x's dtype that is a parameter or constant (so the stacked copy depends on
    // leaves only); with a bias, a [N] leaf too.
    auto fits = [&](ClassId w, ClassId b) {
      const ClassInfo& iw = info(w);
      if (!iw.valid || !is_weight_leaf(w) || iw.type.dtype != ix.type.dtype || iw.type.shape.size() != 2 ||
          iw.type.shape[1] != k) {
        return false;
      }
      if (!with_bias) return true;
      const ClassInfo& ib = info(b);
      return ib.valid && is_weight_leaf(b) && ib.type.dtype == ix.type.dtype && ib.type.shape == Shape{iw.type.shape[0]};
    };
    struct Sibling {
      int32_t order;  // the weight's position in the source graph
      ClassId product, weight, bias;
    };
    std::vector<Sibling> siblings;
    const Op want = with_bias ? Op::linear : Op::matmul;
    Attrs flags;
    flags.transpose_b = true;
    const egraph::AttrId want_attr = encode(want, flags);
    for (const auto& [node, cls] : eg.eclass(left).parents) {
      if (op_of(node) != want || node.attr != want_attr || eg.find(node.children[0]) != left) continue;
      const ClassId w = eg.find(node.children[1]);
      const ClassId b = with_bias ? eg.find(node.children[2]) : w;
      if (!fits(w, b)) continue;
      const ClassId product = eg.find(cls);
      if (std::any_of(siblings.begin(), siblings.end(), [&](const Sibling& s) {
            return s.product == product || (s.weight == w && s.bias == b);
          })) {
        continue;
      }
      siblings.push_back({leaf_index(w), product, w, b});
    }
    const bool root_fits = std::any_of(siblings.begin(), siblings.end(), [&](const Sibling& s) { return s.product == root; });
    if (siblings.size() < 2 || !root_fits) return std::nullopt;
    std::sort(siblings.begin(), siblings.end(), [](const Sibling& a, const Sibling& b) {
      return a.order != b.order ? a.order < b.order : a.bias < b.bias;
    });
    std::vector<ClassId> weights, biases;
    for (const Sibling& s : siblings) {
      weights.push_back(s.weight);
      biases.push_back(s.bias);
    }
    Attrs stack;
    stack.axis = 0;
    std::vector<ClassId> children = {left, add(Op::concat, stack, weights)};
    if (with_bias) children.push_back(add(Op::concat, stack, biases));
    const ClassId wide = add(want, flags, children);
    const int64_t last = int64_t(ix.type.shape.size()) - 1;
    std::optional<ClassId> result;
    int64_t begin = 0;
    for (const Sibling& s : siblings) {
      Attrs part;
      part.axis = last;
      const int64_t rows = info(s.weight).type.shape[0];
      part.ints = {begin, begin + rows};
      begin += rows;
      const ClassId slice = add(Op::slice, part, {wide});
      if (eg.find(s.product) == eg.find(root)) result = slice;
      else eg.merge(s.product, slice);
    }
    return result;
  };
  return r;
}

}  // namespace meganeura::optimizer
