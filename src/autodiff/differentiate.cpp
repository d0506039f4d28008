// Reverse-mode differentiation: walks the forward nodes from the loss back to the leaves, applying
// the gradient table (gradient_table.cpp) and summing the contributions of fan-out.
#include <optional>
#include <string>
#include <vector>

#include "autodiff/gradient_table.h"
#include "meganeura/autodiff.h"
#include "meganeura/trace.h"

namespace meganeura {

namespace {

bool is_float(DType dtype) { return dtype != DType::i32; }

}  // namespace

std::string gradient_name(const std::string& parameter_name) { return "grad/" + parameter_name; }

GradientGraph differentiate(const Graph& forward, const DifferentiateOptions& options) {
  trace::Scope trace_scope("autodiff", std::to_string(forward.size()) + " nodes");
  GradientGraph result{forward, {}, {}, {}};
  Graph& graph = result.graph;
  const int32_t loss = forward.outputs().at(0);  // Error when outputs were never set
  {
    const Node& l = graph.node(loss);
    if (!is_float(l.dtype) || num_elements(l.shape) != 1)
      throw Error("differentiate: the loss (the graph's first output, node %" + std::to_string(loss) + " " +
                  op_name(l.op) + ") must be a float scalar, but it is " + format_shape(l.shape) + " " +
                  dtype_name(l.dtype) + "; reduce it with mean_all or sum_all first");
  }
  const auto forward_size = static_cast<int32_t>(graph.size());

  // carries[id]: the node depends, through differentiable ops, on a trainable float parameter.
  std::vector<bool> carries(static_cast<size_t>(forward_size), false);
  std::vector<int32_t> differentiated;  // trainable parameters, then the inputs asked for
  for (int32_t id : forward.parameters()) {
    const Node& p = forward.node(id);
    if (p.trainable && is_float(p.dtype)) differentiated.push_back(id);
  }
  for (const std::string& name : options.inputs) {
    const int32_t id = forward.find(name);  // Error for an unknown name
    const Node& n = forward.node(id);
    if (n.op != Op::input || !is_float(n.dtype))
      throw Error("differentiate: \"" + name + "\" is a " + op_name(n.op) + " of dtype " + dtype_name(n.dtype) +
                  "; DifferentiateOptions::inputs takes float inputs only");
    if (carries[static_cast<size_t>(id)]) continue;  // listed twice
    differentiated.push_back(id);
    carries[static_cast<size_t>(id)] = true;
  }
  for (int32_t id = 0; id < forward_size; ++id) {
    const Node& n = graph.node(id);
    if (n.op == Op::parameter) {
      carries[static_cast<size_t>(id)] = n.trainable && is_float(n.dtype);
      continue;
    }
    // Ops without a rule still propagate `carries`, so the backward walk names them if the loss
    // needs a gradient through one (and ignores them off the loss's path).
    if (op_category(n.op) == OpCategory::leaf || has_zero_derivative(n.op) || !is_float(n.dtype)) continue;
    bool any = false;
    for (int32_t in : n.inputs) any = any || carries[static_cast<size_t>(in)];
    carries[static_cast<size_t>(id)] = any;
  }

  std::vector<std::optional<Tensor>> grads(static_cast<size_t>(forward_size));
  {
    const Node l = graph.node(loss);
    Tensor seed = graph.scalar(1.0, l.dtype);
    if (!l.shape.empty()) seed = graph.broadcast_to(seed, l.shape);
    grads[static_cast<size_t>(loss)] = seed;
  }

  for (int32_t id = loss; id >= 0; --id) {
    const auto index = static_cast<size_t>(id);
    if (!grads[index] || !carries[index]) continue;
    const Node node = graph.node(id);  // a copy: rules grow the graph
    if (op_category(node.op) == OpCategory::leaf) continue;
    std::vector<bool> wanted;
    std::vector<Tensor> inputs;
    bool any = false;
    for (int32_t in : node.inputs) {
      wanted.push_back(carries[static_cast<size_t>(in)]);
      inputs.push_back(graph.tensor(in));
      any = any || wanted.back();
    }
    if (!any) continue;
    const GradientSupport support = gradient_support(node.op);
    if (support != GradientSupport::rule) {
      const char* why = node.op == Op::kv_cache_write ? "KV-cache writes belong to inference graphs; train without the cache"
                        : support == GradientSupport::missing ? "add one to src/autodiff/gradient_table.cpp"
                                                              : "second derivatives are not supported";
      throw Error(std::string("differentiate: the loss depends on a trainable parameter through ") + op_name(node.op) +
                  " (node %" + std::to_string(id) + "), which has no gradient rule (" + why +
                  "); wrap its operands in stop_gradient if no gradient should flow there");
    }
    autodiff::GradientContext context{graph, node, graph.tensor(id), inputs, *grads[index], wanted};
    const std::vector<std::optional<Tensor>> operand_grads = autodiff::gradient_rule(context);
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      if (!wanted[i] || !operand_grads[i]) continue;
      const Shape operand_shape = graph.node(node.inputs[i]).shape;  // a copy: the graph grows
      const Tensor g = autodiff::reduce_to_shape(graph, *operand_grads[i], operand_shape);
      auto& slot = grads[static_cast<size_t>(node.inputs[i])];
      slot = slot ? graph.add(*slot, g) : g;
    }
  }

  std::vector<Tensor> outputs;
  for (int32_t id : forward.outputs()) outputs.push_back(graph.tensor(id));
  for (int32_t id : differentiated) {
    const Node p = graph.node(id);
    Tensor g;
    if (grads[static_cast<size_t>(id)]) {
      g = *grads[static_cast<size_t>(id)];
    } else {
      g = graph.broadcast_to(graph.scalar(0.0, p.dtype), p.shape);
      result.unreached.push_back(p.name);
    }
    // A gradient node may be shared (the same upstream reaching two parameters) or be a forward
    // node; give each parameter its own node so it can carry the name.
    if (g.id < forward_size || !graph.node(g.id).name.empty()) g = graph.reshape(g, p.shape);
    graph.set_name(g, gradient_name(p.name));
    result.parameters.push_back(p.name);
    result.gradients[p.name] = g.id;
    outputs.push_back(g);
  }
  graph.set_outputs(outputs);
  return result;
}

}  // namespace meganeura
