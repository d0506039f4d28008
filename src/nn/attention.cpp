// Multi-head attention: projections, head split/merge, RoPE, the attention op, KV cache writes.
#include "meganeura/nn.h"

namespace meganeura::nn {

namespace {

AttentionConfig completed(AttentionConfig c, const std::string& prefix) {
  if (c.hidden <= 0 || c.num_heads <= 0)
    throw Error("MultiHeadAttention \"" + prefix + "\": hidden (" + std::to_string(c.hidden) + ") and num_heads (" +
                std::to_string(c.num_heads) + ") must be positive");
  if (c.num_kv_heads == 0) c.num_kv_heads = c.num_heads;
  if (c.head_dim == 0) {
    if (c.hidden % c.num_heads != 0)
      throw Error("MultiHeadAttention \"" + prefix + "\": hidden " + std::to_string(c.hidden) +
                  " is not a multiple of num_heads " + std::to_string(c.num_heads) + "; set head_dim explicitly");
    c.head_dim = c.hidden / c.num_heads;
  }
  if (c.context_hidden == 0) c.context_hidden = c.hidden;
  if (c.num_kv_heads < 0 || c.num_heads % c.num_kv_heads != 0)
    throw Error("MultiHeadAttention \"" + prefix + "\": num_heads " + std::to_string(c.num_heads) +
                " must be a multiple of num_kv_heads " + std::to_string(c.num_kv_heads) + " (grouped-query attention)");
  if (c.rope_theta > 0 && c.head_dim % 2 != 0)
    throw Error("MultiHeadAttention \"" + prefix + "\": rotary embedding needs an even head_dim, got " +
                std::to_string(c.head_dim));
  return c;
}

// [S, F] is one batch of S positions; [B, S, F] is the layout the heads are split from.
Tensor batched(Graph& graph, Tensor x, int64_t features, const char* what) {
  if ((x.rank() != 2 && x.rank() != 3) || x.dim(-1) != features)
    throw Error(std::string("MultiHeadAttention: ") + what + " has shape " + format_shape(x.shape()) +
                "; expected [B, S, " + std::to_string(features) + "] or [S, " + std::to_string(features) + "]");
  return x.rank() == 3 ? x : graph.reshape(x, {1, x.dim(0), x.dim(1)});
}

// [B, S, heads·D] → [B, heads, S, D].
Tensor split_heads(Graph& graph, Tensor t, int64_t heads, int64_t head_dim) {
  return graph.permute(graph.reshape(t, {t.dim(0), t.dim(1), heads, head_dim}), {0, 2, 1, 3});
}

// [B, heads, S, D] → [B, S, heads·D].
Tensor merge_heads(Graph& graph, Tensor t) {
  return graph.reshape(graph.permute(t, {0, 2, 1, 3}), {t.dim(0), t.dim(2), t.dim(1) * t.dim(3)});
}

Tensor unbatched(Graph& graph, Tensor y, Tensor original) {
  return original.rank() == 3 ? y : graph.reshape(y, {y.dim(1), y.dim(2)});
}

}  // namespace

MultiHeadAttention::MultiHeadAttention(Graph& graph, const std::string& prefix, AttentionConfig c)
    : config(completed(std::move(c), prefix)),
      q_proj(graph, join(prefix, "q_proj"), config.hidden, config.num_heads * config.head_dim, config.bias),
      k_proj(graph, join(prefix, "k_proj"), config.context_hidden, config.num_kv_heads * config.head_dim, config.bias),
      v_proj(graph, join(prefix, "v_proj"), config.context_hidden, config.num_kv_heads * config.head_dim, config.bias),
      o_proj(graph, join(prefix, config.output_name), config.num_heads * config.head_dim, config.hidden, config.bias) {}

Tensor MultiHeadAttention::forward(Graph& graph, Tensor x, std::optional<Tensor> mask) const {
  const Tensor xb = batched(graph, x, config.hidden, "the input");
  Tensor q = split_heads(graph, q_proj.forward(graph, xb), config.num_heads, config.head_dim);
  Tensor k = split_heads(graph, k_proj.forward(graph, xb), config.num_kv_heads, config.head_dim);
  const Tensor v = split_heads(graph, v_proj.forward(graph, xb), config.num_kv_heads, config.head_dim);
  if (config.rope_theta > 0) {
    const Tensor start = graph.scalar(0.0, DType::i32);
    q = graph.rope(q, start, config.rope_theta);
    k = graph.rope(k, start, config.rope_theta);
  }
  AttentionOptions options;
  options.causal = config.causal;
  const Tensor o = graph.attention(q, k, v, options, mask);
  return unbatched(graph, o_proj.forward(graph, merge_heads(graph, o)), x);
}

Tensor MultiHeadAttention::forward_cross(Graph& graph, Tensor x, Tensor context, std::optional<Tensor> mask) const {
  const Tensor xb = batched(graph, x, config.hidden, "the input");
  const Tensor cb = batched(graph, context, config.context_hidden, "the context");
  const Tensor q = split_heads(graph, q_proj.forward(graph, xb), config.num_heads, config.head_dim);
  const Tensor k = split_heads(graph, k_proj.forward(graph, cb), config.num_kv_heads, config.head_dim);
  const Tensor v = split_heads(graph, v_proj.forward(graph, cb), config.num_kv_heads, config.head_dim);
  const Tensor o = graph.attention(q, k, v, AttentionOptions{}, mask);
  return unbatched(graph, o_proj.forward(graph, merge_heads(graph, o)), x);
}

Tensor MultiHeadAttention::forward_cached(Graph& graph, Tensor x, KvCache& cache, Tensor offset) const {
  return forward_cached_query(graph, x, x, cache, offset, offset);
}

Tensor MultiHeadAttention::forward_cached_query(Graph& graph, Tensor x, Tensor query, KvCache& cache, Tensor offset,
                                                Tensor position) const {
  const Tensor xb = batched(graph, x, config.hidden, "the input");
  const Tensor qb = query.id == x.id ? xb : batched(graph, query, config.hidden, "the query");
  if (qb.dim(0) != xb.dim(0))
    throw Error("MultiHeadAttention::forward_cached_query: the query's batch of " + std::to_string(qb.dim(0)) +
                " differs from the input's " + std::to_string(xb.dim(0)));
  Tensor q = split_heads(graph, q_proj.forward(graph, qb), config.num_heads, config.head_dim);
  Tensor k = split_heads(graph, k_proj.forward(graph, xb), config.num_kv_heads, config.head_dim);
  const Tensor v = split_heads(graph, v_proj.forward(graph, xb), config.num_kv_heads, config.head_dim);
  if (config.rope_theta > 0) {
    q = graph.rope(q, position, config.rope_theta);
    k = graph.rope(k, offset, config.rope_theta);
  }
  cache.k = graph.kv_cache_write(cache.k, k, offset);
  cache.v = graph.kv_cache_write(cache.v, v, offset);
  AttentionOptions options;
  options.causal = config.causal;
  const Tensor o = graph.attention(q, cache.k, cache.v, options, std::nullopt, position);
  return unbatched(graph, o_proj.forward(graph, merge_heads(graph, o)), query);
}

}  // namespace meganeura::nn
