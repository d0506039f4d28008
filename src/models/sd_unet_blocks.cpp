// The UNet's building blocks below the down/mid/up level: the timestep embedding, ResnetBlock2D,
// attention, BasicTransformerBlock and Transformer2DModel (diffusers' layouts and names).
#include <cmath>

#include "meganeura/error.h"
#include "meganeura/models/sd_unet.h"

namespace meganeura::models {

using nn::join;

Tensor timestep_embedding(Graph& graph, Tensor timesteps, int64_t dim, bool flip_sin_to_cos, int64_t freq_shift) {
  if (timesteps.rank() != 1)
    throw Error("timestep_embedding: timesteps must be [B] (one f32 per sample), got " + format_shape(timesteps.shape()));
  if (dim <= 1 || dim % 2 != 0 || 2 * freq_shift >= dim)
    throw Error("timestep_embedding: width " + std::to_string(dim) + " must be even, with freq_shift " +
                std::to_string(freq_shift) + " below half of it");
  const int64_t half = dim / 2;
  std::vector<float> frequencies(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    frequencies[static_cast<size_t>(i)] = static_cast<float>(
        std::exp(-std::log(10000.0) * static_cast<double>(i) / static_cast<double>(half - freq_shift)));
  const Tensor angles =
      graph.reshape(timesteps, {timesteps.dim(0), 1}) * graph.constant(std::move(frequencies), {1, half});
  const Tensor sin = graph.sin(angles), cos = graph.cos(angles);
  return flip_sin_to_cos ? graph.concat({cos, sin}, 1) : graph.concat({sin, cos}, 1);
}

ResnetBlock2D::ResnetBlock2D(Graph& graph, const std::string& prefix, int64_t in_channels, int64_t out_channels,
                             int64_t temb_channels, int64_t groups, double eps)
    : norm1(graph, join(prefix, "norm1"), groups, in_channels, eps),
      conv1(graph, join(prefix, "conv1"), in_channels, out_channels, {3, 3}, Conv2dOptions{.padding = {1, 1}}),
      time_emb_proj(graph, join(prefix, "time_emb_proj"), temb_channels, out_channels, true),
      norm2(graph, join(prefix, "norm2"), groups, out_channels, eps),
      conv2(graph, join(prefix, "conv2"), out_channels, out_channels, {3, 3}, Conv2dOptions{.padding = {1, 1}}) {
  if (in_channels != out_channels)
    conv_shortcut.emplace(graph, join(prefix, "conv_shortcut"), in_channels, out_channels, std::array<int64_t, 2>{1, 1});
}

Tensor ResnetBlock2D::forward(Graph& graph, Tensor x, Tensor temb) const {
  Tensor h = conv1.forward(graph, nn::silu(graph, norm1.forward(graph, x)));
  const Tensor t = time_emb_proj.forward(graph, nn::silu(graph, temb));
  h = h + graph.reshape(t, {t.dim(0), t.dim(1), 1, 1});
  h = conv2.forward(graph, nn::silu(graph, norm2.forward(graph, h)));
  const Tensor shortcut = conv_shortcut ? conv_shortcut->forward(graph, x) : x;
  return shortcut + h;
}

UNetAttention::UNetAttention(Graph& graph, const std::string& prefix, int64_t query_dim, int64_t context_dim,
                             int64_t head_count, int64_t head_size)
    : heads(head_count),
      head_dim(head_size),
      to_q(graph, join(prefix, "to_q"), query_dim, head_count * head_size, false),
      to_k(graph, join(prefix, "to_k"), context_dim, head_count * head_size, false),
      to_v(graph, join(prefix, "to_v"), context_dim, head_count * head_size, false),
      to_out(graph, join(prefix, "to_out.0"), head_count * head_size, query_dim, true) {}

Tensor UNetAttention::forward(Graph& graph, Tensor x, std::optional<Tensor> context) const {
  const Tensor source = context.value_or(x);
  if (x.rank() != 3 || source.rank() != 3 || source.dim(0) != x.dim(0))
    throw Error("UNetAttention: expected x [B, S, dim] and context [B, Skv, dim], got " + format_shape(x.shape()) +
                " and " + format_shape(source.shape()));
  auto split_heads = [&](Tensor t) {
    return graph.permute(graph.reshape(t, {t.dim(0), t.dim(1), heads, head_dim}), {0, 2, 1, 3});
  };
  const Tensor q = split_heads(to_q.forward(graph, x));
  const Tensor k = split_heads(to_k.forward(graph, source));
  const Tensor v = split_heads(to_v.forward(graph, source));
  const Tensor o = graph.attention(q, k, v);  // [B, heads, S, head_dim], scale 1/√head_dim
  const Tensor merged = graph.reshape(graph.permute(o, {0, 2, 1, 3}), {x.dim(0), x.dim(1), heads * head_dim});
  return to_out.forward(graph, merged);
}

BasicTransformerBlock::BasicTransformerBlock(Graph& graph, const std::string& prefix, int64_t dim, int64_t heads,
                                             int64_t head_dim, int64_t context_dim)
    : norm1(graph, join(prefix, "norm1"), dim),
      attn1(graph, join(prefix, "attn1"), dim, dim, heads, head_dim),
      norm2(graph, join(prefix, "norm2"), dim),
      attn2(graph, join(prefix, "attn2"), dim, context_dim, heads, head_dim),
      norm3(graph, join(prefix, "norm3"), dim),
      ff_proj(graph, join(prefix, "ff.net.0.proj"), dim, 2 * 4 * dim, true),
      ff_out(graph, join(prefix, "ff.net.2"), 4 * dim, dim, true) {}

Tensor BasicTransformerBlock::forward(Graph& graph, Tensor x, Tensor context) const {
  x = x + attn1.forward(graph, norm1.forward(graph, x));
  x = x + attn2.forward(graph, norm2.forward(graph, x), context);
  const Tensor projected = ff_proj.forward(graph, norm3.forward(graph, x));
  const int64_t inner = projected.dim(-1) / 2;
  const auto halves = graph.split(projected, -1, {inner, inner});  // GEGLU: (hidden, gate)
  return x + ff_out.forward(graph, halves[0] * graph.gelu(halves[1]));
}

namespace {

std::vector<BasicTransformerBlock> make_transformer_blocks(Graph& graph, const std::string& prefix, int64_t channels,
                                                           int64_t heads, int64_t context_dim, int64_t layers) {
  std::vector<BasicTransformerBlock> blocks;
  blocks.reserve(static_cast<size_t>(layers));
  for (int64_t i = 0; i < layers; ++i)
    blocks.emplace_back(graph, join(prefix, "transformer_blocks." + std::to_string(i)), channels, heads,
                        channels / heads, context_dim);
  return blocks;
}

}  // namespace

Transformer2DModel::Transformer2DModel(Graph& graph, const std::string& prefix, int64_t channels, int64_t heads,
                                       int64_t groups, int64_t context_dim, int64_t layers, bool linear_projection)
    : use_linear_projection(linear_projection),
      norm(graph, join(prefix, "norm"), groups, channels, 1e-6) {
  if (heads <= 0 || channels % heads != 0)
    throw Error("Transformer2DModel \"" + prefix + "\": " + std::to_string(heads) + " heads do not divide " +
                std::to_string(channels) + " channels");
  if (use_linear_projection) {
    proj_in_linear.emplace(graph, join(prefix, "proj_in"), channels, channels, true);
  } else {
    proj_in_conv.emplace(graph, join(prefix, "proj_in"), channels, channels, std::array<int64_t, 2>{1, 1});
  }
  transformer_blocks = make_transformer_blocks(graph, prefix, channels, heads, context_dim, layers);
  if (use_linear_projection) {
    proj_out_linear.emplace(graph, join(prefix, "proj_out"), channels, channels, true);
  } else {
    proj_out_conv.emplace(graph, join(prefix, "proj_out"), channels, channels, std::array<int64_t, 2>{1, 1});
  }
}

Tensor Transformer2DModel::forward(Graph& graph, Tensor x, Tensor context) const {
  // Both projections act on the channels at each position, 1×1 convolution or Linear alike: written as
  // matmuls over [B, C, H·W] with transpose flags, the tokens [B, H·W, C] need no permuted copy.
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  auto matrix = [&](Tensor weight) { return graph.reshape(weight, {weight.dim(0), weight.dim(1)}); };
  const Tensor w_in = matrix(use_linear_projection ? proj_in_linear->weight : proj_in_conv->weight);
  const Tensor b_in = use_linear_projection ? *proj_in_linear->bias : *proj_in_conv->bias;
  const Tensor w_out = matrix(use_linear_projection ? proj_out_linear->weight : proj_out_conv->weight);
  const Tensor b_out = use_linear_projection ? *proj_out_linear->bias : *proj_out_conv->bias;

  const Tensor normalized = graph.reshape(norm.forward(graph, x), {B, C, H * W});
  Tensor tokens = graph.matmul(normalized, w_in, /*transpose_a=*/true, /*transpose_b=*/true) + b_in;  // [B, HW, inner]
  for (const auto& block : transformer_blocks) tokens = block.forward(graph, tokens, context);
  const Tensor out = graph.matmul(w_out, tokens, false, /*transpose_b=*/true) + graph.reshape(b_out, {C, 1});
  return graph.reshape(out, {B, C, H, W}) + x;
}

}  // namespace meganeura::models
