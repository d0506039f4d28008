// The gradient table: one case per op of ops.def, written with the graph builder. Each case returns
// d loss / d operand from the upstream gradient `g` (PyTorch's derivatives.yaml, as code). Fused
// forward ops have compact rules of their own, mostly through the backward ops of the table.
#include <string>

#include "autodiff/gradient_table.h"

namespace meganeura::autodiff {

namespace {

using Grads = std::vector<std::optional<Tensor>>;

Tensor scalar_like(Graph& g, double value, Tensor like) { return g.scalar(value, like.dtype()); }

Tensor zeros(Graph& g, const Shape& shape, DType dtype) { return g.broadcast_to(g.scalar(0.0, dtype), shape); }

// Inserts the reduced axis back (size 1) so a keepdim=false reduction's gradient broadcasts.
Tensor with_kept_axis(Graph& g, Tensor grad, const Node& node, const Shape& input_shape) {
  if (node.attrs.keepdim) return grad;
  Shape kept = input_shape;
  kept[static_cast<size_t>(node.attrs.axis)] = 1;
  return g.reshape(grad, kept);
}

Conv2dOptions conv_options(const Attrs& a) {
  Conv2dOptions o;
  o.stride = {a.ints.at(0), a.ints.at(1)};
  o.padding = {a.ints.at(2), a.ints.at(3)};
  o.dilation = {a.ints.at(4), a.ints.at(5)};
  o.groups = a.groups;
  return o;
}

Pool2dOptions pool_options(const Attrs& a) {
  Pool2dOptions o;
  o.kernel = {a.ints.at(0), a.ints.at(1)};
  o.stride = {a.ints.at(2), a.ints.at(3)};
  o.padding = {a.ints.at(4), a.ints.at(5)};
  return o;
}

std::array<int64_t, 2> spatial(Tensor t) { return {t.dim(-2), t.dim(-1)}; }

// (x - mean) / sqrt(var + eps) over the last dim, as the norms compute it.
Tensor normalized_last_dim(Graph& g, Tensor x, double eps, bool center) {
  Tensor centered = center ? x - g.mean(x, -1, true) : x;
  Tensor second_moment = g.mean(centered * centered, -1, true);
  return centered * g.rsqrt(second_moment + scalar_like(g, eps, x));
}

// Per-channel sum of t [N, C, ...] → [C].
Tensor sum_per_channel(Graph& g, Tensor t) {
  Tensor over_batch = g.sum(t, 0);
  return g.sum(g.reshape(over_batch, {over_batch.dim(0), -1}), 1);
}

// The attention options and optional operands of an attention node: after q, k, v (and out, dout
// for the backward ops) come the float mask and the i32 position offset, each optional.
struct AttentionOperands {
  AttentionOptions options;
  std::optional<Tensor> mask;
  std::optional<size_t> mask_index;
  std::optional<Tensor> offset;
};

AttentionOperands attention_operands(const GradientContext& c, size_t first_optional) {
  AttentionOperands a;
  a.options.causal = c.node.attrs.causal;
  a.options.scale = c.node.attrs.scale;
  for (size_t i = first_optional; i < c.inputs.size(); ++i) {
    if (c.inputs[i].dtype() == DType::i32) {
      a.offset = c.inputs[i];
    } else {
      a.mask = c.inputs[i];
      a.mask_index = i;
    }
  }
  return a;
}

[[noreturn]] void unsupported_operand(const GradientContext& c, size_t operand, const std::string& why) {
  throw Error(std::string("differentiate: ") + op_name(c.node.op) + " node %" + std::to_string(c.out.id) +
              ": no gradient with respect to operand " + std::to_string(operand) + " (" + why +
              "); wrap that operand in stop_gradient if it is meant to be constant");
}

}  // namespace

Tensor reduce_to_shape(Graph& graph, Tensor g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const size_t rank = shape.size();
  if (g.shape().size() < rank)
    throw Error("differentiate: gradient of shape " + format_shape(g.shape()) + " cannot be reduced to " +
                format_shape(shape) + " (internal rule error)");
  if (g.shape().size() > rank) {
    // Leading broadcast axes fold into one, so a batched bias gradient is one reduction.
    if (g.shape().size() > rank + 1) {
      Shape folded{-1};
      folded.insert(folded.end(), g.shape().end() - static_cast<std::ptrdiff_t>(rank), g.shape().end());
      g = graph.reshape(g, folded);
    }
    g = graph.sum(g, 0);
  }
  for (size_t i = 0; i < rank; ++i)
    if (shape[i] == 1 && g.shape()[i] != 1) g = graph.sum(g, static_cast<int64_t>(i), true);
  if (g.shape() != shape)
    throw Error("differentiate: gradient of shape " + format_shape(g.shape()) + " does not match operand shape " +
                format_shape(shape) + " (internal rule error)");
  return g;
}

Grads gradient_rule(const GradientContext& c) {
  Graph& G = c.graph;
  const Tensor g = c.grad;
  const Tensor out = c.out;
  const auto& in = c.inputs;
  const Attrs& at = c.node.attrs;
  auto want = [&](size_t i) { return i < c.wanted.size() && c.wanted[i]; };
  auto s = [&](double v) { return scalar_like(G, v, g); };
  Grads r(in.size());

  switch (c.node.op) {
    // ---- elementwise ----------------------------------------------------------------------------
    case Op::add:
      r = {g, g};
      break;
    case Op::sub:
      r[0] = g;
      if (want(1)) r[1] = -g;
      break;
    case Op::mul:
      if (want(0)) r[0] = g * in[1];
      if (want(1)) r[1] = g * in[0];
      break;
    case Op::div:
      if (want(0)) r[0] = g / in[1];
      if (want(1)) r[1] = -(g * out) / in[1];
      break;
    case Op::neg:
      r[0] = -g;
      break;
    case Op::abs: {
      const Tensor zero = scalar_like(G, 0.0, in[0]);
      r[0] = g * (G.greater(in[0], zero) - G.greater(zero, in[0]));
      break;
    }
    case Op::exp:
      r[0] = g * out;
      break;
    case Op::log:
      r[0] = g / in[0];
      break;
    case Op::sqrt:
      r[0] = g * s(0.5) / out;
      break;
    case Op::rsqrt:  // d x^(-1/2) = -1/2 x^(-3/2) = -1/2 out³
      r[0] = g * s(-0.5) * out * out * out;
      break;
    case Op::recip:
      r[0] = -(g * out * out);
      break;
    case Op::pow:
      r[0] = g * s(at.exponent) * G.pow(in[0], at.exponent - 1.0);
      break;
    case Op::relu:
      // The mask from the output (relu(x) > 0 exactly where x > 0): the pre-activation then has
      // no reader but relu, so relu fuses into the kernel that produces it (one dispatch and one
      // barrier fewer per layer).
      r[0] = g * G.greater(out, scalar_like(G, 0.0, out));
      break;
    case Op::gelu: {
      // d/dx xΦ(x) = Φ(x) + x·φ(x). The table has no erf, so Φ(x) = gelu(x)/x away from zero
      // (exact to rounding) and 1/2 within 1e-6 of it (error below 4e-7).
      const Tensor x = in[0];
      const Tensor away = G.greater(G.abs(x), scalar_like(G, 1e-6, x));
      const Tensor one = scalar_like(G, 1.0, x);
      const Tensor cdf = G.where(away, out / G.where(away, x, one), scalar_like(G, 0.5, x));
      const Tensor pdf = G.exp(x * x * scalar_like(G, -0.5, x)) * scalar_like(G, 0.3989422804014327, x);
      r[0] = g * (cdf + x * pdf);
      break;
    }
    case Op::gelu_tanh: {
      // y = x/2·(1 + tanh(u)), u = c(x + 0.044715x³): y' = (1 + t)/2 + x/2·(1 − t²)·c(1 + 3·0.044715x²).
      const Tensor x = in[0];
      const double c0 = 0.7978845608028654;  // sqrt(2/π)
      const Tensor t = G.tanh((x + x * x * x * s(0.044715)) * s(c0));
      const Tensor du = (s(1.0) + x * x * s(3 * 0.044715)) * s(c0);
      r[0] = g * ((s(1.0) + t) * s(0.5) + x * s(0.5) * (s(1.0) - t * t) * du);
      break;
    }
    case Op::silu: {
      const Tensor sig = G.sigmoid(in[0]);
      r[0] = g * sig * (s(1.0) + in[0] * (s(1.0) - sig));
      break;
    }
    case Op::sigmoid:
      r[0] = g * out * (s(1.0) - out);
      break;
    case Op::tanh:
      r[0] = g * (s(1.0) - out * out);
      break;
    case Op::sin:
      r[0] = g * G.cos(in[0]);
      break;
    case Op::cos:
      r[0] = -(g * G.sin(in[0]));
      break;
    case Op::maximum:
    case Op::minimum: {
      // Ties send the gradient to the second operand.
      const Tensor first_wins =
          c.node.op == Op::maximum ? G.greater(in[0], in[1]) : G.greater(in[1], in[0]);
      if (want(0)) r[0] = g * first_wins;
      if (want(1)) r[1] = g * (s(1.0) - first_wins);
      break;
    }
    case Op::where: {
      const Tensor zero = s(0.0);
      if (want(1)) r[1] = G.where(in[0], g, zero);
      if (want(2)) r[2] = G.where(in[0], zero, g);
      break;
    }
    case Op::cast:
      // Casts to or from integers carry no gradient: differentiate() never asks for one.
      r[0] = G.cast(g, in[0].dtype());
      break;
    case Op::swiglu: {
      const Tensor gate = in[0], up = in[1];
      const Tensor sig = G.sigmoid(gate);
      if (want(0)) r[0] = g * up * sig * (s(1.0) + gate * (s(1.0) - sig));
      if (want(1)) r[1] = g * gate * sig;
      break;
    }
    case Op::dropout:
      // The same (seed, step) draws the same mask: the backward is the dropout of g.
      r[0] = G.dropout(g, in[1], in[2], at.p);
      break;

    // ---- reductions -----------------------------------------------------------------------------
    case Op::sum:
      r[0] = G.broadcast_to(with_kept_axis(G, g, c.node, in[0].shape()), in[0].shape());
      break;
    case Op::mean: {
      const double n = static_cast<double>(in[0].shape()[static_cast<size_t>(at.axis)]);
      r[0] = G.broadcast_to(with_kept_axis(G, g, c.node, in[0].shape()) / s(n), in[0].shape());
      break;
    }
    case Op::max: {
      // Ties share the gradient equally (as PyTorch's amax does).
      const Tensor x = in[0];
      const Tensor top = with_kept_axis(G, out, c.node, x.shape());
      const Tensor is_max = s(1.0) - G.greater(top, x);
      const Tensor share = is_max / G.sum(is_max, at.axis, true);
      r[0] = share * with_kept_axis(G, g, c.node, x.shape());
      break;
    }
    case Op::sum_all:
      r[0] = G.broadcast_to(g, in[0].shape());
      break;
    case Op::mean_all:
      r[0] = G.broadcast_to(g / s(static_cast<double>(num_elements(in[0].shape()))), in[0].shape());
      break;

    // ---- movement -------------------------------------------------------------------------------
    case Op::reshape:
      r[0] = G.reshape(g, in[0].shape());
      break;
    case Op::permute: {
      std::vector<int64_t> inverse(at.ints.size());
      for (size_t i = 0; i < at.ints.size(); ++i) inverse[static_cast<size_t>(at.ints[i])] = static_cast<int64_t>(i);
      r[0] = G.permute(g, inverse);
      break;
    }
    case Op::broadcast_to:
      r[0] = g;  // reduced back to the operand's shape by differentiate()
      break;
    case Op::slice: {
      // Zeros before and after the slice along its axis.
      const Shape full = in[0].shape();
      const auto axis = static_cast<size_t>(at.axis);
      std::vector<Tensor> parts;
      Shape before = full, after = full;
      before[axis] = at.ints.at(0);
      after[axis] = full[axis] - at.ints.at(1);
      if (before[axis] > 0) parts.push_back(zeros(G, before, g.dtype()));
      parts.push_back(g);
      if (after[axis] > 0) parts.push_back(zeros(G, after, g.dtype()));
      r[0] = parts.size() == 1 ? g : G.concat(parts, at.axis);
      break;
    }
    case Op::concat: {
      int64_t begin = 0;
      for (size_t i = 0; i < in.size(); ++i) {
        const int64_t size = in[i].shape()[static_cast<size_t>(at.axis)];
        if (want(i)) r[i] = G.slice(g, at.axis, begin, begin + size);
        begin += size;
      }
      break;
    }
    case Op::embedding:
      r[0] = G.scatter_add_rows(g, in[1], in[0].dim(0));
      break;
    case Op::scatter_add_rows:
      r[0] = G.embedding(g, in[1]);
      break;

    // ---- matrix products ------------------------------------------------------------------------
    case Op::matmul:
    case Op::linear: {
      // out = op(a)·op(b); each case is d/da and d/db with the transposes folded into the flags.
      const Tensor a = in[0], b = in[1];
      const bool ta = at.transpose_a, tb = at.transpose_b;
      if (want(0)) r[0] = !ta ? G.matmul(g, b, false, !tb) : G.matmul(b, g, tb, true);
      if (want(1)) r[1] = !tb ? G.matmul(a, g, !ta, false) : G.matmul(g, a, true, ta);
      if (c.node.op == Op::linear && want(2)) r[2] = g;
      break;
    }

    // ---- attention ------------------------------------------------------------------------------
    case Op::attention: {
      const AttentionOperands a = attention_operands(c, 3);
      if (a.mask_index && want(*a.mask_index))
        unsupported_operand(c, *a.mask_index, "the additive mask is treated as a constant");
      // The row log-sum-exp, computed once and shared by the three gradients, lets each of them
      // form the probabilities exp(s − lse) directly instead of recomputing softmax statistics.
      if (!want(0) && !want(1) && !want(2)) break;
      const Tensor lse = G.attention_lse(in[0], in[1], a.options, a.mask, a.offset);
      if (want(0)) r[0] = G.attention_grad_q(in[0], in[1], in[2], out, g, lse, a.options, a.mask, a.offset);
      if (want(1)) r[1] = G.attention_grad_k(in[0], in[1], in[2], out, g, lse, a.options, a.mask, a.offset);
      if (want(2)) r[2] = G.attention_grad_v(in[0], in[1], in[2], out, g, lse, a.options, a.mask, a.offset);
      break;
    }

    // ---- convolution and pooling ----------------------------------------------------------------
    case Op::conv2d: {
      const Conv2dOptions o = conv_options(at);
      if (want(0)) r[0] = G.conv2d_grad_input(g, in[1], o, spatial(in[0]));
      if (want(1)) r[1] = G.conv2d_grad_weight(in[0], g, o, spatial(in[1]));
      break;
    }
    case Op::conv2d_grad_input: {
      // Linear in both operands: dx = conv2dᵀ(dy, w), so ⟨G, dx⟩ = ⟨conv2d(G, w), dy⟩.
      const Conv2dOptions o = conv_options(at);
      if (want(0)) r[0] = G.conv2d(g, in[1], o);
      if (want(1)) r[1] = G.conv2d_grad_weight(g, in[0], o, spatial(in[1]));
      break;
    }
    case Op::conv2d_grad_weight: {
      // dw(x, dy) is bilinear: ⟨G, dw⟩ = ⟨conv2d(x, G), dy⟩.
      const Conv2dOptions o = conv_options(at);
      if (want(0)) r[0] = G.conv2d_grad_input(in[1], g, o, spatial(in[0]));
      if (want(1)) r[1] = G.conv2d(in[0], g, o);
      break;
    }
    case Op::max_pool2d:
      r[0] = G.max_pool2d_grad(in[0], g, pool_options(at));
      break;
    case Op::avg_pool2d:
      r[0] = G.avg_pool2d_grad(g, pool_options(at), spatial(in[0]));
      break;
    case Op::avg_pool2d_grad:  // linear; its adjoint is the pooling itself
      r[0] = G.avg_pool2d(g, pool_options(at));
      break;
    case Op::upsample_nearest2x:
      r[0] = G.upsample_nearest2x_grad(g);
      break;
    case Op::upsample_nearest2x_grad:
      r[0] = G.upsample_nearest2x(g);
      break;
    case Op::global_avg_pool: {
      const Tensor x = in[0];
      const double positions = static_cast<double>(num_elements(x.shape()) / (x.dim(0) * x.dim(1)));
      r[0] = G.broadcast_to(g / s(positions), x.shape());
      break;
    }

    // ---- normalisation, softmax, rope -----------------------------------------------------------
    case Op::softmax:
      r[0] = G.softmax_grad(out, g, at.axis);
      break;
    case Op::log_softmax:
      r[0] = G.log_softmax_grad(out, g, at.axis);
      break;
    case Op::softmax_grad: {
      // out = y·(dy − Σ dy·y). d/d dy = softmax_grad(y, G); d/dy = G·(dy − Σ dy·y) − dy·Σ G·y.
      const Tensor y = in[0], dy = in[1];
      if (want(0)) r[0] = g * (dy - G.sum(dy * y, at.axis, true)) - dy * G.sum(g * y, at.axis, true);
      if (want(1)) r[1] = G.softmax_grad(y, g, at.axis);
      break;
    }
    case Op::log_softmax_grad: {
      // out = dy − e^y·Σ dy. d/d dy = G − Σ G·e^y; d/dy = −G·e^y·Σ dy.
      const Tensor y = in[0], dy = in[1];
      const Tensor e = G.exp(y);
      if (want(0)) r[0] = -(g * e * G.sum(dy, at.axis, true));
      if (want(1)) r[1] = g - G.sum(g * e, at.axis, true);
      break;
    }
    case Op::layer_norm: {
      if (want(0)) r[0] = G.layer_norm_grad(in[0], in[1], g, at.eps);
      if (want(1)) r[1] = g * normalized_last_dim(G, in[0], at.eps, /*center=*/true);
      if (want(2)) r[2] = g;
      break;
    }
    case Op::rms_norm: {
      if (want(0)) r[0] = G.rms_norm_grad(in[0], in[1], g, at.eps);
      if (want(1)) r[1] = g * normalized_last_dim(G, in[0], at.eps, /*center=*/false);
      break;
    }
    case Op::group_norm: {
      const Tensor x = in[0];
      if (want(0)) r[0] = G.group_norm_grad(x, in[1], g, at.groups, at.eps);
      if (want(1)) {
        const Tensor grouped = G.reshape(x, {x.dim(0), at.groups, -1});
        const Tensor normalized = G.reshape(normalized_last_dim(G, grouped, at.eps, true), x.shape());
        r[1] = sum_per_channel(G, g * normalized);
      }
      if (want(2)) r[2] = sum_per_channel(G, g);
      break;
    }
    case Op::rope:
      r[0] = G.rope_grad(g, in[1], at.theta);
      break;
    case Op::rope_grad:  // the inverse rotation is orthogonal: its adjoint is rope itself
      r[0] = G.rope(g, in[1], at.theta);
      break;

    // ---- losses ---------------------------------------------------------------------------------
    case Op::cross_entropy_loss: {
      if (want(0)) r[0] = G.cross_entropy_grad(in[0], in[1], g, at.ignore_index);
      if (want(1)) {
        // Probability labels: loss = −mean over rows of Σ p·log_softmax(z).
        const double rows = static_cast<double>(in[0].dim(0));
        r[1] = G.log_softmax(in[0], -1) * (-g / s(rows));
      }
      break;
    }
    case Op::mse_loss: {
      const double count = static_cast<double>(num_elements(broadcast_shapes(in[0].shape(), in[1].shape(), "mse_loss")));
      const Tensor d = (in[0] - in[1]) * (g * s(2.0 / count));
      if (want(0)) r[0] = d;
      if (want(1)) r[1] = -d;
      break;
    }
    case Op::bce_with_logits: {
      // loss = mean(max(z, 0) − z·y + log(1 + e^−|z|)): d/dz = sigmoid(z) − y, d/dy = −z.
      const double count = static_cast<double>(num_elements(broadcast_shapes(in[0].shape(), in[1].shape(), "bce_with_logits")));
      const Tensor scale = g / s(count);
      if (want(0)) r[0] = (G.sigmoid(in[0]) - in[1]) * scale;
      if (want(1)) r[1] = -(in[0] * scale);
      break;
    }

    default:
      throw Error(std::string("differentiate: op ") + op_name(c.node.op) +
                  " has no gradient rule; add one to src/autodiff/gradient_table.cpp or wrap its operands in "
                  "stop_gradient");
  }
  return r;
}

}  // namespace meganeura::autodiff

namespace meganeura {

bool has_zero_derivative(Op op) { return op == Op::greater || op == Op::argmax || op == Op::stop_gradient; }

GradientSupport gradient_support(Op op) {
  switch (op) {
    case Op::input: case Op::parameter: case Op::constant: case Op::scalar:
      return GradientSupport::leaf;
    // Piecewise constant or integer-valued outputs, state updates and second derivatives that the
    // training step never needs.
    case Op::greater: case Op::argmax: case Op::stop_gradient: case Op::kv_cache_write:
    // attention_lse: a statistic saved for the attention backward, which never needs its derivative.
    case Op::attention_lse: case Op::attention_grad_q: case Op::attention_grad_k: case Op::attention_grad_v:
    case Op::max_pool2d_grad: case Op::layer_norm_grad: case Op::rms_norm_grad: case Op::group_norm_grad:
    case Op::cross_entropy_grad: case Op::top_k_top_p_mask:
      return GradientSupport::not_differentiable;
    case Op::add: case Op::sub: case Op::mul: case Op::div: case Op::neg: case Op::abs: case Op::exp:
    case Op::log: case Op::sqrt: case Op::rsqrt: case Op::recip: case Op::pow: case Op::relu: case Op::gelu:
    case Op::gelu_tanh: case Op::silu: case Op::sigmoid: case Op::tanh: case Op::sin: case Op::cos:
    case Op::maximum: case Op::minimum: case Op::where: case Op::cast: case Op::swiglu: case Op::dropout:
    case Op::sum: case Op::mean: case Op::max: case Op::sum_all: case Op::mean_all:
    case Op::reshape: case Op::permute: case Op::broadcast_to: case Op::slice: case Op::concat:
    case Op::embedding: case Op::scatter_add_rows:
    case Op::matmul: case Op::linear: case Op::attention:
    case Op::conv2d: case Op::conv2d_grad_input: case Op::conv2d_grad_weight: case Op::max_pool2d:
    case Op::avg_pool2d: case Op::avg_pool2d_grad: case Op::upsample_nearest2x: case Op::upsample_nearest2x_grad:
    case Op::global_avg_pool:
    case Op::softmax: case Op::log_softmax: case Op::softmax_grad: case Op::log_softmax_grad:
    case Op::layer_norm: case Op::rms_norm: case Op::group_norm: case Op::rope: case Op::rope_grad:
    case Op::cross_entropy_loss: case Op::mse_loss: case Op::bce_with_logits:
      return GradientSupport::rule;
    default:
      return GradientSupport::missing;
  }
}

}  // namespace meganeura
