// The Llama decoder layer: pre-norm attention and SwiGLU MLP, each with a residual connection.
#include "meganeura/nn.h"

namespace meganeura::nn {

namespace {

AttentionConfig attention_config(const TransformerConfig& c) {
  AttentionConfig a;
  a.hidden = c.hidden;
  a.num_heads = c.num_heads;
  a.num_kv_heads = c.num_kv_heads;
  a.head_dim = c.head_dim;
  a.causal = true;
  a.rope_theta = c.rope_theta;
  return a;
}

}  // namespace

TransformerBlock::TransformerBlock(Graph& graph, const std::string& prefix, TransformerConfig config)
    : input_layernorm(graph, join(prefix, "input_layernorm"), config.hidden, config.rms_norm_eps),
      self_attn(graph, join(prefix, "self_attn"), attention_config(config)),
      post_attention_layernorm(graph, join(prefix, "post_attention_layernorm"), config.hidden, config.rms_norm_eps),
      mlp(graph, join(prefix, "mlp"), config.hidden, config.intermediate) {}

Tensor TransformerBlock::forward(Graph& graph, Tensor x) const {
  const Tensor h = x + self_attn.forward(graph, input_layernorm.forward(graph, x));
  return h + mlp.forward(graph, post_attention_layernorm.forward(graph, h));
}

Tensor TransformerBlock::forward_cached(Graph& graph, Tensor x, KvCache& cache, Tensor offset) const {
  const Tensor h = x + self_attn.forward_cached(graph, input_layernorm.forward(graph, x), cache, offset);
  return h + mlp.forward(graph, post_attention_layernorm.forward(graph, h));
}

Tensor TransformerBlock::forward_cached_row(Graph& graph, Tensor x, KvCache& cache, Tensor offset, Tensor row) const {
  if (x.rank() != 3 || x.dim(0) != 1)
    throw Error("TransformerBlock::forward_cached_row: expected one sequence [1, S, hidden], got " +
                format_shape(x.shape()));
  // The row is picked before the norm (row by row), so the q product normalizes it itself.
  const Tensor picked = graph.reshape(graph.embedding(graph.reshape(x, {x.dim(1), x.dim(2)}), row), {1, 1, x.dim(2)});
  const Tensor h = picked + self_attn.forward_cached_query(graph, input_layernorm.forward(graph, x),
                                                           input_layernorm.forward(graph, picked), cache, offset,
                                                           offset + row);
  return h + mlp.forward(graph, post_attention_layernorm.forward(graph, h));
}

}  // namespace meganeura::nn
