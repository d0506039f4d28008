#include "optimize/cost_model.h"

#include <algorithm>

#include "optimize/nn_egraph.h"

namespace meganeura::optimizer {

namespace {

double bytes_of(const TensorType& t) { return double(num_elements(t.shape)) * double(dtype_size(t.dtype)); }

double batch_of(const Shape& s, size_t matrix_dims) {
  double b = 1;
  for (size_t i = 0; i + matrix_dims < s.size(); ++i) b *= double(s[i]);
  return b;
}

bool is_weight_source(Op op) { return op == Op::parameter || op == Op::constant || op == Op::scalar; }

}  // namespace

bool slice_is_view(const Shape& input, const Attrs& attrs) {
  const size_t axis = size_t(attrs.axis);
  if (axis >= input.size() || attrs.ints.size() != 2) return false;
  int64_t outer = 1, inner = 1;
  for (size_t i = 0; i < axis; ++i) outer *= input[i];
  for (size_t i = axis + 1; i < input.size(); ++i) inner *= input[i];
  return outer == 1 && uint64_t(attrs.ints[0] * inner * 4) % kViewAlignment == 0;
}

KernelEstimate estimate_kernel(Op op, const Attrs& attrs, const std::vector<TensorType>& inputs,
                               const TensorType& out) {
  KernelEstimate k;
  OpCategory category = op_category(op);
  if (category == OpCategory::leaf || op == Op::reshape || op == Op::stop_gradient) return k;
  if (op == Op::slice && !inputs.empty() && slice_is_view(inputs[0].shape, attrs)) return k;
  k.dispatch = true;
  for (const TensorType& in : inputs) k.bytes_read += bytes_of(in);
  k.bytes_written = bytes_of(out);
  if (category == OpCategory::matmul && inputs.size() >= 2 && inputs[0].shape.size() >= 2) {
    const Shape& a = inputs[0].shape;
    double reduced = double(attrs.transpose_a ? a[a.size() - 2] : a.back());
    k.flops = 2.0 * double(num_elements(out.shape)) * reduced;
  } else if (category == OpCategory::attention && inputs.size() >= 2 && inputs[0].shape.size() == 4) {
    const Shape &q = inputs[0].shape, &kk = inputs[1].shape;
    double per_head = double(q[2]) * double(kk[2]) * double(q[3]);
    k.flops = (op == Op::attention_lse ? 2.0 : op == Op::attention ? 4.0 : 8.0) * batch_of(q, 2) * per_head;
  } else if (category == OpCategory::conv && (op == Op::conv2d || op == Op::conv2d_grad_input ||
                                              op == Op::conv2d_grad_weight) && inputs.size() == 2) {
    // Every conv product is as large as the forward one: out · Cin/groups · kh · kw MACs.
    const Shape& w = op == Op::conv2d_grad_weight ? out.shape : inputs[1].shape;
    const Shape& y = op == Op::conv2d ? out.shape : (op == Op::conv2d_grad_input ? inputs[0].shape : inputs[1].shape);
    if (w.size() == 4) k.flops = 2.0 * double(num_elements(y)) * double(w[1] * w[2] * w[3]);
  } else {
    k.flops = double(num_elements(out.shape));
  }
  return k;
}

double kernel_cost(const KernelEstimate& k, const CostWeights& w) {
  if (!k.dispatch) return 1e-3;
  return w.dispatch_bytes + k.bytes_read + k.bytes_written + k.flops / w.flops_per_byte;
}

GraphEstimate estimate_graph(const Graph& graph, const CostWeights& weights, bool inference) {
  GraphEstimate total;
  // Only nodes the outputs need are run.
  std::vector<uint8_t> live(graph.size(), 0);
  for (int32_t o : graph.outputs()) live[size_t(o)] = 1;
  for (size_t i = graph.size(); i-- > 0;) {
    if (!live[i]) continue;
    for (int32_t in : graph.nodes()[i].inputs) live[size_t(in)] = 1;
  }
  std::vector<uint8_t> derived(graph.size(), 0);
  for (size_t i = 0; i < graph.size(); ++i) {
    const Node& n = graph.nodes()[i];
    derived[i] = is_weight_source(n.op) ||
                 (!n.inputs.empty() && op_category(n.op) != OpCategory::leaf &&
                  std::all_of(n.inputs.begin(), n.inputs.end(), [&](int32_t in) { return derived[size_t(in)] != 0; }));
  }
  std::vector<TensorType> inputs;
  for (size_t i = 0; i < graph.size(); ++i) {
    if (!live[i]) continue;
    const Node& n = graph.nodes()[i];
    if (inference && derived[i]) continue;
    inputs.clear();
    for (int32_t in : n.inputs) inputs.push_back({graph.node(in).shape, graph.node(in).dtype});
    KernelEstimate k = estimate_kernel(n.op, n.attrs, inputs, {n.shape, n.dtype});
    if (!k.dispatch) continue;
    ++total.dispatches;
    total.bytes += k.bytes_read + k.bytes_written;
    total.flops += k.flops;
    total.cost += kernel_cost(k, weights);
  }
  return total;
}

NnCostModel::NnCostModel(const NnEGraph& eg, CostWeights weights, bool inference)
    : eg_(eg), weights_(weights), inference_(inference) {
  if (!inference) return;
  // Derived classes, to a fixpoint: one node whose children are all derived makes its class derived.
  const egraph::EGraph& g = eg.egraph();
  derived_.assign(g.id_bound(), 0);
  const std::vector<egraph::ClassId> ids = g.class_ids();
  for (bool changed = true; changed;) {
    changed = false;
    for (egraph::ClassId id : ids) {
      if (derived_[id]) continue;
      for (const egraph::ENode& node : g.eclass(id).nodes) {
        if (is_derived(node)) {
          derived_[id] = 1;
          changed = true;
          break;
        }
      }
    }
  }
}

bool NnCostModel::is_derived(const egraph::ENode& node) const {
  const int32_t leaf = eg_.leaf_of(node);
  if (leaf >= 0) return eg_.is_weight_leaf_node(leaf);
  if (node.children.empty()) return eg_.op_of(node) == Op::scalar;
  const egraph::EGraph& g = eg_.egraph();
  return std::all_of(node.children.begin(), node.children.end(),
                     [&](egraph::ClassId c) { return derived_[g.find(c)] != 0; });
}

double NnCostModel::node_cost(const egraph::EGraph&, egraph::ClassId cls, const egraph::ENode& node) const {
  constexpr double kRejected = 1e30;
  std::optional<TensorType> type = eg_.node_type(node);
  const ClassInfo& info = eg_.info(cls);
  if (!type || !info.valid || type->shape != info.type.shape || type->dtype != info.type.dtype) return kRejected;
  // A derived copy is computed when parameters change; a token cost keeps the smaller one preferred.
  if (inference_ && !node.children.empty() && is_derived(node)) return 1e-3;
  std::vector<TensorType> inputs;
  for (egraph::ClassId c : node.children) inputs.push_back(eg_.info(c).type);
  return kernel_cost(estimate_kernel(eg_.op_of(node), eg_.attrs_of(node), inputs, *type), weights_);
}

}  // namespace meganeura::optimizer
