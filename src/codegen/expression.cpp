#include "codegen/expression.h"

#include <algorithm>
#include <cmath>

#include "codegen/glsl.h"
#include "meganeura/error.h"

namespace meganeura::codegen {

ExpressionWriter::ExpressionWriter(const Graph& graph, const compile::Kernel& kernel) : graph_(graph), kernel_(kernel) {}

size_t ExpressionWriter::binding_of(int32_t node) const {
  auto it = std::find(kernel_.inputs.begin(), kernel_.inputs.end(), node);
  if (it == kernel_.inputs.end()) throw Error("codegen: node " + std::to_string(node) + " is not bound to the kernel");
  return static_cast<size_t>(it - kernel_.inputs.begin());
}

std::string ExpressionWriter::load(int32_t node, const std::string& index) const {
  const Node& n = graph_.node(node);
  if (n.op == Op::scalar) {
    return n.dtype == DType::i32 ? float_literal(std::trunc(n.attrs.value)) : float_literal(n.attrs.value);
  }
  return "float(in" + std::to_string(binding_of(node)) + ".data[" + index + "])";
}

std::string ExpressionWriter::function(const std::string& name, int32_t target, const Shape& index_shape,
                                       int32_t acc_node, int32_t partner_node) {
  std::string body;
  std::map<int32_t, std::string> names;
  const std::string result = value(target, body, names, index_shape, acc_node, partner_node);
  return "float " + name + "(uint i" + (acc_node >= 0 ? ", float acc" : "") + (partner_node >= 0 ? ", float acc2" : "") +
         ") {\n" + body + "  return " + result + ";\n}\n";
}

std::string ExpressionWriter::value(int32_t node, std::string& body, std::map<int32_t, std::string>& names,
                                    const Shape& index_shape, int32_t acc_node, int32_t partner_node) const {
  if (node == acc_node) return "acc";
  if (node == partner_node) return "acc2";
  auto known = names.find(node);
  if (known != names.end()) return known->second;
  const Node& n = graph_.node(node);
  const bool member = std::binary_search(kernel_.nodes.begin(), kernel_.nodes.end(), node);
  std::string expression;
  if (!member) {
    expression = load(node, broadcast_index("i", index_shape, n.shape));
  } else {
    std::vector<std::string> args;
    for (int32_t input : n.inputs) args.push_back(value(input, body, names, index_shape, acc_node, partner_node));
    if (n.op == Op::dropout) args.push_back(broadcast_index("i", index_shape, n.shape));
    expression = op_expression(n, args);
  }
  const std::string name = "v" + std::to_string(names.size());
  body += "  float " + name + " = " + expression + ";\n";
  names[node] = name;
  return name;
}

namespace {

std::string integer_power(const std::string& x, int64_t k) {
  if (k == 0) return "1.0";
  std::string product = x;
  for (int64_t i = 1; i < std::abs(k); ++i) product += " * " + x;
  return k < 0 ? "1.0 / (" + product + ")" : "(" + product + ")";
}

}  // namespace

std::string ExpressionWriter::op_expression(const Node& n, const std::vector<std::string>& a) const {
  switch (n.op) {
    case Op::add: return a[0] + " + " + a[1];
    case Op::sub: return a[0] + " - " + a[1];
    case Op::mul: return a[0] + " * " + a[1];
    case Op::div: return a[0] + " / " + a[1];
    case Op::neg: return "-" + a[0];
    case Op::abs: return "abs(" + a[0] + ")";
    case Op::exp: return "exp(" + a[0] + ")";
    case Op::log: return "log(" + a[0] + ")";
    case Op::sqrt: return "sqrt(" + a[0] + ")";
    case Op::rsqrt: return "inversesqrt(" + a[0] + ")";
    case Op::recip: return "1.0 / " + a[0];
    case Op::pow: {
      const double e = n.attrs.exponent;
      if (e == std::trunc(e) && std::abs(e) <= 8) return integer_power(a[0], static_cast<int64_t>(e));
      if (e == 0.5) return "sqrt(" + a[0] + ")";
      return "pow(" + a[0] + ", " + float_literal(e) + ")";
    }
    case Op::relu: return "max(" + a[0] + ", 0.0)";
    case Op::gelu: return "0.5 * " + a[0] + " * (1.0 + erf_approx(" + a[0] + " * 0.70710678118654752))";
    case Op::gelu_tanh:
      return "0.5 * " + a[0] + " * (1.0 + stable_tanh(0.79788456080286536 * (" + a[0] + " + 0.044715 * " + a[0] +
             " * " + a[0] + " * " + a[0] + ")))";
    case Op::silu: return a[0] + " * stable_sigmoid(" + a[0] + ")";
    case Op::sigmoid: return "stable_sigmoid(" + a[0] + ")";
    case Op::tanh: return "stable_tanh(" + a[0] + ")";
    case Op::sin: return "sin(" + a[0] + ")";
    case Op::cos: return "cos(" + a[0] + ")";
    case Op::maximum: return "max(" + a[0] + ", " + a[1] + ")";
    case Op::minimum: return "min(" + a[0] + ", " + a[1] + ")";
    case Op::greater: return "(" + a[0] + " > " + a[1] + " ? 1.0 : 0.0)";
    case Op::where: return "(" + a[0] + " != 0.0 ? " + a[1] + " : " + a[2] + ")";
    case Op::stop_gradient: return a[0];
    case Op::cast:
      switch (n.attrs.dtype) {
        case DType::i32: return "float(int(" + a[0] + "))";
        case DType::f16: return "round_to_f16(" + a[0] + ")";
        case DType::bf16: return "round_to_bf16(" + a[0] + ")";
        case DType::f32: return a[0];
      }
      return a[0];
    case Op::swiglu: return a[0] + " * stable_sigmoid(" + a[0] + ") * " + a[1];
    case Op::dropout: {
      // a: x, seed, step, element index. Kept when the top 24 bits of the hash clear p·2^24.
      const uint32_t threshold = static_cast<uint32_t>(std::llround(n.attrs.p * 16777216.0));
      return "((mix32(uint(" + a[3] + ") ^ mix32(uint(int(" + a[2] + ")) ^ mix32(uint(int(" + a[1] +
             "))))) >> 8) >= " + uint_literal(threshold) + " ? " + a[0] + " * " + float_literal(1.0 / (1.0 - n.attrs.p)) +
             " : 0.0)";
    }
    default:
      break;
  }
  throw Error(std::string("codegen: op '") + op_name(n.op) + "' is not a pointwise op");
}

}  // namespace meganeura::codegen
