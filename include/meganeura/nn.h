// meganeura/nn.h — neural-network layers: small structs that create their parameters under
// Hugging Face names and shapes and emit primitive ops in forward().
//
//   meganeura::Graph g;
//   auto ids = g.input("input_ids", {1, 12}, meganeura::DType::i32);
//   meganeura::nn::TransformerConfig config;
//   config.hidden = 64, config.intermediate = 128, config.num_heads = 4, config.num_kv_heads = 2;
//   meganeura::nn::Embedding embed(g, "model.embed_tokens", 512, 64);     // model.embed_tokens.weight
//   meganeura::nn::TransformerBlock block(g, "model.layers.0", config);  // ...self_attn.q_proj.weight
//   auto h = block.forward(g, embed.forward(g, ids));                    // [1, 12, 64]
//
// Names: a layer made with prefix "p" names its parameters "p.weight", "p.bias", and its sublayers
// "p.q_proj", "p.mlp.gate_proj"... exactly as the Hugging Face checkpoints do, with their shapes
// (a Linear weight is [out, in], applied with matmul(x, w, false, /*transpose_b=*/true)), so a
// checkpoint loads without renaming or copying.
//
// The layers write the maths with primitive ops — RmsNorm as x·rsqrt(mean(x²) + ε)·w, silu as
// x·sigmoid(x), softmax from exp/max/sum, bias as a separate add — and never call the fused
// builders (rms_norm, swiglu, linear...): the optimizer discovers the fused forms (DESIGN.md).
// Attention itself is the `attention` op.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "meganeura/graph.h"

namespace meganeura::nn {

// "model.layers.0" + "mlp" → "model.layers.0.mlp"; an empty prefix adds no dot.
std::string join(const std::string& prefix, const std::string& name);

// Activations and softmax written with primitive ops (the patterns the optimizer fuses).
Tensor silu(Graph& graph, Tensor x);                          // x·sigmoid(x)
Tensor gelu_tanh(Graph& graph, Tensor x);                     // 0.5x·(1 + tanh(√(2/π)(x + 0.044715x³)))
Tensor softmax(Graph& graph, Tensor x, int64_t axis = -1);    // exp(x − max)·recip(Σ exp(x − max))

// y = x·wᵀ (+ b). weight [out, in] ("prefix.weight"), bias [out] ("prefix.bias"), both drawn
// from U(±1/√in) like PyTorch's nn.Linear unless weight_init says otherwise (Hugging Face models
// initialise with normal(0, initializer_range) and zero biases).
struct Linear {
  Linear(Graph& graph, const std::string& prefix, int64_t in_features, int64_t out_features, bool bias = false,
         std::optional<Init> weight_init = std::nullopt);
  Tensor forward(Graph& graph, Tensor x) const;  // [..., in] → [..., out]

  Tensor weight;
  std::optional<Tensor> bias;
};

// Rows of weight [num_embeddings, dim] ("prefix.weight") gathered by i32 ids [...] → [..., dim].
struct Embedding {
  Embedding(Graph& graph, const std::string& prefix, int64_t num_embeddings, int64_t dim,
            Init init = Init::normal(0.0, 0.02));
  Tensor forward(Graph& graph, Tensor ids) const;

  Tensor weight;
};

// x·rsqrt(mean(x², last dim) + eps)·w; weight [dim] ("prefix.weight"), ones.
struct RmsNorm {
  RmsNorm(Graph& graph, const std::string& prefix, int64_t dim, double eps = 1e-6);
  Tensor forward(Graph& graph, Tensor x) const;

  Tensor weight;
  double eps;
};

// (x − mean)·rsqrt(var + eps)·w + b over the last dim; weight ones and bias zeros, [dim].
struct LayerNorm {
  LayerNorm(Graph& graph, const std::string& prefix, int64_t dim, double eps = 1e-5);
  Tensor forward(Graph& graph, Tensor x) const;

  Tensor weight;
  Tensor bias;
  double eps;
};

// x [N, C, ...] normalised per (sample, group of C/groups channels) over the channels and all
// positions, then scaled and shifted per channel; weight ones and bias zeros, [C].
struct GroupNorm {
  GroupNorm(Graph& graph, const std::string& prefix, int64_t groups, int64_t channels, double eps = 1e-5);
  Tensor forward(Graph& graph, Tensor x) const;

  Tensor weight;
  Tensor bias;
  int64_t groups;
  double eps;
};

// Key/value cache of one attention layer: persistent state [B, num_kv_heads, max_positions,
// head_dim] each. forward_cached() replaces both handles with the written caches (which a session
// aliases to the same buffers), so the caller makes them graph outputs.
struct KvCache {
  Tensor k;
  Tensor v;
};

struct AttentionConfig {
  int64_t hidden = 0;          // model width: input and output features
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;    // 0: num_heads; fewer: grouped-query attention
  int64_t head_dim = 0;        // 0: hidden / num_heads
  int64_t context_hidden = 0;  // width of cross-attention's context; 0: hidden
  bool causal = true;
  double rope_theta = 0.0;     // 0: no rotary embedding
  bool bias = false;           // biases on the four projections
  std::string output_name = "o_proj";  // Llama: o_proj; SigLIP and CLIP: out_proj
};

// Multi-head attention with projections "prefix.q_proj", "k_proj", "v_proj" and output_name.
// Inputs are [B, S, hidden] (or [S, hidden], treated as one batch); heads are split as
// [B, heads, S, head_dim], RoPE (Hugging Face half-split) applied to q and k when rope_theta > 0.
struct MultiHeadAttention {
  MultiHeadAttention(Graph& graph, const std::string& prefix, AttentionConfig config);

  // Self-attention over x, positions starting at 0; an optional additive mask broadcasts to
  // [B, heads, S, S].
  Tensor forward(Graph& graph, Tensor x, std::optional<Tensor> mask = std::nullopt) const;
  // Cross-attention: queries from x, keys and values from context [B, Skv, context_hidden]; no
  // rotary embedding and no causal mask.
  Tensor forward_cross(Graph& graph, Tensor x, Tensor context, std::optional<Tensor> mask = std::nullopt) const;
  // Decoding with a KV cache: x holds positions [offset, offset + S) (offset: i32 [] or [1]); this
  // step's keys and values are written into the cache, and the queries attend over the cache.
  Tensor forward_cached(Graph& graph, Tensor x, KvCache& cache, Tensor offset) const;
  // forward_cached where only `query` ([B, T, hidden] at positions [position, position + T),
  // position: i32 [] or [1]) attends: every row of x still writes its keys and values. A
  // prefill's last layer when only the last row goes on (TransformerBlock::forward_cached_row).
  Tensor forward_cached_query(Graph& graph, Tensor x, Tensor query, KvCache& cache, Tensor offset,
                              Tensor position) const;

  AttentionConfig config;
  Linear q_proj;
  Linear k_proj;
  Linear v_proj;
  Linear o_proj;
};

// down_proj(silu(gate_proj(x))·up_proj(x)), Llama's MLP; no biases.
struct SwiGluMlp {
  SwiGluMlp(Graph& graph, const std::string& prefix, int64_t hidden, int64_t intermediate);
  Tensor forward(Graph& graph, Tensor x) const;

  Linear gate_proj;
  Linear up_proj;
  Linear down_proj;
};

// fc2(gelu(fc1(x))), the ViT/SigLIP MLP; tanh approximation by default ("gelu_pytorch_tanh").
struct GeluMlp {
  GeluMlp(Graph& graph, const std::string& prefix, int64_t hidden, int64_t intermediate,
          bool tanh_approximation = true, bool bias = true);
  Tensor forward(Graph& graph, Tensor x) const;

  Linear fc1;
  Linear fc2;
  bool tanh_approximation;
};

// NCHW convolution; weight [out, in / groups, kh, kw] ("prefix.weight"), bias [out], both drawn
// from U(±1/√fan_in) like PyTorch's nn.Conv2d.
struct Conv2d {
  Conv2d(Graph& graph, const std::string& prefix, int64_t in_channels, int64_t out_channels,
         std::array<int64_t, 2> kernel, Conv2dOptions options = {}, bool bias = true);
  Tensor forward(Graph& graph, Tensor x) const;

  Tensor weight;
  std::optional<Tensor> bias;
  Conv2dOptions options;
};

struct TransformerConfig {
  int64_t hidden = 0;
  int64_t intermediate = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // 0: num_heads
  int64_t head_dim = 0;      // 0: hidden / num_heads
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
};

// A Llama decoder layer: h = x + self_attn(input_layernorm(x)) (causal, RoPE);
// out = h + mlp(post_attention_layernorm(h)).
struct TransformerBlock {
  TransformerBlock(Graph& graph, const std::string& prefix, TransformerConfig config);
  Tensor forward(Graph& graph, Tensor x) const;
  Tensor forward_cached(Graph& graph, Tensor x, KvCache& cache, Tensor offset) const;
  // forward_cached for row `row` (i32 [1]) of x ([1, S, hidden]) alone: every row's keys and
  // values go into the cache, only that row goes on through the attention and the MLP, and the
  // result is that row's output, [1, 1, hidden]. The rows are independent after the attention, so
  // a prefill whose last layer feeds only the last row's logits computes the rest for one row.
  Tensor forward_cached_row(Graph& graph, Tensor x, KvCache& cache, Tensor offset, Tensor row) const;

  RmsNorm input_layernorm;
  MultiHeadAttention self_attn;
  RmsNorm post_attention_layernorm;
  SwiGluMlp mlp;
};

}  // namespace meganeura::nn
