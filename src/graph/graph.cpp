// Graph construction: leaves, builders, names and outputs. Shape rules live in shape_inference.cpp.
#include <algorithm>

#include "meganeura/graph.h"

namespace meganeura {

namespace {

int64_t normalize_axis(int64_t axis, size_t rank, const char* op) {
  const auto r = static_cast<int64_t>(rank);
  const int64_t a = axis < 0 ? axis + r : axis;
  if (a < 0 || a >= r)
    throw Error(std::string(op) + ": axis " + std::to_string(axis) + " is out of range for a tensor of rank " +
                std::to_string(rank));
  return a;
}

// Ops whose attrs.axis names a dim of their first input (normalised to non-negative in add_node).
bool uses_axis(Op op) {
  switch (op) {
    case Op::sum: case Op::mean: case Op::max: case Op::argmax: case Op::slice: case Op::concat:
    case Op::softmax: case Op::log_softmax: case Op::softmax_grad: case Op::log_softmax_grad:
      return true;
    default:
      return false;
  }
}

std::vector<int64_t> conv_ints(const Conv2dOptions& o) {
  return {o.stride[0], o.stride[1], o.padding[0], o.padding[1], o.dilation[0], o.dilation[1]};
}

std::vector<int64_t> pool_ints(const Pool2dOptions& o) {
  return {o.kernel[0], o.kernel[1], o.stride[0], o.stride[1], o.padding[0], o.padding[1]};
}

// Edit distance, for "did you mean" in unknown-name errors.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

// ---- Tensor ----------------------------------------------------------------------------------------

const Node& Tensor::node() const {
  if (!graph) throw Error("Tensor: empty handle (default-constructed); build it with a Graph method");
  return graph->node(id);
}
const Shape& Tensor::shape() const { return node().shape; }
DType Tensor::dtype() const { return node().dtype; }
int64_t Tensor::dim(int64_t axis) const { return shape()[static_cast<size_t>(normalize_axis(axis, shape().size(), "dim"))]; }

static Graph& graph_of(Tensor a) {
  if (!a.graph) throw Error("Tensor: empty handle (default-constructed); build it with a Graph method");
  return *a.graph;
}

Tensor operator+(Tensor a, Tensor b) { return graph_of(a).add(a, b); }
Tensor operator-(Tensor a, Tensor b) { return graph_of(a).sub(a, b); }
Tensor operator*(Tensor a, Tensor b) { return graph_of(a).mul(a, b); }
Tensor operator/(Tensor a, Tensor b) { return graph_of(a).div(a, b); }
Tensor operator-(Tensor a) { return graph_of(a).neg(a); }
Tensor operator+(Tensor a, double b) { return a + graph_of(a).scalar(b, a.dtype()); }
Tensor operator-(Tensor a, double b) { return a - graph_of(a).scalar(b, a.dtype()); }
Tensor operator*(Tensor a, double b) { return a * graph_of(a).scalar(b, a.dtype()); }
Tensor operator/(Tensor a, double b) { return a / graph_of(a).scalar(b, a.dtype()); }
Tensor operator+(double a, Tensor b) { return graph_of(b).scalar(a, b.dtype()) + b; }
Tensor operator-(double a, Tensor b) { return graph_of(b).scalar(a, b.dtype()) - b; }
Tensor operator*(double a, Tensor b) { return graph_of(b).scalar(a, b.dtype()) * b; }
Tensor operator/(double a, Tensor b) { return graph_of(b).scalar(a, b.dtype()) / b; }

// ---- structure -------------------------------------------------------------------------------------

const Node& Graph::node(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= nodes_.size())
    throw Error("Graph::node: id " + std::to_string(id) + " is out of range (the graph has " +
                std::to_string(nodes_.size()) + " nodes)");
  return nodes_[static_cast<size_t>(id)];
}

Tensor Graph::tensor(int32_t id) {
  node(id);
  return Tensor{this, id};
}

void Graph::check_own(Tensor t, const char* what) const {
  if (t.graph != this)
    throw Error(std::string(what) + ": operand %" + std::to_string(t.id) +
                (t.graph ? " belongs to another graph" : " is an empty handle") +
                "; build every operand with the same Graph");
  node(t.id);
}

void Graph::register_name(const std::string& name, int32_t id) {
  if (name.empty()) return;
  auto [it, inserted] = by_name_.emplace(name, id);
  if (!inserted)
    throw Error("duplicate name \"" + name + "\": already used by node %" + std::to_string(it->second) + " (" +
                op_name(nodes_[static_cast<size_t>(it->second)].op) + "); names must be unique in a graph");
}

int32_t Graph::find(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it != by_name_.end()) return it->second;
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const auto& [other, id] : by_name_) {
    const size_t d = edit_distance(name, other);
    if (d < best_distance) best_distance = d, best = other;
  }
  std::string message = "unknown name \"" + name + "\": no input, parameter or named node has it";
  if (!best.empty() && best_distance <= std::max<size_t>(3, name.size() / 3))
    message += " (did you mean \"" + best + "\"?)";
  throw Error(message);
}

void Graph::set_name(Tensor t, const std::string& name) {
  check_own(t, "set_name");
  if (name.empty()) throw Error("set_name: the name is empty");
  Node& n = nodes_[static_cast<size_t>(t.id)];
  if (n.name == name) return;
  register_name(name, t.id);
  if (!n.name.empty()) by_name_.erase(n.name);
  n.name = name;
}

void Graph::set_outputs(const std::vector<Tensor>& outputs) {
  if (outputs.empty()) throw Error("set_outputs: the list is empty; a graph needs at least one output");
  std::vector<int32_t> ids;
  for (const Tensor& t : outputs) {
    check_own(t, "set_outputs");
    ids.push_back(t.id);
  }
  outputs_ = std::move(ids);
  outputs_set_ = true;
}

const std::vector<int32_t>& Graph::outputs() const {
  if (!outputs_set_)
    throw Error("graph has no outputs: call Graph::set_outputs({...}) with the tensors to compute");
  return outputs_;
}

std::vector<int32_t> Graph::inputs() const {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].op == Op::input) ids.push_back(static_cast<int32_t>(i));
  return ids;
}

std::vector<int32_t> Graph::parameters() const {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].op == Op::parameter) ids.push_back(static_cast<int32_t>(i));
  return ids;
}

Tensor Graph::add_node(Node node) {
  const char* name = op_name(node.op);
  const int arity = op_arity(node.op);
  if (arity >= 0 && node.inputs.size() != static_cast<size_t>(arity))
    throw Error(std::string(name) + ": expects " + std::to_string(arity) + " inputs, got " +
                std::to_string(node.inputs.size()));
  std::vector<TensorType> types;
  for (int32_t id : node.inputs) {
    if (id < 0 || static_cast<size_t>(id) >= nodes_.size())
      throw Error(std::string(name) + ": input id " + std::to_string(id) + " does not name an earlier node (graph has " +
                  std::to_string(nodes_.size()) + " nodes)");
    const Node& in = nodes_[static_cast<size_t>(id)];
    types.push_back({in.shape, in.dtype});
  }
  if (op_category(node.op) == OpCategory::leaf) {
    for (int64_t d : node.shape)
      if (d < 0) throw Error(std::string(name) + " \"" + node.name + "\": negative dimension in shape " + format_shape(node.shape));
    if ((node.op == Op::input || node.op == Op::parameter) && node.name.empty())
      throw Error(std::string(name) + ": a name is required");
    if (node.op == Op::constant && node.data.size() != static_cast<size_t>(num_elements(node.shape)))
      throw Error("constant: " + std::to_string(node.data.size()) + " values given for shape " + format_shape(node.shape) +
                  ", which holds " + std::to_string(num_elements(node.shape)));
    if (node.op == Op::scalar) {
      node.shape = {};
      node.dtype = node.attrs.dtype;
    }
  } else {
    if (uses_axis(node.op) && !types.empty())
      node.attrs.axis = normalize_axis(node.attrs.axis, types[0].shape.size(), name);
    TensorType t = infer_type(node.op, node.attrs, types);
    node.shape = std::move(t.shape);
    node.dtype = t.dtype;
  }
  const auto id = static_cast<int32_t>(nodes_.size());
  register_name(node.name, id);
  nodes_.push_back(std::move(node));
  return Tensor{this, id};
}

// ---- leaves ----------------------------------------------------------------------------------------

Tensor Graph::input(const std::string& name, Shape shape, DType dtype) {
  Node n;
  n.op = Op::input;
  n.name = name;
  n.shape = std::move(shape);
  n.dtype = dtype;
  return add_node(std::move(n));
}

Tensor Graph::parameter(const std::string& name, Shape shape, Init init, bool trainable, DType dtype) {
  Node n;
  n.op = Op::parameter;
  n.name = name;
  n.shape = std::move(shape);
  n.dtype = dtype;
  n.init = init;
  n.trainable = trainable;
  return add_node(std::move(n));
}

Tensor Graph::constant(std::vector<float> data, Shape shape, DType dtype) {
  Node n;
  n.op = Op::constant;
  n.shape = std::move(shape);
  n.dtype = dtype;
  n.data = std::move(data);
  return add_node(std::move(n));
}

Tensor Graph::scalar(double value, DType dtype) {
  Node n;
  n.op = Op::scalar;
  n.attrs.value = value;
  n.attrs.dtype = dtype;
  return add_node(std::move(n));
}

// ---- builders ----------------------------------------------------------------------------------------

Tensor Graph::unary(Op op, Tensor x, Attrs attrs) {
  check_own(x, op_name(op));
  Node n;
  n.op = op;
  n.inputs = {x.id};
  n.attrs = std::move(attrs);
  return add_node(std::move(n));
}

Tensor Graph::binary(Op op, Tensor a, Tensor b, Attrs attrs) {
  check_own(a, op_name(op));
  check_own(b, op_name(op));
  Node n;
  n.op = op;
  n.inputs = {a.id, b.id};
  n.attrs = std::move(attrs);
  return add_node(std::move(n));
}

Tensor Graph::add(Tensor a, Tensor b) { return binary(Op::add, a, b); }
Tensor Graph::sub(Tensor a, Tensor b) { return binary(Op::sub, a, b); }
Tensor Graph::mul(Tensor a, Tensor b) { return binary(Op::mul, a, b); }
Tensor Graph::div(Tensor a, Tensor b) { return binary(Op::div, a, b); }
Tensor Graph::maximum(Tensor a, Tensor b) { return binary(Op::maximum, a, b); }
Tensor Graph::minimum(Tensor a, Tensor b) { return binary(Op::minimum, a, b); }
Tensor Graph::greater(Tensor a, Tensor b) { return binary(Op::greater, a, b); }
Tensor Graph::neg(Tensor x) { return unary(Op::neg, x); }
Tensor Graph::abs(Tensor x) { return unary(Op::abs, x); }
Tensor Graph::exp(Tensor x) { return unary(Op::exp, x); }
Tensor Graph::log(Tensor x) { return unary(Op::log, x); }
Tensor Graph::sqrt(Tensor x) { return unary(Op::sqrt, x); }
Tensor Graph::rsqrt(Tensor x) { return unary(Op::rsqrt, x); }
Tensor Graph::recip(Tensor x) { return unary(Op::recip, x); }
Tensor Graph::pow(Tensor x, double exponent) {
  Attrs a;
  a.exponent = exponent;
  return unary(Op::pow, x, a);
}
Tensor Graph::relu(Tensor x) { return unary(Op::relu, x); }
Tensor Graph::gelu(Tensor x) { return unary(Op::gelu, x); }
Tensor Graph::gelu_tanh(Tensor x) { return unary(Op::gelu_tanh, x); }
Tensor Graph::silu(Tensor x) { return unary(Op::silu, x); }
Tensor Graph::sigmoid(Tensor x) { return unary(Op::sigmoid, x); }
Tensor Graph::tanh(Tensor x) { return unary(Op::tanh, x); }
Tensor Graph::sin(Tensor x) { return unary(Op::sin, x); }
Tensor Graph::cos(Tensor x) { return unary(Op::cos, x); }
Tensor Graph::stop_gradient(Tensor x) { return unary(Op::stop_gradient, x); }
Tensor Graph::cast(Tensor x, DType to) {
  Attrs a;
  a.dtype = to;
  return unary(Op::cast, x, a);
}
Tensor Graph::where(Tensor condition, Tensor a, Tensor b) {
  for (Tensor t : {condition, a, b}) check_own(t, "where");
  Node n;
  n.op = Op::where;
  n.inputs = {condition.id, a.id, b.id};
  return add_node(std::move(n));
}
Tensor Graph::swiglu(Tensor gate, Tensor up) { return binary(Op::swiglu, gate, up); }
Tensor Graph::dropout(Tensor x, Tensor seed, Tensor step, double p) {
  for (Tensor t : {x, seed, step}) check_own(t, "dropout");
  Node n;
  n.op = Op::dropout;
  n.inputs = {x.id, seed.id, step.id};
  n.attrs.p = p;
  return add_node(std::move(n));
}

static Attrs reduce_attrs(int64_t axis, bool keepdim) {
  Attrs a;
  a.axis = axis;
  a.keepdim = keepdim;
  return a;
}
Tensor Graph::sum(Tensor x, int64_t axis, bool keepdim) { return unary(Op::sum, x, reduce_attrs(axis, keepdim)); }
Tensor Graph::mean(Tensor x, int64_t axis, bool keepdim) { return unary(Op::mean, x, reduce_attrs(axis, keepdim)); }
Tensor Graph::max(Tensor x, int64_t axis, bool keepdim) { return unary(Op::max, x, reduce_attrs(axis, keepdim)); }
Tensor Graph::argmax(Tensor x, int64_t axis, bool keepdim) { return unary(Op::argmax, x, reduce_attrs(axis, keepdim)); }
Tensor Graph::sum_all(Tensor x) { return unary(Op::sum_all, x); }
Tensor Graph::mean_all(Tensor x) { return unary(Op::mean_all, x); }

Tensor Graph::reshape(Tensor x, Shape shape) {
  Attrs a;
  a.ints = std::move(shape);
  return unary(Op::reshape, x, a);
}
Tensor Graph::permute(Tensor x, std::vector<int64_t> perm) {
  Attrs a;
  a.ints = std::move(perm);
  return unary(Op::permute, x, a);
}
Tensor Graph::transpose(Tensor x, int64_t dim0, int64_t dim1) {
  check_own(x, "transpose");
  const size_t rank = x.shape().size();
  const int64_t d0 = normalize_axis(dim0, rank, "transpose");
  const int64_t d1 = normalize_axis(dim1, rank, "transpose");
  std::vector<int64_t> perm(rank);
  for (size_t i = 0; i < rank; ++i) perm[i] = static_cast<int64_t>(i);
  std::swap(perm[static_cast<size_t>(d0)], perm[static_cast<size_t>(d1)]);
  return permute(x, perm);
}
Tensor Graph::broadcast_to(Tensor x, Shape shape) {
  Attrs a;
  a.ints = std::move(shape);
  return unary(Op::broadcast_to, x, a);
}
Tensor Graph::slice(Tensor x, int64_t axis, int64_t begin, int64_t end) {
  Attrs a;
  a.axis = axis;
  a.ints = {begin, end};
  return unary(Op::slice, x, a);
}
Tensor Graph::concat(const std::vector<Tensor>& parts, int64_t axis) {
  if (parts.empty()) throw Error("concat: no tensors given; it needs at least one");
  Node n;
  n.op = Op::concat;
  for (Tensor t : parts) {
    check_own(t, "concat");
    n.inputs.push_back(t.id);
  }
  n.attrs.axis = axis;
  return add_node(std::move(n));
}
std::vector<Tensor> Graph::split(Tensor x, int64_t axis, const std::vector<int64_t>& sizes) {
  check_own(x, "split");
  const int64_t a = normalize_axis(axis, x.shape().size(), "split");
  const int64_t dim = x.shape()[static_cast<size_t>(a)];
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) throw Error("split: negative size " + std::to_string(s) + " in " + format_shape(sizes));
    total += s;
  }
  if (total != dim)
    throw Error("split: sizes " + format_shape(sizes) + " add up to " + std::to_string(total) + " but axis " +
                std::to_string(a) + " of " + format_shape(x.shape()) + " has " + std::to_string(dim));
  std::vector<Tensor> out;
  int64_t begin = 0;
  for (int64_t s : sizes) {
    out.push_back(slice(x, a, begin, begin + s));
    begin += s;
  }
  return out;
}
Tensor Graph::embedding(Tensor table, Tensor ids) { return binary(Op::embedding, table, ids); }
Tensor Graph::scatter_add_rows(Tensor src, Tensor ids, int64_t num_rows) {
  Attrs a;
  a.ints = {num_rows};
  return binary(Op::scatter_add_rows, src, ids, a);
}
Tensor Graph::kv_cache_write(Tensor cache, Tensor update, Tensor offset) {
  for (Tensor t : {cache, update, offset}) check_own(t, "kv_cache_write");
  Node n;
  n.op = Op::kv_cache_write;
  n.inputs = {cache.id, update.id, offset.id};
  return add_node(std::move(n));
}

Tensor Graph::matmul(Tensor a, Tensor b, bool transpose_a, bool transpose_b) {
  Attrs at;
  at.transpose_a = transpose_a;
  at.transpose_b = transpose_b;
  return binary(Op::matmul, a, b, at);
}
Tensor Graph::linear(Tensor x, Tensor weight, Tensor bias, bool transpose_a, bool transpose_b) {
  for (Tensor t : {x, weight, bias}) check_own(t, "linear");
  Node n;
  n.op = Op::linear;
  n.inputs = {x.id, weight.id, bias.id};
  n.attrs.transpose_a = transpose_a;
  n.attrs.transpose_b = transpose_b;
  return add_node(std::move(n));
}

Tensor Graph::attention_like(Op op, std::vector<Tensor> tensors, AttentionOptions options, std::optional<Tensor> mask,
                             std::optional<Tensor> position_offset) {
  if (mask) tensors.push_back(*mask);
  if (position_offset) tensors.push_back(*position_offset);
  Node n;
  n.op = op;
  for (Tensor t : tensors) {
    check_own(t, op_name(op));
    n.inputs.push_back(t.id);
  }
  n.attrs.causal = options.causal;
  n.attrs.scale = options.scale;
  return add_node(std::move(n));
}
Tensor Graph::attention(Tensor q, Tensor k, Tensor v, AttentionOptions options, std::optional<Tensor> mask,
                        std::optional<Tensor> position_offset) {
  return attention_like(Op::attention, {q, k, v}, options, mask, position_offset);
}
Tensor Graph::attention_lse(Tensor q, Tensor k, AttentionOptions options, std::optional<Tensor> mask,
                            std::optional<Tensor> position_offset) {
  return attention_like(Op::attention_lse, {q, k}, options, mask, position_offset);
}
Tensor Graph::attention_grad_q(Tensor q, Tensor k, Tensor v, Tensor out, Tensor dout, Tensor lse,
                               AttentionOptions options, std::optional<Tensor> mask,
                               std::optional<Tensor> position_offset) {
  return attention_like(Op::attention_grad_q, {q, k, v, out, dout, lse}, options, mask, position_offset);
}
Tensor Graph::attention_grad_k(Tensor q, Tensor k, Tensor v, Tensor out, Tensor dout, Tensor lse,
                               AttentionOptions options, std::optional<Tensor> mask,
                               std::optional<Tensor> position_offset) {
  return attention_like(Op::attention_grad_k, {q, k, v, out, dout, lse}, options, mask, position_offset);
}
Tensor Graph::attention_grad_v(Tensor q, Tensor k, Tensor v, Tensor out, Tensor dout, Tensor lse,
                               AttentionOptions options, std::optional<Tensor> mask,
                               std::optional<Tensor> position_offset) {
  return attention_like(Op::attention_grad_v, {q, k, v, out, dout, lse}, options, mask, position_offset);
}

Tensor Graph::conv2d(Tensor x, Tensor weight, Conv2dOptions options) {
  Attrs a;
  a.ints = conv_ints(options);
  a.groups = options.groups;
  return binary(Op::conv2d, x, weight, a);
}
Tensor Graph::conv2d_grad_input(Tensor dy, Tensor weight, Conv2dOptions options, std::array<int64_t, 2> input_hw) {
  Attrs a;
  a.ints = conv_ints(options);
  a.ints.insert(a.ints.end(), input_hw.begin(), input_hw.end());
  a.groups = options.groups;
  return binary(Op::conv2d_grad_input, dy, weight, a);
}
Tensor Graph::conv2d_grad_weight(Tensor x, Tensor dy, Conv2dOptions options, std::array<int64_t, 2> kernel_hw) {
  Attrs a;
  a.ints = conv_ints(options);
  a.ints.insert(a.ints.end(), kernel_hw.begin(), kernel_hw.end());
  a.groups = options.groups;
  return binary(Op::conv2d_grad_weight, x, dy, a);
}
Tensor Graph::max_pool2d(Tensor x, Pool2dOptions options) {
  Attrs a;
  a.ints = pool_ints(options);
  return unary(Op::max_pool2d, x, a);
}
Tensor Graph::max_pool2d_grad(Tensor x, Tensor dy, Pool2dOptions options) {
  Attrs a;
  a.ints = pool_ints(options);
  return binary(Op::max_pool2d_grad, x, dy, a);
}
Tensor Graph::avg_pool2d(Tensor x, Pool2dOptions options) {
  Attrs a;
  a.ints = pool_ints(options);
  return unary(Op::avg_pool2d, x, a);
}
Tensor Graph::avg_pool2d_grad(Tensor dy, Pool2dOptions options, std::array<int64_t, 2> input_hw) {
  Attrs a;
  a.ints = pool_ints(options);
  a.ints.insert(a.ints.end(), input_hw.begin(), input_hw.end());
  return unary(Op::avg_pool2d_grad, dy, a);
}
Tensor Graph::upsample_nearest2x(Tensor x) { return unary(Op::upsample_nearest2x, x); }
Tensor Graph::upsample_nearest2x_grad(Tensor dy) { return unary(Op::upsample_nearest2x_grad, dy); }
Tensor Graph::global_avg_pool(Tensor x) { return unary(Op::global_avg_pool, x); }

static Attrs axis_attrs(int64_t axis) {
  Attrs a;
  a.axis = axis;
  return a;
}
static Attrs eps_attrs(double eps) {
  Attrs a;
  a.eps = eps;
  return a;
}
Tensor Graph::softmax(Tensor x, int64_t axis) { return unary(Op::softmax, x, axis_attrs(axis)); }
Tensor Graph::log_softmax(Tensor x, int64_t axis) { return unary(Op::log_softmax, x, axis_attrs(axis)); }
Tensor Graph::softmax_grad(Tensor y, Tensor dy, int64_t axis) { return binary(Op::softmax_grad, y, dy, axis_attrs(axis)); }
Tensor Graph::log_softmax_grad(Tensor y, Tensor dy, int64_t axis) {
  return binary(Op::log_softmax_grad, y, dy, axis_attrs(axis));
}

Tensor Graph::layer_norm(Tensor x, Tensor weight, Tensor bias, double eps) {
  for (Tensor t : {x, weight, bias}) check_own(t, "layer_norm");
  Node n;
  n.op = Op::layer_norm;
  n.inputs = {x.id, weight.id, bias.id};
  n.attrs = eps_attrs(eps);
  return add_node(std::move(n));
}
Tensor Graph::layer_norm_grad(Tensor x, Tensor weight, Tensor dy, double eps) {
  for (Tensor t : {x, weight, dy}) check_own(t, "layer_norm_grad");
  Node n;
  n.op = Op::layer_norm_grad;
  n.inputs = {x.id, weight.id, dy.id};
  n.attrs = eps_attrs(eps);
  return add_node(std::move(n));
}
Tensor Graph::rms_norm(Tensor x, Tensor weight, double eps) { return binary(Op::rms_norm, x, weight, eps_attrs(eps)); }
Tensor Graph::rms_norm_grad(Tensor x, Tensor weight, Tensor dy, double eps) {
  for (Tensor t : {x, weight, dy}) check_own(t, "rms_norm_grad");
  Node n;
  n.op = Op::rms_norm_grad;
  n.inputs = {x.id, weight.id, dy.id};
  n.attrs = eps_attrs(eps);
  return add_node(std::move(n));
}
Tensor Graph::group_norm(Tensor x, Tensor weight, Tensor bias, int64_t groups, double eps) {
  for (Tensor t : {x, weight, bias}) check_own(t, "group_norm");
  Node n;
  n.op = Op::group_norm;
  n.inputs = {x.id, weight.id, bias.id};
  n.attrs = eps_attrs(eps);
  n.attrs.groups = groups;
  return add_node(std::move(n));
}
Tensor Graph::group_norm_grad(Tensor x, Tensor weight, Tensor dy, int64_t groups, double eps) {
  for (Tensor t : {x, weight, dy}) check_own(t, "group_norm_grad");
  Node n;
  n.op = Op::group_norm_grad;
  n.inputs = {x.id, weight.id, dy.id};
  n.attrs = eps_attrs(eps);
  n.attrs.groups = groups;
  return add_node(std::move(n));
}
Tensor Graph::rope(Tensor x, Tensor position_offset, double theta) {
  Attrs a;
  a.theta = theta;
  return binary(Op::rope, x, position_offset, a);
}
Tensor Graph::rope_grad(Tensor dy, Tensor position_offset, double theta) {
  Attrs a;
  a.theta = theta;
  return binary(Op::rope_grad, dy, position_offset, a);
}
Tensor Graph::top_k_top_p_mask(Tensor logits, Tensor k, Tensor p) {
  for (Tensor t : {logits, k, p}) check_own(t, "top_k_top_p_mask");
  Node n;
  n.op = Op::top_k_top_p_mask;
  n.inputs = {logits.id, k.id, p.id};
  return add_node(std::move(n));
}

Tensor Graph::cross_entropy_loss(Tensor logits, Tensor labels, int64_t ignore_index) {
  Attrs a;
  a.ignore_index = ignore_index;
  return binary(Op::cross_entropy_loss, logits, labels, a);
}
Tensor Graph::cross_entropy_grad(Tensor logits, Tensor labels, Tensor dloss, int64_t ignore_index) {
  for (Tensor t : {logits, labels, dloss}) check_own(t, "cross_entropy_grad");
  Node n;
  n.op = Op::cross_entropy_grad;
  n.inputs = {logits.id, labels.id, dloss.id};
  n.attrs.ignore_index = ignore_index;
  return add_node(std::move(n));
}
Tensor Graph::mse_loss(Tensor prediction, Tensor target) { return binary(Op::mse_loss, prediction, target); }
Tensor Graph::bce_with_logits(Tensor logits, Tensor targets) { return binary(Op::bce_with_logits, logits, targets); }

}  // namespace meganeura
