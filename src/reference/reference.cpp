// The reference interpreter's driver: leaves, feeds, dispatch by category, shared helpers.
#include <cmath>
#include <limits>

#include "reference/kernels.h"

namespace meganeura::reference {

int64_t span(const Shape& shape, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t i = begin; i < end && i < shape.size(); ++i) n *= shape[i];
  return n;
}

bool next_index(std::vector<int64_t>& index, const Shape& shape) {
  for (size_t d = shape.size(); d-- > 0;) {
    if (++index[d] < shape[d]) return true;
    index[d] = 0;
  }
  return false;
}

int64_t broadcast_offset(const Shape& in, const Shape& out, const std::vector<int64_t>& index) {
  const size_t lead = out.size() - in.size();
  int64_t offset = 0;
  for (size_t d = 0; d < in.size(); ++d) offset = offset * in[d] + (in[d] == 1 ? 0 : index[lead + d]);
  return offset;
}

int64_t index_scalar(const Arg& arg) { return static_cast<int64_t>(arg.v.at(0)); }

double round_to(DType dtype, double value) {
  if (dtype == DType::i32) return std::trunc(value);
  if (dtype == DType::f32) return static_cast<double>(static_cast<float>(value));
  if (!std::isfinite(value) || value == 0.0) return value;
  // Significand bits and the smallest exponent of the subnormal quantum for each format.
  const int bits = dtype == DType::f16 ? 11 : 8;
  const int min_quantum_exp = dtype == DType::f16 ? -24 : -133;
  const double max_finite = dtype == DType::f16 ? 65504.0 : 3.3895313892515355e38;
  int e = 0;
  std::frexp(std::fabs(value), &e);
  const double quantum = std::ldexp(1.0, std::max(e - bits, min_quantum_exp));
  const double rounded = std::nearbyint(value / quantum) * quantum;  // default mode: ties to even
  if (std::fabs(rounded) > max_finite) return std::copysign(std::numeric_limits<double>::infinity(), value);
  return rounded;
}

namespace {

std::vector<double> evaluate_node(const Node& node, const Args& args, const Options& options) {
  switch (op_category(node.op)) {
    case OpCategory::pointwise: return eval_pointwise(node, args, options);
    case OpCategory::reduction: return eval_reduction(node, args);
    case OpCategory::movement: return eval_movement(node, args);
    case OpCategory::matmul: return eval_matmul(node, args);
    case OpCategory::attention: return eval_attention(node, args);
    case OpCategory::conv: return eval_conv(node, args);
    case OpCategory::nn: return eval_nn(node, args);
    case OpCategory::loss: return eval_loss(node, args);
    case OpCategory::leaf:
    case OpCategory::optimizer: break;
  }
  throw Error(std::string("reference: no implementation for op ") + op_name(node.op) +
              " (add a case in src/reference/)");
}

}  // namespace

std::vector<double> evaluate(const Graph& graph, int32_t id, const std::vector<const std::vector<double>*>& inputs,
                             const Options& options) {
  const Node& node = graph.node(id);
  if (inputs.size() != node.inputs.size())
    throw Error(std::string("reference::evaluate: ") + op_name(node.op) + " has " + std::to_string(node.inputs.size()) +
                " inputs, " + std::to_string(inputs.size()) + " values given");
  Args args;
  args.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Node& in = graph.node(node.inputs[i]);
    if (inputs[i]->size() != static_cast<size_t>(num_elements(in.shape)))
      throw Error(std::string("reference::evaluate: input ") + std::to_string(i) + " of " + op_name(node.op) + " has " +
                  std::to_string(inputs[i]->size()) + " values for shape " + format_shape(in.shape));
    args.push_back(Arg{in.shape, in.dtype, *inputs[i]});
  }
  std::vector<double> out = evaluate_node(node, args, options);
  if (out.size() != static_cast<size_t>(num_elements(node.shape)))
    throw Error(std::string("reference: ") + op_name(node.op) + " produced " + std::to_string(out.size()) +
                " values for shape " + format_shape(node.shape));
  return out;
}

Values run(const Graph& graph, const Feeds& feeds, const Options& options) {
  for (const auto& [name, data] : feeds) {
    if (!graph.contains(name))
      throw Error("reference::run: feed \"" + name + "\" names no node of the graph");
    const Node& n = graph.node(graph.find(name));
    if (n.op != Op::input && n.op != Op::parameter)
      throw Error("reference::run: feed \"" + name + "\" names a " + op_name(n.op) + " node; only inputs and parameters can be fed");
  }
  // Which nodes to compute: the targets and, walking back in topological order, their inputs.
  std::vector<bool> needed(graph.size(), options.targets.empty());
  for (int32_t id : options.targets) {
    graph.node(id);  // Error on an id out of range
    needed[static_cast<size_t>(id)] = true;
  }
  for (size_t i = graph.size(); i-- > 0;)
    if (needed[i])
      for (int32_t in : graph.nodes()[i].inputs) needed[static_cast<size_t>(in)] = true;
  Values values(graph.size());
  for (size_t i = 0; i < graph.size(); ++i) {
    if (!needed[i]) continue;
    const Node& n = graph.nodes()[i];
    std::vector<double>& out = values[i];
    switch (n.op) {
      case Op::input:
      case Op::parameter: {
        auto it = feeds.find(n.name);
        if (it == feeds.end()) {
          if (n.op == Op::input)
            throw Error("reference::run: input \"" + n.name + "\" " + format_shape(n.shape) + " was not fed");
          const auto init = initial_values(n.init, n.shape, parameter_seed(options.seed, n.name));
          out.assign(init.begin(), init.end());
        } else {
          if (it->second.size() != static_cast<size_t>(num_elements(n.shape)))
            throw Error("reference::run: \"" + n.name + "\" has shape " + format_shape(n.shape) + " (" +
                        std::to_string(num_elements(n.shape)) + " values), fed " + std::to_string(it->second.size()));
          out = it->second;
        }
        break;
      }
      case Op::constant: out.assign(n.data.begin(), n.data.end()); break;
      case Op::scalar: out = {n.attrs.value}; break;
      default: {
        std::vector<const std::vector<double>*> ins;
        for (int32_t id : n.inputs) ins.push_back(&values[static_cast<size_t>(id)]);
        out = evaluate(graph, static_cast<int32_t>(i), ins, options);
      }
    }
  }
  return values;
}

}  // namespace meganeura::reference
