#include "optimize/cost_model.h"

#include "optimize/nn_egraph.h"

namespace meganeura::optimizer {

namespace {

double bytes_of(const TensorType& t) { return double(num_elements(t.shape)) * double(dtype_size(t.dtype)); }

double batch_of(const Shape& s, size_t matrix_dims) {
  double b = 1;
  for (size_t i = 0; i + matrix_dims < s.size(); ++i) b *= double(s[i]);
  return b;
}

}  // namespace

KernelEstimate estimate_kernel(Op op, const Attrs& attrs, const std::vector<TensorType>& inputs,
                               const TensorType& out) {
  KernelEstimate k;
  OpCategory category = op_category(op);
  if (category == OpCategory::leaf || op == Op::reshape || op == Op::stop_gradient) return k;
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

GraphEstimate estimate_graph(const Graph& graph, const CostWeights& weights) {
  GraphEstimate total;
  // Only nodes the outputs need are run.
  std::vector<uint8_t> live(graph.size(), 0);
  for (int32_t o : graph.outputs()) live[size_t(o)] = 1;
  for (size_t i = graph.size(); i-- > 0;) {
    if (!live[i]) continue;
    for (int32_t in : graph.nodes()[i].inputs) live[size_t(in)] = 1;
  }
  std::vector<TensorType> inputs;
  for (size_t i = 0; i < graph.size(); ++i) {
    if (!live[i]) continue;
    const Node& n = graph.nodes()[i];
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

double NnCostModel::node_cost(const egraph::EGraph&, egraph::ClassId cls, const egraph::ENode& node) const {
  constexpr double kRejected = 1e30;
  std::optional<TensorType> type = eg_.node_type(node);
  const ClassInfo& info = eg_.info(cls);
  if (!type || !info.valid || type->shape != info.type.shape || type->dtype != info.type.dtype) return kRejected;
  std::vector<TensorType> inputs;
  for (egraph::ClassId c : node.children) inputs.push_back(eg_.info(c).type);
  return kernel_cost(estimate_kernel(eg_.op_of(node), eg_.attrs_of(node), inputs, *type), weights_);
}

}  // namespace meganeura::optimizer
