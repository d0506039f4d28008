// meganeura/graph.h — the computation graph users build models with.
//
//   meganeura::Graph g;
//   auto x = g.input("x", {32, 784});
//   auto w = g.parameter("fc.weight", {10, 784}, meganeura::Init::kaiming());  // [out, in]
//   auto b = g.parameter("fc.bias", {10});
//   auto labels = g.input("labels", {32}, meganeura::DType::i32);
//   auto logits = g.matmul(x, w, /*transpose_a=*/false, /*transpose_b=*/true) + b;
//   auto loss = g.cross_entropy_loss(logits, labels);
//   g.set_outputs({loss});
//   std::cout << g.dump();   // one line per node
//
// Conventions every layer and model follows:
// - Activations are row-major. Shapes are static; a mismatch throws meganeura::Error at build time
//   naming the op, the operand shapes and the rule violated.
// - Binary and ternary elementwise ops broadcast like NumPy; operands must share a dtype (use cast).
// - matmul works on the last two dims and batches over the leading ones, broadcasting them.
// - Linear weights are stored [out, in], as Hugging Face and PyTorch store them, and applied with
//   matmul(x, w, false, /*transpose_b=*/true); fan_in/fan_out for initialisation follow the same
//   layout ([out, in, kh, kw] for convolutions), so checkpoints load without transposing.
// - Attention: q [B, Hq, S, D], k and v [B, Hkv, Skv, D], Hq a multiple of Hkv (grouped-query:
//   query head h reads kv head h / (Hq / Hkv)). Without a position offset, query i sits at position
//   Skv - S + i (the causal mask is aligned to the END, so a prefix of cached keys is handled). An
//   optional additive mask broadcasts to [B, Hq, S, Skv].
// - KV cache: the cache is explicit persistent state. `kv_cache_write(cache, update, offset)` returns
//   `cache` with positions [offset, offset + S) of dim 2 replaced by `update`; a Session makes its
//   output alias the `cache` input's buffer. Attention then reads the whole cache
//   [B, Hkv, Smax, D] with `position_offset` = offset: query i sits at position offset + i and keys
//   at positions >= offset + S (not written yet) are always masked, causal or not. A query row that
//   sees no key at all yields zeros. attrs.scale 0 means 1/sqrt(D).
// - rope works on [..., S, D] (usually [B, H, S, D]) with Hugging Face's half-split pairing
//   (rotate_half: element i pairs with i + D/2), frequencies theta^(-2i/D), and an i32 input of
//   shape [] or [1] giving the position of row 0, so decoding can start anywhere.
// - conv2d is NCHW with weight [Cout, Cin / groups, kh, kw]; pooling and upsampling are NCHW.
// - embedding(table [V, D], ids i32 [...]) → [..., D]; its backward is scatter_add_rows.
// - dropout(x, seed, step, p) keeps an element when a counter-based hash of (seed, step, element
//   index) — 32-bit integer operations only, see dropout_keep() — clears p; kept values are scaled
//   by 1/(1-p). The same (seed, step) gives the same mask, so the backward is the same dropout of
//   the upstream gradient. Inference sessions treat dropout as the identity.
// - Losses return a scalar of shape []. cross_entropy_loss takes logits [N, C] and either i32
//   labels [N] (rows whose label is ignore_index are not counted; the mean is over counted rows, 0
//   when none are) or f32 probability labels [N, C].
//
// Tensor handles point into their Graph: copying a Graph does not move the handles with it (use
// Graph::tensor(id) on the copy).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "meganeura/error.h"

namespace meganeura {

enum class DType : uint8_t { f32, f16, bf16, i32 };
const char* dtype_name(DType dtype);
size_t dtype_size(DType dtype);  // bytes per element

using Shape = std::vector<int64_t>;
int64_t num_elements(const Shape& shape);  // 1 for a scalar shape []

enum class Op : uint16_t {
#define MEGANEURA_OP(name, arity, category) name,
#include "meganeura/ops.def"
#undef MEGANEURA_OP
};

enum class OpCategory : uint8_t { leaf, pointwise, reduction, matmul, attention, conv, movement, nn, loss, optimizer };

inline constexpr size_t kNumOps = 0
#define MEGANEURA_OP(name, arity, category) +1
#include "meganeura/ops.def"
#undef MEGANEURA_OP
    ;

const char* op_name(Op op);
OpCategory op_category(Op op);
const char* category_name(OpCategory category);
int op_arity(Op op);                          // -1: variable (concat, attention ops)
std::optional<Op> op_from_name(const std::string& name);  // "matmul" → Op::matmul
std::vector<Op> all_ops();                    // every op of the table, in table order

// Attributes of a node. Which fields an op reads is listed beside its builder below; the others
// keep their defaults, so two nodes that do the same thing compare equal and hash alike (the
// e-graph hash-conses on (op, inputs, attrs)). Axes are stored non-negative.
struct Attrs {
  int64_t axis = 0;
  bool keepdim = false;
  bool transpose_a = false;
  bool transpose_b = false;
  bool causal = false;
  double eps = 0.0;
  double theta = 0.0;
  double exponent = 0.0;
  double scale = 0.0;   // attention: 0 means 1/sqrt(D)
  double value = 0.0;   // scalar
  double p = 0.0;       // dropout probability
  int64_t groups = 0;
  int64_t num_heads = 0;      // free for layers/optimizer annotations; shapes carry the head counts
  int64_t num_kv_heads = 0;
  int64_t ignore_index = 0;
  DType dtype = DType::f32;   // cast: target dtype
  std::vector<int64_t> ints = {};  // reshape/broadcast_to: shape; permute: perm; slice: {begin, end};
                              // conv/pool: see Conv2dOptions / Pool2dOptions
  std::string label = {};     // free text for fused ops (shown in dumps, part of equality)

  bool operator==(const Attrs&) const = default;
  size_t hash() const;
  std::string to_string() const;  // "axis=1 keepdim=true": only fields that differ from defaults
};

// How a parameter's initial values are drawn. fan_in = shape[1] * prod(shape[2:]), fan_out =
// shape[0] * prod(shape[2:]) (PyTorch's rule, matching the [out, in, ...] layout); a 1-D shape has
// fan_in = fan_out = shape[0].
struct Init {
  enum class Kind : uint8_t { zeros, ones, normal, uniform, xavier_uniform, kaiming_normal };
  Kind kind = Kind::zeros;
  double a = 0.0;  // normal: mean; uniform: low; kaiming: gain (default sqrt(2), for ReLU)
  double b = 0.0;  // normal: std; uniform: high; xavier: gain (default 1)

  static Init zeros() { return {Kind::zeros, 0, 0}; }
  static Init ones() { return {Kind::ones, 0, 0}; }
  static Init normal(double mean, double std) { return {Kind::normal, mean, std}; }
  static Init uniform(double low, double high) { return {Kind::uniform, low, high}; }
  // U(-g·sqrt(6/(fan_in+fan_out)), +g·sqrt(6/(fan_in+fan_out))).
  static Init xavier(double gain = 1.0) { return {Kind::xavier_uniform, 0, gain}; }
  // N(0, gain / sqrt(fan_in)).
  static Init kaiming(double gain = 1.4142135623730951) { return {Kind::kaiming_normal, gain, 0}; }

  bool operator==(const Init&) const = default;
  std::string to_string() const;  // "normal(0, 0.02)"
};

// Initial values for a parameter of this shape, deterministic in (init, shape, seed) on every
// platform (own counter-based generator, no std:: distributions).
std::vector<float> initial_values(const Init& init, const Shape& shape, uint64_t seed);

// A deterministic per-parameter seed from a global seed and the parameter's name.
uint64_t parameter_seed(uint64_t global_seed, const std::string& name);

// The dropout mask, as the GPU computes it (32-bit unsigned arithmetic only). With
//   mix32(x): x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16
//   hash = mix32(index ^ mix32(step ^ mix32(seed)))
// element `index` (row-major in x) is kept when (hash >> 8) >= dropout_threshold(p) =
// round(p · 2^24), an integer comparison a shader reproduces exactly.
uint32_t dropout_hash(uint32_t seed, uint32_t step, uint32_t index);
uint32_t dropout_threshold(double p);
bool dropout_keep(uint32_t seed, uint32_t step, uint32_t index, double p);

struct Node {
  Op op = Op::input;
  std::vector<int32_t> inputs = {};  // ids of earlier nodes
  Attrs attrs = {};
  Shape shape = {};
  DType dtype = DType::f32;
  std::string name = {};        // required for input/parameter; optional elsewhere; unique
  Init init = {};               // parameters
  std::vector<float> data = {};  // constants (row-major, num_elements(shape) values)
  bool trainable = false;       // parameters: receives a gradient in training
};

class Graph;

// A light handle to one node of a graph.
struct Tensor {
  Graph* graph = nullptr;
  int32_t id = -1;

  const Node& node() const;
  const Shape& shape() const;
  DType dtype() const;
  int64_t rank() const { return static_cast<int64_t>(shape().size()); }
  int64_t dim(int64_t axis) const;  // negative axes count from the end
};

Tensor operator+(Tensor a, Tensor b);
Tensor operator-(Tensor a, Tensor b);
Tensor operator*(Tensor a, Tensor b);
Tensor operator/(Tensor a, Tensor b);
Tensor operator-(Tensor a);
Tensor operator+(Tensor a, double b);
Tensor operator-(Tensor a, double b);
Tensor operator*(Tensor a, double b);
Tensor operator/(Tensor a, double b);
Tensor operator+(double a, Tensor b);
Tensor operator-(double a, Tensor b);
Tensor operator*(double a, Tensor b);
Tensor operator/(double a, Tensor b);

struct AttentionOptions {
  bool causal = false;
  double scale = 0.0;  // 0: 1/sqrt(D)
};

// ints layout for conv2d and its gradients: {stride_h, stride_w, pad_h, pad_w, dil_h, dil_w}, then
// conv2d_grad_input: {H, W} of the input; conv2d_grad_weight: {kh, kw} of the kernel. groups: groups.
struct Conv2dOptions {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
};

// ints layout for pooling: {kh, kw, stride_h, stride_w, pad_h, pad_w}, then avg_pool2d_grad: {H, W}.
// Max pooling pads with -inf; average pooling counts padded zeros (PyTorch's default).
struct Pool2dOptions {
  std::array<int64_t, 2> kernel{2, 2};
  std::array<int64_t, 2> stride{2, 2};
  std::array<int64_t, 2> padding{0, 0};
};

class Graph {
 public:
  // ---- leaves -------------------------------------------------------------------------------
  // Names must be unique within the graph (Error otherwise).
  Tensor input(const std::string& name, Shape shape, DType dtype = DType::f32);
  Tensor parameter(const std::string& name, Shape shape, Init init = Init::zeros(), bool trainable = true,
                   DType dtype = DType::f32);
  Tensor constant(std::vector<float> data, Shape shape, DType dtype = DType::f32);
  Tensor scalar(double value, DType dtype = DType::f32);  // shape []; attrs.value, attrs.dtype

  // ---- elementwise (binary/ternary ops broadcast) ----------------------------------------------
  Tensor add(Tensor a, Tensor b);
  Tensor sub(Tensor a, Tensor b);
  Tensor mul(Tensor a, Tensor b);
  Tensor div(Tensor a, Tensor b);
  Tensor maximum(Tensor a, Tensor b);
  Tensor minimum(Tensor a, Tensor b);
  Tensor greater(Tensor a, Tensor b);  // 1 where a > b else 0, in a's dtype
  Tensor neg(Tensor x);
  Tensor abs(Tensor x);
  Tensor exp(Tensor x);
  Tensor log(Tensor x);
  Tensor sqrt(Tensor x);
  Tensor rsqrt(Tensor x);
  Tensor recip(Tensor x);
  Tensor pow(Tensor x, double exponent);  // attrs.exponent
  Tensor relu(Tensor x);
  Tensor gelu(Tensor x);       // x·Φ(x), erf form
  Tensor gelu_tanh(Tensor x);  // 0.5x(1 + tanh(sqrt(2/π)(x + 0.044715x³)))
  Tensor silu(Tensor x);       // x·sigmoid(x)
  Tensor sigmoid(Tensor x);
  Tensor tanh(Tensor x);
  Tensor sin(Tensor x);
  Tensor cos(Tensor x);
  Tensor where(Tensor condition, Tensor a, Tensor b);  // a where condition != 0, else b; dtype of a
  Tensor cast(Tensor x, DType to);                     // attrs.dtype; to i32 truncates toward zero
  Tensor stop_gradient(Tensor x);                      // identity; autodiff stops here
  Tensor swiglu(Tensor gate, Tensor up);               // silu(gate)·up, same shapes
  // seed and step: i32 of shape [] or [1]. attrs.p in [0, 1).
  Tensor dropout(Tensor x, Tensor seed, Tensor step, double p);

  // ---- reductions: attrs.axis, attrs.keepdim --------------------------------------------------
  Tensor sum(Tensor x, int64_t axis, bool keepdim = false);
  Tensor mean(Tensor x, int64_t axis, bool keepdim = false);
  Tensor max(Tensor x, int64_t axis, bool keepdim = false);
  Tensor argmax(Tensor x, int64_t axis, bool keepdim = false);  // i32; first maximum on ties
  Tensor sum_all(Tensor x);   // shape []
  Tensor mean_all(Tensor x);  // shape []

  // ---- movement ---------------------------------------------------------------------------------
  Tensor reshape(Tensor x, Shape shape);                 // attrs.ints = shape (one -1 allowed)
  Tensor permute(Tensor x, std::vector<int64_t> perm);   // attrs.ints = perm
  Tensor transpose(Tensor x, int64_t dim0 = -2, int64_t dim1 = -1);  // a permute node
  Tensor broadcast_to(Tensor x, Shape shape);            // attrs.ints = shape
  Tensor slice(Tensor x, int64_t axis, int64_t begin, int64_t end);  // axis, ints {begin, end}
  Tensor concat(const std::vector<Tensor>& parts, int64_t axis);     // attrs.axis
  // Several slice nodes of the given sizes along axis (they must add up to the dim).
  std::vector<Tensor> split(Tensor x, int64_t axis, const std::vector<int64_t>& sizes);
  Tensor embedding(Tensor table, Tensor ids);  // [V, D], i32 [...] → [..., D]
  // out[ids[i], :] += src[i, :]; src [..., D], ids i32 [...] → [num_rows, D]. attrs.ints {num_rows}.
  Tensor scatter_add_rows(Tensor src, Tensor ids, int64_t num_rows);
  // cache [B, H, Smax, D], update [B, H, S, D], offset i32 [] or [1] → cache with rows replaced.
  Tensor kv_cache_write(Tensor cache, Tensor update, Tensor offset);

  // ---- matrix products: attrs.transpose_a, attrs.transpose_b ----------------------------------
  Tensor matmul(Tensor a, Tensor b, bool transpose_a = false, bool transpose_b = false);
  // matmul(x, w, ta, tb) + bias, bias [N]. The fused form the optimizer finds.
  Tensor linear(Tensor x, Tensor weight, Tensor bias, bool transpose_a = false, bool transpose_b = true);

  // ---- attention: attrs.causal, attrs.scale ---------------------------------------------------
  // Inputs in the node: q, k, v, then the mask (float) if given, then the position offset (i32).
  Tensor attention(Tensor q, Tensor k, Tensor v, AttentionOptions options = {},
                   std::optional<Tensor> mask = std::nullopt, std::optional<Tensor> position_offset = std::nullopt);
  // Row log-sum-exp of the scaled, masked scores: f32 [B, Hq, S], log Σ_j exp(s_ij) over the keys
  // query i sees (+inf for a row that sees none). Inputs in the node: q, k, [mask], [offset].
  Tensor attention_lse(Tensor q, Tensor k, AttentionOptions options = {}, std::optional<Tensor> mask = std::nullopt,
                       std::optional<Tensor> position_offset = std::nullopt);
  // Gradients w.r.t. q, k, v; inputs q, k, v, out (the forward result), dout, lse (attention_lse of
  // the same q, k, options, mask and offset), [mask], [offset]. With P = exp(s − lse):
  // dV = Pᵀ dout, dS = P ∘ (dout vᵀ − rowsum(dout ∘ out)), dQ = scale · dS k, dK = scale · dSᵀ q.
  Tensor attention_grad_q(Tensor q, Tensor k, Tensor v, Tensor out, Tensor dout, Tensor lse,
                          AttentionOptions options = {}, std::optional<Tensor> mask = std::nullopt,
                          std::optional<Tensor> position_offset = std::nullopt);
  Tensor attention_grad_k(Tensor q, Tensor k, Tensor v, Tensor out, Tensor dout, Tensor lse,
                          AttentionOptions options = {}, std::optional<Tensor> mask = std::nullopt,
                          std::optional<Tensor> position_offset = std::nullopt);
  Tensor attention_grad_v(Tensor q, Tensor k, Tensor v, Tensor out, Tensor dout, Tensor lse,
                          AttentionOptions options = {}, std::optional<Tensor> mask = std::nullopt,
                          std::optional<Tensor> position_offset = std::nullopt);

  // ---- convolution and pooling (NCHW) ---------------------------------------------------------
  Tensor conv2d(Tensor x, Tensor weight, Conv2dOptions options = {});
  Tensor conv2d_grad_input(Tensor dy, Tensor weight, Conv2dOptions options, std::array<int64_t, 2> input_hw);
  Tensor conv2d_grad_weight(Tensor x, Tensor dy, Conv2dOptions options, std::array<int64_t, 2> kernel_hw);
  Tensor max_pool2d(Tensor x, Pool2dOptions options = {});
  // Routes dy to each window's forward argmax (the first maximum on ties).
  Tensor max_pool2d_grad(Tensor x, Tensor dy, Pool2dOptions options = {});
  Tensor avg_pool2d(Tensor x, Pool2dOptions options = {});
  Tensor avg_pool2d_grad(Tensor dy, Pool2dOptions options, std::array<int64_t, 2> input_hw);
  Tensor upsample_nearest2x(Tensor x);       // [N, C, H, W] → [N, C, 2H, 2W]
  Tensor upsample_nearest2x_grad(Tensor dy);  // sums each 2×2 block
  Tensor global_avg_pool(Tensor x);          // [N, C, H, W] → [N, C, 1, 1]

  // ---- normalisation, softmax, rope -------------------------------------------------------------
  Tensor softmax(Tensor x, int64_t axis = -1);                  // attrs.axis
  Tensor log_softmax(Tensor x, int64_t axis = -1);
  Tensor softmax_grad(Tensor y, Tensor dy, int64_t axis = -1);      // y = softmax(x): y·(dy − Σ dy·y)
  Tensor log_softmax_grad(Tensor y, Tensor dy, int64_t axis = -1);  // y = log_softmax(x): dy − e^y·Σ dy
  // Over the last dim: (x − mean)/sqrt(var + eps)·w + b; w, b [D]. attrs.eps.
  Tensor layer_norm(Tensor x, Tensor weight, Tensor bias, double eps = 1e-5);
  Tensor layer_norm_grad(Tensor x, Tensor weight, Tensor dy, double eps = 1e-5);  // dx only
  // Over the last dim: x·rsqrt(mean(x²) + eps)·w; w [D]. attrs.eps.
  Tensor rms_norm(Tensor x, Tensor weight, double eps = 1e-6);
  Tensor rms_norm_grad(Tensor x, Tensor weight, Tensor dy, double eps = 1e-6);  // dx only
  // x [N, C, ...]; statistics per (n, group) over C/groups channels and all spatial positions;
  // w, b [C]. attrs.groups, attrs.eps.
  Tensor group_norm(Tensor x, Tensor weight, Tensor bias, int64_t groups, double eps = 1e-5);
  Tensor group_norm_grad(Tensor x, Tensor weight, Tensor dy, int64_t groups, double eps = 1e-5);  // dx
  Tensor rope(Tensor x, Tensor position_offset, double theta = 10000.0);        // attrs.theta
  Tensor rope_grad(Tensor dy, Tensor position_offset, double theta = 10000.0);  // inverse rotation
  // Top-k / top-p (nucleus) filter over the last dim of logits [..., V]: 0 where a value is kept,
  // -1e30 elsewhere (add it to the logits). Keeps the values not below the k-th largest (k <= 0:
  // all), then of those the ones whose larger survivors hold less than p of their softmax mass
  // (p >= 1: all). Ties at either threshold are all kept, so the largest value always is.
  // k: i32 [] or [1]; p: float [] or [1]. Not differentiable.
  Tensor top_k_top_p_mask(Tensor logits, Tensor k, Tensor p);

  // ---- losses (shape []) -------------------------------------------------------------------------
  Tensor cross_entropy_loss(Tensor logits, Tensor labels, int64_t ignore_index = -100);  // attrs.ignore_index
  // d loss / d logits, scaled by dloss (shape []).
  Tensor cross_entropy_grad(Tensor logits, Tensor labels, Tensor dloss, int64_t ignore_index = -100);
  Tensor mse_loss(Tensor prediction, Tensor target);            // mean of squared differences
  Tensor bce_with_logits(Tensor logits, Tensor targets);        // mean, numerically stable form

  // ---- graph structure ---------------------------------------------------------------------------
  // Appends a node after checking its inputs (existing ids, arity, dtypes) and running shape
  // inference, which fills node.shape and node.dtype (leaves keep the ones given). Negative axes
  // in attrs are normalised. The low-level entry point for autodiff and the optimizer.
  Tensor add_node(Node node);

  void set_outputs(const std::vector<Tensor>& outputs);
  const std::vector<int32_t>& outputs() const;  // Error when set_outputs was never called
  bool has_outputs() const { return outputs_set_; }

  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& node(int32_t id) const;  // Error on an id out of range
  size_t size() const { return nodes_.size(); }
  Tensor tensor(int32_t id);           // a handle to an existing node

  // Names: unique among all nodes. find throws Error for an unknown name (listing close ones).
  int32_t find(const std::string& name) const;
  bool contains(const std::string& name) const { return by_name_.count(name) != 0; }
  void set_name(Tensor t, const std::string& name);

  std::vector<int32_t> inputs() const;      // ids of the input nodes, in creation order
  std::vector<int32_t> parameters() const;  // ids of the parameter nodes, in creation order

  // One line per node: "%3 = matmul(%1, %2) transpose_b=true : [4, 5] f32  \"name\"".
  std::string dump() const;

 private:
  Tensor unary(Op op, Tensor x, Attrs attrs = {});
  Tensor binary(Op op, Tensor a, Tensor b, Attrs attrs = {});
  Tensor attention_like(Op op, std::vector<Tensor> tensors, AttentionOptions options, std::optional<Tensor> mask,
                        std::optional<Tensor> position_offset);
  void check_own(Tensor t, const char* what) const;
  void register_name(const std::string& name, int32_t id);

  std::vector<Node> nodes_;
  std::map<std::string, int32_t> by_name_;
  std::vector<int32_t> outputs_;
  bool outputs_set_ = false;
};

std::string to_string(const Graph& graph);  // same as graph.dump()

// Type of a node from its op, attrs and input types: the shape inference the builders run,
// exposed for passes that reason about nodes before adding them (the e-graph's analysis). Throws
// Error naming the op, the operand shapes and the rule violated. Not for leaves.
struct TensorType {
  Shape shape = {};
  DType dtype = DType::f32;
};
TensorType infer_type(Op op, const Attrs& attrs, const std::vector<TensorType>& inputs);

// NumPy broadcast of two shapes; Error naming `op` when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace meganeura
