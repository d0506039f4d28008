// Reference: elementwise ops (with broadcasting) and reductions.
#include <cmath>
#include <limits>

#include "reference/kernels.h"

namespace meganeura::reference {

namespace {

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

double unary_value(const Node& node, double x) {
  switch (node.op) {
    case Op::neg: return -x;
    case Op::abs: return std::fabs(x);
    case Op::exp: return std::exp(x);
    case Op::log: return std::log(x);
    case Op::sqrt: return std::sqrt(x);
    case Op::rsqrt: return 1.0 / std::sqrt(x);
    case Op::recip: return 1.0 / x;
    case Op::pow: return std::pow(x, node.attrs.exponent);
    case Op::relu: return x > 0 ? x : 0.0;
    case Op::gelu: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case Op::gelu_tanh: {
      const double c = std::sqrt(2.0 / M_PI);
      return 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x)));
    }
    case Op::silu: return x * sigmoid(x);
    case Op::sigmoid: return sigmoid(x);
    case Op::tanh: return std::tanh(x);
    case Op::sin: return std::sin(x);
    case Op::cos: return std::cos(x);
    case Op::cast: return round_to(node.attrs.dtype, x);
    case Op::stop_gradient: return x;
    default: break;
  }
  throw Error(std::string("reference: ") + op_name(node.op) + " is not a unary elementwise op");
}

double binary_value(Op op, double a, double b) {
  switch (op) {
    case Op::add: return a + b;
    case Op::sub: return a - b;
    case Op::mul: return a * b;
    case Op::div: return a / b;
    case Op::maximum: return std::max(a, b);
    case Op::minimum: return std::min(a, b);
    case Op::greater: return a > b ? 1.0 : 0.0;
    case Op::swiglu: return a * sigmoid(a) * b;
    default: break;
  }
  throw Error(std::string("reference: ") + op_name(op) + " is not a binary elementwise op");
}

}  // namespace

std::vector<double> eval_pointwise(const Node& node, const Args& in, const Options& options) {
  const Shape& out_shape = node.shape;
  const int64_t n = num_elements(out_shape);
  std::vector<double> out(static_cast<size_t>(n));
  if (node.op == Op::dropout) {
    const double p = node.attrs.p;
    if (!options.training || p == 0.0) return in[0].v;
    const auto seed = static_cast<uint32_t>(index_scalar(in[1]));
    const auto step = static_cast<uint32_t>(index_scalar(in[2]));
    for (int64_t i = 0; i < n; ++i)
      out[static_cast<size_t>(i)] =
          dropout_keep(seed, step, static_cast<uint32_t>(i), p) ? in[0].v[static_cast<size_t>(i)] / (1.0 - p) : 0.0;
    return out;
  }
  if (in.size() == 1) {
    for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = unary_value(node, in[0].v[static_cast<size_t>(i)]);
    if (node.op == Op::cast) return out;
    if (node.dtype == DType::i32)  // integer arithmetic stays integral (e.g. neg, abs)
      for (double& v : out) v = std::trunc(v);
    return out;
  }
  if (n == 0) return out;
  std::vector<int64_t> index(out_shape.size(), 0);
  int64_t i = 0;
  do {
    const auto at = [&](size_t k) {
      return in[k].v[static_cast<size_t>(broadcast_offset(in[k].shape, out_shape, index))];
    };
    double v;
    if (node.op == Op::where)
      v = at(0) != 0.0 ? at(1) : at(2);
    else
      v = binary_value(node.op, at(0), at(1));
    if (node.dtype == DType::i32 && node.op == Op::div) v = std::trunc(v);  // C-style integer division
    out[static_cast<size_t>(i++)] = v;
  } while (next_index(index, out_shape));
  return out;
}

std::vector<double> eval_reduction(const Node& node, const Args& in) {
  const Arg& x = in[0];
  if (node.op == Op::sum_all || node.op == Op::mean_all) {
    double total = 0;
    for (double v : x.v) total += v;
    if (node.op == Op::mean_all) total /= static_cast<double>(x.v.size());
    return {total};
  }
  const auto axis = static_cast<size_t>(node.attrs.axis);
  const int64_t outer = span(x.shape, 0, axis), dim = x.shape[axis], inner = span(x.shape, axis + 1, x.shape.size());
  if (dim == 0 && (node.op == Op::max || node.op == Op::argmax || node.op == Op::mean))
    throw Error(std::string("reference: ") + op_name(node.op) + " over an empty axis of " + format_shape(x.shape));
  std::vector<double> out(static_cast<size_t>(outer * inner));
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k = 0; k < inner; ++k) {
      double acc = node.op == Op::max ? -std::numeric_limits<double>::infinity() : 0.0;
      int64_t best = 0;
      double best_value = -std::numeric_limits<double>::infinity();
      for (int64_t d = 0; d < dim; ++d) {
        const double v = x.v[static_cast<size_t>((o * dim + d) * inner + k)];
        switch (node.op) {
          case Op::sum:
          case Op::mean: acc += v; break;
          case Op::max: acc = std::max(acc, v); break;
          default:
            if (d == 0 || v > best_value) best_value = v, best = d;  // first maximum wins ties
        }
      }
      if (node.op == Op::mean) acc /= static_cast<double>(dim);
      if (node.op == Op::argmax) acc = static_cast<double>(best);
      out[static_cast<size_t>(o * inner + k)] = acc;
    }
  }
  return out;
}

}  // namespace meganeura::reference
