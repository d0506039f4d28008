#include "optimize/nn_egraph.h"

#include <algorithm>
#include <cmath>

namespace meganeura::optimizer {

using egraph::AttrId;
using egraph::AttrSet;
using egraph::ClassId;
using egraph::ENode;
using egraph::GuardArg;
using egraph::Subst;

namespace {

// Ops that read attrs.axis (and keepdim); their axis is always encoded so patterns can bind it.
bool uses_axis(Op op) {
  switch (op) {
    case Op::sum: case Op::mean: case Op::max: case Op::argmax: case Op::slice: case Op::concat:
    case Op::softmax: case Op::log_softmax: case Op::softmax_grad: case Op::log_softmax_grad:
      return true;
    default:
      return false;
  }
}

bool uses_eps(Op op) {
  switch (op) {
    case Op::layer_norm: case Op::layer_norm_grad: case Op::rms_norm: case Op::rms_norm_grad:
    case Op::group_norm: case Op::group_norm_grad:
      return true;
    default:
      return false;
  }
}

bool is_identity_leaf(Op op) { return op == Op::input || op == Op::parameter || op == Op::constant; }

std::vector<double> to_doubles(const std::vector<int64_t>& v) { return {v.begin(), v.end()}; }

}  // namespace

NnEGraph::NnEGraph(const Graph& graph) : source_(graph), egraph_(this) {
  // Operator ids equal Op values, so conversion both ways is a cast.
  for (Op op : all_ops()) egraph_.op(op_name(op));
  std::vector<ClassId> class_of(graph.size());
  for (size_t i = 0; i < graph.size(); ++i) {
    const Node& n = graph.nodes()[i];
    ENode e;
    e.op = static_cast<egraph::OpId>(n.op);
    if (is_identity_leaf(n.op) || (n.op == Op::scalar && !n.name.empty())) {
      e.attr = egraph_.attrs({{"leaf", {double(i)}}});
    } else {
      e.attr = encode(n.op, n.attrs);
      for (int32_t in : n.inputs) e.children.push_back(class_of[size_t(in)]);
    }
    class_of[i] = egraph_.add(std::move(e));
  }
  for (int32_t out : graph.outputs()) roots_.push_back(class_of[size_t(out)]);
}

AttrId NnEGraph::encode(Op op, const Attrs& a) {
  const Attrs d;
  AttrSet set;
  auto put = [&](const char* key, double v) { set.push_back({key, {v}}); };
  if (uses_axis(op) || a.axis != d.axis) put("axis", double(a.axis));
  if (uses_axis(op) || a.keepdim) put("keepdim", a.keepdim);
  if (op_category(op) == OpCategory::matmul || a.transpose_a || a.transpose_b) {
    put("transpose_a", a.transpose_a);
    put("transpose_b", a.transpose_b);
  }
  if (a.causal) put("causal", 1);
  if (uses_eps(op) || a.eps != d.eps) put("eps", a.eps);
  if (a.theta != d.theta) put("theta", a.theta);
  if (op == Op::pow || a.exponent != d.exponent) put("exponent", a.exponent);
  if (a.scale != d.scale) put("scale", a.scale);
  if (op == Op::scalar || a.value != d.value) put("value", a.value);
  if (a.p != d.p) put("p", a.p);
  if (a.groups != d.groups) put("groups", double(a.groups));
  if (a.num_heads != d.num_heads) put("num_heads", double(a.num_heads));
  if (a.num_kv_heads != d.num_kv_heads) put("num_kv_heads", double(a.num_kv_heads));
  if (a.ignore_index != d.ignore_index) put("ignore_index", double(a.ignore_index));
  if (op == Op::scalar || op == Op::cast || a.dtype != d.dtype) put("dtype", double(a.dtype));
  if (!a.ints.empty()) set.push_back({"ints", to_doubles(a.ints)});
  if (!a.label.empty()) {
    auto it = std::find(labels_.begin(), labels_.end(), a.label);
    put("label", double(it - labels_.begin()));
    if (it == labels_.end()) labels_.push_back(a.label);
  }
  return egraph_.attrs(std::move(set));
}

Attrs NnEGraph::decode(AttrId id) const {
  Attrs a;
  for (const egraph::Attribute& at : egraph_.attrs_of(id)) {
    const std::string& k = at.key;
    double v = at.value.empty() ? 0.0 : at.value[0];
    if (k == "axis") a.axis = int64_t(v);
    else if (k == "keepdim") a.keepdim = v != 0;
    else if (k == "transpose_a") a.transpose_a = v != 0;
    else if (k == "transpose_b") a.transpose_b = v != 0;
    else if (k == "causal") a.causal = v != 0;
    else if (k == "eps") a.eps = v;
    else if (k == "theta") a.theta = v;
    else if (k == "exponent") a.exponent = v;
    else if (k == "scale") a.scale = v;
    else if (k == "value") a.value = v;
    else if (k == "p") a.p = v;
    else if (k == "groups") a.groups = int64_t(v);
    else if (k == "num_heads") a.num_heads = int64_t(v);
    else if (k == "num_kv_heads") a.num_kv_heads = int64_t(v);
    else if (k == "ignore_index") a.ignore_index = int64_t(v);
    else if (k == "dtype") a.dtype = static_cast<DType>(int(v));
    else if (k == "ints") a.ints.assign(at.value.begin(), at.value.end());
    else if (k == "label") a.label = labels_.at(size_t(v));
    else if (k != "leaf") throw Error("optimize: a rewrite rule set unknown attribute '" + k + "'; see Attrs in graph.h");
  }
  return a;
}

Attrs NnEGraph::attrs_of(const ENode& node) const { return decode(node.attr); }

int32_t NnEGraph::leaf_of(const ENode& node) const {
  const std::vector<double>* leaf = egraph_.attr_value(node.attr, "leaf");
  return leaf ? int32_t((*leaf)[0]) : -1;
}

bool NnEGraph::is_weight_leaf_node(int32_t leaf) const {
  const Op op = source_.node(leaf).op;
  return op == Op::parameter || op == Op::constant || op == Op::scalar;
}

void NnEGraph::canonicalize(egraph::EGraph&, ENode& node) {
  if (node.attr == 0 && op_category(op_of(node)) != OpCategory::matmul && !uses_axis(op_of(node)) &&
      !uses_eps(op_of(node)) && op_of(node) != Op::pow && op_of(node) != Op::cast) {
    return;  // already canonical: nothing to encode
  }
  uint64_t key = uint64_t(node.op) << 32 | node.attr;
  auto it = canonical_attr_.find(key);
  if (it == canonical_attr_.end()) {
    AttrId canon = egraph_.attr_value(node.attr, "leaf") ? node.attr : encode(op_of(node), decode(node.attr));
    it = canonical_attr_.emplace(key, canon).first;
  }
  node.attr = it->second;
}

std::optional<TensorType> NnEGraph::node_type(const ENode& node) const {
  int32_t leaf = leaf_of(node);
  if (leaf >= 0) {
    const Node& n = source_.node(leaf);
    return TensorType{n.shape, n.dtype};
  }
  Op op = op_of(node);
  Attrs attrs = decode(node.attr);
  if (op == Op::scalar) return TensorType{{}, attrs.dtype};
  std::vector<TensorType> inputs;
  for (ClassId c : node.children) {
    const ClassInfo& ci = info(c);
    if (!ci.valid) return std::nullopt;
    inputs.push_back(ci.type);
  }
  try {
    return infer_type(op, attrs, inputs);
  } catch (const Error&) {
    return std::nullopt;
  }
}

ClassInfo NnEGraph::compute(const ENode& node) const {
  ClassInfo ci;
  std::optional<TensorType> type = node_type(node);
  if (!type) {
    ci.valid = false;
    return ci;
  }
  ci.type = std::move(*type);
  Op op = op_of(node);
  int32_t leaf = leaf_of(node);
  if (leaf >= 0) {
    const Node& n = source_.node(leaf);
    if (n.op == Op::scalar) ci.constant = n.attrs.value;
    if (n.op == Op::constant && !n.data.empty() &&
        std::all_of(n.data.begin(), n.data.end(), [&](float v) { return v == n.data[0]; })) {
      ci.constant = n.data[0];
    }
  } else if (op == Op::scalar) {
    ci.constant = decode(node.attr).value;
  } else if ((op == Op::broadcast_to || op == Op::reshape) && !node.children.empty()) {
    ci.constant = info(node.children[0]).constant;
  } else if (op_category(op) == OpCategory::pointwise && ci.type.dtype != DType::i32) {
    ci.constant = fold(op, decode(node.attr), node.children);
  }
  return ci;
}

std::optional<double> NnEGraph::fold(Op op, const Attrs& attrs, const std::vector<ClassId>& children) const {
  std::vector<double> v;
  for (ClassId c : children) {
    const ClassInfo& ci = info(c);
    if (!ci.constant || ci.type.dtype == DType::i32) return std::nullopt;
    v.push_back(*ci.constant);
  }
  double r;
  switch (op) {
    case Op::add: r = v[0] + v[1]; break;
    case Op::sub: r = v[0] - v[1]; break;
    case Op::mul: r = v[0] * v[1]; break;
    case Op::div: r = v[0] / v[1]; break;
    case Op::neg: r = -v[0]; break;
    case Op::recip: r = 1.0 / v[0]; break;
    case Op::sqrt: r = std::sqrt(v[0]); break;
    case Op::rsqrt: r = 1.0 / std::sqrt(v[0]); break;
    case Op::exp: r = std::exp(v[0]); break;
    case Op::log: r = std::log(v[0]); break;
    case Op::pow: r = std::pow(v[0], attrs.exponent); break;
    default: return std::nullopt;
  }
  if (!std::isfinite(r)) return std::nullopt;
  return r;
}

void NnEGraph::modify(egraph::EGraph& graph, ClassId cls) {
  // A scalar class whose value is known gets the scalar leaf, so no kernel computes it.
  const ClassInfo ci = info_[cls];
  if (!ci.valid || !ci.constant || !ci.type.shape.empty() || ci.type.dtype == DType::i32) return;
  Attrs attrs;
  attrs.value = *ci.constant;
  attrs.dtype = ci.type.dtype;
  graph.merge(cls, add(Op::scalar, attrs, {}));
}

ClassId NnEGraph::add(Op op, const Attrs& attrs, std::vector<ClassId> children) {
  return egraph_.add({static_cast<egraph::OpId>(op), encode(op, attrs), std::move(children)});
}

void NnEGraph::make(const egraph::EGraph&, const ENode& node, ClassId fresh) {
  if (info_.size() <= fresh) info_.resize(fresh + 1);
  info_[fresh] = compute(node);
}

bool NnEGraph::merge(ClassId into, ClassId from) {
  ClassInfo& a = info_[into];
  const ClassInfo& b = info_[from];
  bool changed = false;
  if (!a.valid && b.valid) {
    a = b;
    return true;
  }
  if (!a.constant && b.constant && b.valid) {
    a.constant = b.constant;
    changed = true;
  }
  return changed;
}

bool NnEGraph::refine(const egraph::EGraph&, const ENode& node, ClassId cls) {
  // Only constants can appear later (a child merged with a constant class).
  if (info_[cls].constant || !info_[cls].valid) return false;
  ClassInfo fresh = compute(node);
  if (!fresh.valid || !fresh.constant) return false;
  info_[cls].constant = fresh.constant;
  return true;
}

// ---- guards -------------------------------------------------------------------------------------

namespace {

const Shape& shape_arg(const NnEGraph& eg, const Subst& s, const GuardArg& a) {
  return eg.info(s.cls(a.var)).type.shape;
}

bool check_args(std::span<const GuardArg> args, size_t n) {
  if (args.size() < n) throw Error("optimize rules: a guard got " + std::to_string(args.size()) +
                                   " arguments, needs " + std::to_string(n));
  return true;
}

}  // namespace

void NnEGraph::register_guards(egraph::GuardRegistry* guards) const {
  const NnEGraph& eg = *this;
  using Args = std::span<const GuardArg>;
  // (same-shape ?a ?b): same shape and dtype.
  guards->add("same-shape", [&eg](const egraph::EGraph&, ClassId, const Subst& s, Args a) {
    check_args(a, 2);
    const ClassInfo &x = eg.info(s.cls(a[0].var)), &y = eg.info(s.cls(a[1].var));
    return x.valid && y.valid && x.type.shape == y.type.shape && x.type.dtype == y.type.dtype;
  });
  // (root-same-shape ?x): the matched expression has ?x's shape and dtype (so ?x may replace it).
  guards->add("root-same-shape", [&eg](const egraph::EGraph&, ClassId root, const Subst& s, Args a) {
    check_args(a, 1);
    const ClassInfo &r = eg.info(root), &x = eg.info(s.cls(a[0].var));
    return r.valid && x.valid && r.type.shape == x.type.shape && r.type.dtype == x.type.dtype;
  });
  // (is-const ?c value [tolerance]): every element of ?c equals value (relative tolerance).
  guards->add("is-const", [&eg](const egraph::EGraph&, ClassId, const Subst& s, Args a) {
    check_args(a, 2);
    const ClassInfo& c = eg.info(s.cls(a[0].var));
    if (!c.constant) return false;
    double tol = a.size() > 2 ? a[2].number : 0.0;
    return std::abs(*c.constant - a[1].number) <= tol * std::abs(a[1].number);
  });
  // (last-axis ?x ?axis): the bound axis value is ?x's last dim.
  guards->add("last-axis", [&eg](const egraph::EGraph& g, ClassId, const Subst& s, Args a) {
    check_args(a, 2);
    const Shape& x = shape_arg(eg, s, a[0]);
    return !x.empty() && egraph::bound_value(g, s, a[1].var)[0] == double(x.size() - 1);
  });
  // (vector-over-last ?w ?x): ?w is a vector as long as ?x's last dim (a norm weight or a bias).
  guards->add("vector-over-last", [&eg](const egraph::EGraph&, ClassId, const Subst& s, Args a) {
    check_args(a, 2);
    const Shape &w = shape_arg(eg, s, a[0]), &x = shape_arg(eg, s, a[1]);
    return w.size() == 1 && !x.empty() && w[0] == x.back();
  });
  // (bias-for ?b): ?b is a vector as long as the matched expression's last dim.
  guards->add("bias-for", [&eg](const egraph::EGraph&, ClassId root, const Subst& s, Args a) {
    check_args(a, 1);
    const Shape &b = shape_arg(eg, s, a[0]), &r = eg.info(root).type.shape;
    return b.size() == 1 && !r.empty() && b[0] == r.back();
  });
  // (rank ?x n)
  guards->add("rank", [&eg](const egraph::EGraph&, ClassId, const Subst& s, Args a) {
    check_args(a, 2);
    return double(shape_arg(eg, s, a[0]).size()) == a[1].number;
  });
  // (is-float ?x)
  guards->add("is-float", [&eg](const egraph::EGraph&, ClassId, const Subst& s, Args a) {
    check_args(a, 1);
    return eg.info(s.cls(a[0].var)).type.dtype != DType::i32;
  });
  // (swaps-last-two ?perm): a permutation that only exchanges the last two axes.
  guards->add("swaps-last-two", [](const egraph::EGraph& g, ClassId, const Subst& s, Args a) {
    check_args(a, 1);
    const std::vector<double>& p = egraph::bound_value(g, s, a[0].var);
    size_t n = p.size();
    if (n < 2) return false;
    for (size_t i = 0; i + 2 < n; ++i)
      if (p[i] != double(i)) return false;
    return p[n - 2] == double(n - 1) && p[n - 1] == double(n - 2);
  });
  // (inverse-perms ?p ?q): applying ?p then ?q is the identity.
  guards->add("inverse-perms", [](const egraph::EGraph& g, ClassId, const Subst& s, Args a) {
    check_args(a, 2);
    const std::vector<double>& p = egraph::bound_value(g, s, a[0].var);
    const std::vector<double>& q = egraph::bound_value(g, s, a[1].var);
    if (p.size() != q.size()) return false;
    // permute(permute(x, p), q)[i] reads axis p[q[i]] of x.
    for (size_t i = 0; i < q.size(); ++i) {
      size_t qi = size_t(q[i]);
      if (qi >= p.size() || p[qi] != double(i)) return false;
    }
    return true;
  });
}

void NnEGraph::check_ops_known() const {
  // Operator ids below kNumOps are the table's; anything interned later came from a rule.
  if (egraph_.num_ops() > kNumOps) {
    throw Error("optimize rules: unknown operator '" + egraph_.op_name(egraph::OpId(kNumOps)) +
                "'; every operator in a rule must be a line of include/meganeura/ops.def");
  }
}

// ---- back to a Graph ----------------------------------------------------------------------------

Graph NnEGraph::to_graph(const egraph::Term& term) const {
  Graph out;
  std::vector<int32_t> leaf_map(source_.size(), -1);
  // Every input, parameter and constant comes first, in the original order, so parameters keep
  // their identity and order even when the optimized graph no longer reads one of them.
  for (size_t i = 0; i < source_.size(); ++i) {
    const Node& n = source_.nodes()[i];
    if (is_identity_leaf(n.op) || (n.op == Op::scalar && !n.name.empty())) {
      leaf_map[i] = out.add_node(n).id;
    }
  }
  std::vector<int32_t> id_of(term.nodes.size());
  for (size_t k = 0; k < term.nodes.size(); ++k) {
    const ENode& e = term.nodes[k];
    int32_t leaf = leaf_of(e);
    if (leaf >= 0) {
      id_of[k] = leaf_map[size_t(leaf)];
      continue;
    }
    Node n;
    n.op = op_of(e);
    n.attrs = decode(e.attr);
    for (ClassId c : e.children) n.inputs.push_back(id_of[c]);
    id_of[k] = out.add_node(std::move(n)).id;
  }
  std::vector<Tensor> outputs;
  for (size_t r = 0; r < term.roots.size(); ++r) {
    Tensor t = out.tensor(id_of[term.roots[r]]);
    const Node& original = source_.node(source_.outputs()[r]);
    if (!original.name.empty() && !out.contains(original.name)) {
      // Outputs proved equal (two parameters with one gradient) share a node; each keeps its name
      // through an alias, as differentiate() gives them.
      if (!t.node().name.empty()) t = out.reshape(t, t.shape());
      out.set_name(t, original.name);
    }
    outputs.push_back(t);
  }
  out.set_outputs(outputs);
  return out;
}

}  // namespace meganeura::optimizer
