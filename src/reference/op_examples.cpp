// One small instance per op. The switch has no default, so the compiler flags (-Wswitch) an op
// added to the table without an example here.
#include "reference/op_examples.h"

namespace meganeura::reference {

namespace {

class Builder {
 public:
  explicit Builder(OpExample& ex, uint64_t seed) : ex_(ex), state_(seed * 0x9e3779b97f4a7c15ULL + 1) {}

  // A float input of uniform values in [low, high).
  Tensor real(Shape shape, double low = -1.0, double high = 1.0) {
    const std::string name = "x" + std::to_string(count_++);
    Tensor t = ex_.graph.input(name, shape);
    std::vector<double> v(static_cast<size_t>(num_elements(shape)));
    for (double& x : v) x = low + (high - low) * uniform();
    ex_.feeds[name] = v;
    return t;
  }
  // An i32 input of integers in [0, limit).
  Tensor ids(Shape shape, int64_t limit) {
    const std::string name = "x" + std::to_string(count_++);
    Tensor t = ex_.graph.input(name, shape, DType::i32);
    std::vector<double> v(static_cast<size_t>(num_elements(shape)));
    for (double& x : v) x = static_cast<double>(static_cast<int64_t>(uniform() * static_cast<double>(limit)));
    ex_.feeds[name] = v;
    return t;
  }
  Tensor index(int64_t value) {
    const std::string name = "x" + std::to_string(count_++);
    Tensor t = ex_.graph.input(name, {1}, DType::i32);
    ex_.feeds[name] = {static_cast<double>(value)};
    return t;
  }
  // 0/1 values, both present.
  Tensor mask(Shape shape) {
    const std::string name = "x" + std::to_string(count_++);
    Tensor t = ex_.graph.input(name, shape);
    std::vector<double> v(static_cast<size_t>(num_elements(shape)));
    for (size_t i = 0; i < v.size(); ++i) v[i] = i % 2 == 0 ? 1.0 : (uniform() < 0.5 ? 1.0 : 0.0);
    if (v.size() > 1) v[1] = 0.0;
    ex_.feeds[name] = v;
    return t;
  }

 private:
  double uniform() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    return static_cast<double>(state_ >> 11) / 9007199254740992.0;
  }
  OpExample& ex_;
  uint64_t state_;
  int count_ = 0;
};

Tensor build(Graph& g, Builder& b, Op op) {
  const Conv2dOptions conv{.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}, .groups = 2};
  const Pool2dOptions pool{.kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1}};
  const AttentionOptions causal{.causal = true, .scale = 0.0};
  switch (op) {
    case Op::input: return b.real({2, 3});
    case Op::parameter: return g.parameter("w", {3, 2}, Init::normal(0.0, 1.0));
    case Op::constant: return g.constant({1.5f, -2.0f, 0.25f}, {3});
    case Op::scalar: return g.scalar(2.5);
    case Op::add: return g.add(b.real({2, 3}), b.real({3}));
    case Op::sub: return g.sub(b.real({2, 1}), b.real({3}));
    case Op::mul: return g.mul(b.real({2, 3}), b.real({2, 3}));
    case Op::div: return g.div(b.real({2, 3}), b.real({3}, 0.5, 2.0));
    case Op::maximum: return g.maximum(b.real({2, 3}), b.real({2, 3}));
    case Op::minimum: return g.minimum(b.real({2, 3}), b.real({1, 3}));
    case Op::greater: return g.greater(b.real({2, 3}), b.real({3}));
    case Op::neg: return g.neg(b.real({2, 3}));
    case Op::abs: return g.abs(b.real({2, 3}));
    case Op::exp: return g.exp(b.real({2, 3}));
    case Op::log: return g.log(b.real({2, 3}, 0.5, 2.0));
    case Op::sqrt: return g.sqrt(b.real({2, 3}, 0.5, 2.0));
    case Op::rsqrt: return g.rsqrt(b.real({2, 3}, 0.5, 2.0));
    case Op::recip: return g.recip(b.real({2, 3}, 0.5, 2.0));
    case Op::pow: return g.pow(b.real({2, 3}, 0.5, 2.0), 1.5);
    case Op::relu: return g.relu(b.real({2, 3}));
    case Op::gelu: return g.gelu(b.real({2, 3}));
    case Op::gelu_tanh: return g.gelu_tanh(b.real({2, 3}));
    case Op::silu: return g.silu(b.real({2, 3}));
    case Op::sigmoid: return g.sigmoid(b.real({2, 3}));
    case Op::tanh: return g.tanh(b.real({2, 3}));
    case Op::sin: return g.sin(b.real({2, 3}));
    case Op::cos: return g.cos(b.real({2, 3}));
    case Op::where: return g.where(b.mask({2, 3}), b.real({2, 3}), b.real({3}));
    case Op::cast: return g.cast(b.real({2, 3}), DType::f16);
    case Op::stop_gradient: return g.stop_gradient(b.real({2, 3}));
    case Op::swiglu: return g.swiglu(b.real({2, 3}), b.real({2, 3}));
    case Op::dropout: return g.dropout(b.real({4, 5}), b.index(7), b.index(3), 0.3);
    case Op::sum: return g.sum(b.real({2, 3, 4}), 1);
    case Op::mean: return g.mean(b.real({2, 3, 4}), -1, true);
    case Op::max: return g.max(b.real({2, 3, 4}), 0);
    case Op::argmax: return g.argmax(b.real({2, 3, 4}), 1);
    case Op::sum_all: return g.sum_all(b.real({2, 3}));
    case Op::mean_all: return g.mean_all(b.real({2, 3}));
    case Op::reshape: return g.reshape(b.real({2, 3, 4}), {6, -1});
    case Op::permute: return g.permute(b.real({2, 3, 4}), {2, 0, 1});
    case Op::broadcast_to: return g.broadcast_to(b.real({3, 1}), {2, 3, 4});
    case Op::slice: return g.slice(b.real({2, 5, 3}), 1, 1, 4);
    case Op::concat: return g.concat({b.real({2, 1, 3}), b.real({2, 2, 3})}, 1);
    case Op::embedding: return g.embedding(b.real({5, 3}), b.ids({2, 2}, 5));
    case Op::scatter_add_rows: return g.scatter_add_rows(b.real({2, 3, 4}), b.ids({2, 3}, 4), 4);
    case Op::kv_cache_write: return g.kv_cache_write(b.real({1, 2, 5, 3}), b.real({1, 2, 2, 3}), b.index(2));
    case Op::matmul: return g.matmul(b.real({2, 4, 3}), b.real({5, 4}), true, true);
    case Op::linear: return g.linear(b.real({2, 3, 4}), b.real({5, 4}), b.real({5}));
    case Op::attention:
      return g.attention(b.real({1, 4, 3, 4}), b.real({1, 2, 5, 4}), b.real({1, 2, 5, 4}), causal, b.real({3, 5}));
    case Op::attention_lse: return g.attention_lse(b.real({1, 4, 3, 4}), b.real({1, 2, 5, 4}), causal, b.real({3, 5}));
    case Op::attention_grad_q:
    case Op::attention_grad_k:
    case Op::attention_grad_v: {
      Tensor q = b.real({1, 4, 3, 4}), k = b.real({1, 2, 5, 4}), v = b.real({1, 2, 5, 4}), mask = b.real({3, 5});
      Tensor out = g.attention(q, k, v, causal, mask);
      Tensor lse = g.attention_lse(q, k, causal, mask);
      Tensor dout = b.real({1, 4, 3, 4});
      if (op == Op::attention_grad_q) return g.attention_grad_q(q, k, v, out, dout, lse, causal, mask);
      if (op == Op::attention_grad_k) return g.attention_grad_k(q, k, v, out, dout, lse, causal, mask);
      return g.attention_grad_v(q, k, v, out, dout, lse, causal, mask);
    }
    case Op::conv2d: return g.conv2d(b.real({2, 4, 5, 6}), b.real({6, 2, 3, 2}), conv);
    case Op::conv2d_grad_input: return g.conv2d_grad_input(b.real({2, 6, 3, 4}), b.real({6, 2, 3, 2}), conv, {5, 6});
    case Op::conv2d_grad_weight: return g.conv2d_grad_weight(b.real({2, 4, 5, 6}), b.real({2, 6, 3, 4}), conv, {3, 2});
    case Op::max_pool2d: return g.max_pool2d(b.real({1, 2, 5, 4}), pool);
    case Op::max_pool2d_grad: return g.max_pool2d_grad(b.real({1, 2, 5, 4}), b.real({1, 2, 3, 5}), pool);
    case Op::avg_pool2d: return g.avg_pool2d(b.real({1, 2, 5, 4}), pool);
    case Op::avg_pool2d_grad: return g.avg_pool2d_grad(b.real({1, 2, 3, 5}), pool, {5, 4});
    case Op::upsample_nearest2x: return g.upsample_nearest2x(b.real({1, 2, 2, 3}));
    case Op::upsample_nearest2x_grad: return g.upsample_nearest2x_grad(b.real({1, 2, 4, 6}));
    case Op::global_avg_pool: return g.global_avg_pool(b.real({2, 3, 2, 2}));
    case Op::softmax: return g.softmax(b.real({2, 5}));
    case Op::log_softmax: return g.log_softmax(b.real({3, 2}), 0);
    case Op::softmax_grad: return g.softmax_grad(g.softmax(b.real({2, 5})), b.real({2, 5}));
    case Op::log_softmax_grad: return g.log_softmax_grad(g.log_softmax(b.real({2, 5})), b.real({2, 5}));
    case Op::layer_norm: return g.layer_norm(b.real({2, 3, 4}), b.real({4}), b.real({4}));
    case Op::layer_norm_grad: return g.layer_norm_grad(b.real({2, 3, 4}), b.real({4}), b.real({2, 3, 4}));
    case Op::rms_norm: return g.rms_norm(b.real({2, 3, 4}), b.real({4}));
    case Op::rms_norm_grad: return g.rms_norm_grad(b.real({2, 3, 4}), b.real({4}), b.real({2, 3, 4}));
    case Op::group_norm: return g.group_norm(b.real({2, 4, 3, 3}), b.real({4}), b.real({4}), 2);
    case Op::group_norm_grad: return g.group_norm_grad(b.real({2, 4, 3, 3}), b.real({4}), b.real({2, 4, 3, 3}), 2);
    case Op::rope: return g.rope(b.real({1, 2, 3, 4}), b.index(2));
    case Op::rope_grad: return g.rope_grad(b.real({1, 2, 3, 4}), b.index(2));
    case Op::top_k_top_p_mask: return g.top_k_top_p_mask(b.real({3, 7}, -3.0, 3.0), b.index(4), g.scalar(0.8));
    case Op::cross_entropy_loss: return g.cross_entropy_loss(b.real({3, 4}), b.ids({3}, 4));
    case Op::cross_entropy_grad: return g.cross_entropy_grad(b.real({3, 4}), b.ids({3}, 4), b.real({}, 0.5, 2.0));
    case Op::mse_loss: return g.mse_loss(b.real({2, 3}), b.real({2, 3}));
    case Op::bce_with_logits: return g.bce_with_logits(b.real({2, 3}), b.real({2, 3}, 0.0, 1.0));
  }
  throw Error(std::string("op_example: no example for op ") + op_name(op) + " (add one in src/reference/op_examples.cpp)");
}

}  // namespace

OpExample op_example(Op op, uint64_t seed) {
  OpExample ex;
  Builder b(ex, seed);
  Tensor t = build(ex.graph, b, op);
  ex.node = t.id;
  ex.graph.set_outputs({t});
  return ex;
}

}  // namespace meganeura::reference
