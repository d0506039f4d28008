// meganeura/models/sd_unet.h — the UNet2DConditionModel of Stable Diffusion 1.5 (diffusers'
// layout), built from a diffusers config.json with the parameters under diffusers' names.
//
//   auto config = meganeura::models::UNetConfig::sd15();   // or UNetConfig::load("unet/config.json")
//   meganeura::Graph g;
//   meganeura::models::UNet2DConditionModel unet(g, config);            // conv_in.weight, ...
//   auto sample = g.input("sample", {2, 4, 64, 64});
//   auto timesteps = g.input("timesteps", {2});                         // f32, one per sample
//   auto context = g.input("encoder_hidden_states", {2, 77, 768});
//   g.set_outputs({unet.forward(g, sample, timesteps, context)});       // [2, 4, 64, 64]
//   meganeura::Session session = meganeura::build_inference_session(g);
//   session.load_parameters("unet/diffusion_pytorch_model.safetensors");
//
// The layers follow diffusers exactly: a sinusoidal timestep embedding computed in the graph from
// the f32 timesteps (flip_sin_to_cos, freq_shift), TimestepEmbedding (linear_1 → SiLU → linear_2),
// ResnetBlock2D (GroupNorm → SiLU → conv, plus the projected time embedding), Transformer2DModel
// (GroupNorm → proj_in → BasicTransformerBlocks with self-attention, cross-attention and a GEGLU
// feed-forward → proj_out → residual), strided-conv downsampling, nearest 2× upsampling then a conv,
// skip connections concatenated along the channels. Dropout is the identity (diffusers' default 0).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "meganeura/graph.h"
#include "meganeura/nn.h"

namespace meganeura::models {

// The fields of a diffusers UNet2DConditionModel config.json the architecture needs. from_json
// accepts every key diffusers writes; a key whose value asks for something these layers do not
// build (another activation, class embeddings, linear projections of another kind...) is an Error
// naming the key, and so is a key diffusers does not know.
struct UNetConfig {
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  int64_t sample_size = 64;
  std::vector<std::string> down_block_types;  // "CrossAttnDownBlock2D" or "DownBlock2D"
  std::vector<std::string> up_block_types;    // "UpBlock2D" or "CrossAttnUpBlock2D"
  std::string mid_block_type = "UNetMidBlock2DCrossAttn";
  std::vector<int64_t> block_out_channels;
  int64_t layers_per_block = 2;
  int64_t norm_num_groups = 32;
  int64_t cross_attention_dim = 768;
  // Heads per block, one per down block (diffusers' historical name: it is the head count, and the
  // head size is the block's channels / heads). A single number in the JSON applies to every block.
  std::vector<int64_t> attention_head_dim;
  double norm_eps = 1e-5;
  bool flip_sin_to_cos = true;
  int64_t freq_shift = 0;
  bool use_linear_projection = false;    // proj_in / proj_out as Linear (SD 2) instead of 1×1 convs
  int64_t transformer_layers_per_block = 1;

  // `label` names the source in error messages.
  static UNetConfig from_json(std::string_view json_text, const std::string& label = "config.json");
  // A config.json file, or a folder holding one.
  static UNetConfig load(const std::string& path);
  // The values of Stable Diffusion 1.5's unet/config.json.
  static UNetConfig sd15();

  // Checks the sizes fit together (channels divisible by the groups and heads, matching list
  // lengths); Error naming the field otherwise. The model's constructor calls it.
  void validate(const std::string& label = "UNetConfig") const;
  int64_t time_embed_dim() const { return block_out_channels.empty() ? 0 : block_out_channels[0] * 4; }
  int64_t heads(size_t block) const;  // attention heads of down block `block` (clamped like diffusers)
};

// get_timestep_embedding of diffusers: timesteps [B] f32 → [B, dim] with frequencies
// exp(−ln(10000)·i / (dim/2 − freq_shift)), halves [sin, cos] (or [cos, sin] when flipped).
Tensor timestep_embedding(Graph& graph, Tensor timesteps, int64_t dim, bool flip_sin_to_cos, int64_t freq_shift);

// diffusers' ResnetBlock2D: norm1, conv1, time_emb_proj, norm2, conv2, conv_shortcut (1×1, only
// when the channel counts differ).
struct ResnetBlock2D {
  ResnetBlock2D(Graph& graph, const std::string& prefix, int64_t in_channels, int64_t out_channels,
                int64_t temb_channels, int64_t groups, double eps);
  // x [B, in, H, W], temb [B, temb_channels] → [B, out, H, W].
  Tensor forward(Graph& graph, Tensor x, Tensor temb) const;

  nn::GroupNorm norm1;
  nn::Conv2d conv1;
  nn::Linear time_emb_proj;
  nn::GroupNorm norm2;
  nn::Conv2d conv2;
  std::optional<nn::Conv2d> conv_shortcut;
};

// diffusers' Attention with its default processor: to_q, to_k, to_v (no bias), to_out.0 (bias);
// scale 1/√head_dim, no mask.
struct UNetAttention {
  UNetAttention(Graph& graph, const std::string& prefix, int64_t query_dim, int64_t context_dim, int64_t heads,
                int64_t head_dim);
  // x [B, S, query_dim]; context [B, Skv, context_dim] (cross-attention) or none (self-attention).
  Tensor forward(Graph& graph, Tensor x, std::optional<Tensor> context = std::nullopt) const;

  int64_t heads;
  int64_t head_dim;
  nn::Linear to_q;
  nn::Linear to_k;
  nn::Linear to_v;
  nn::Linear to_out;
};

// BasicTransformerBlock: x += attn1(norm1(x)); x += attn2(norm2(x), context);
// x += ff.net.2(GEGLU(norm3(x))) where GEGLU = ff.net.0.proj to 2·4·dim, split into (h, gate),
// h·gelu(gate) (erf form).
struct BasicTransformerBlock {
  BasicTransformerBlock(Graph& graph, const std::string& prefix, int64_t dim, int64_t heads, int64_t head_dim,
                        int64_t context_dim);
  Tensor forward(Graph& graph, Tensor x, Tensor context) const;

  nn::LayerNorm norm1;
  UNetAttention attn1;
  nn::LayerNorm norm2;
  UNetAttention attn2;
  nn::LayerNorm norm3;
  nn::Linear ff_proj;  // ff.net.0.proj
  nn::Linear ff_out;   // ff.net.2
};

// Transformer2DModel over an image: norm (GroupNorm, eps 1e-6) → proj_in → blocks → proj_out →
// + input.
struct Transformer2DModel {
  Transformer2DModel(Graph& graph, const std::string& prefix, int64_t channels, int64_t heads, int64_t groups,
                     int64_t context_dim, int64_t layers, bool use_linear_projection);
  // x [B, C, H, W], context [B, S, context_dim] → [B, C, H, W].
  Tensor forward(Graph& graph, Tensor x, Tensor context) const;

  bool use_linear_projection;
  nn::GroupNorm norm;
  std::optional<nn::Conv2d> proj_in_conv, proj_out_conv;
  std::optional<nn::Linear> proj_in_linear, proj_out_linear;
  std::vector<BasicTransformerBlock> transformer_blocks;
};

// One down block: resnets (+ attentions for CrossAttnDownBlock2D), then downsamplers.0.conv
// (3×3, stride 2, padding 1) unless it is the last block.
struct UNetDownBlock {
  UNetDownBlock(Graph& graph, const std::string& prefix, const UNetConfig& config, size_t index, int64_t in_channels);
  // Appends every intermediate state the up path concatenates to `skips`.
  Tensor forward(Graph& graph, Tensor x, Tensor temb, Tensor context, std::vector<Tensor>& skips) const;

  std::vector<ResnetBlock2D> resnets;
  std::vector<Transformer2DModel> attentions;
  std::optional<nn::Conv2d> downsampler;
};

// UNetMidBlock2DCrossAttn: resnets.0 → attentions.0 → resnets.1.
struct UNetMidBlock {
  UNetMidBlock(Graph& graph, const std::string& prefix, const UNetConfig& config);
  Tensor forward(Graph& graph, Tensor x, Tensor temb, Tensor context) const;

  std::vector<ResnetBlock2D> resnets;
  std::vector<Transformer2DModel> attentions;
};

// One up block: layers_per_block + 1 resnets over [x, skip] concatenated along the channels
// (+ attentions for CrossAttnUpBlock2D), then upsamplers.0.conv after a nearest 2× upsampling
// unless it is the last block.
struct UNetUpBlock {
  UNetUpBlock(Graph& graph, const std::string& prefix, const UNetConfig& config, size_t index);
  // Takes its skips from the back of `skips`.
  Tensor forward(Graph& graph, Tensor x, Tensor temb, Tensor context, std::vector<Tensor>& skips) const;

  std::vector<ResnetBlock2D> resnets;
  std::vector<Transformer2DModel> attentions;
  std::optional<nn::Conv2d> upsampler;
};

// The whole UNet, parameters named as in diffusers' state dict ("conv_in.weight",
// "down_blocks.0.resnets.0.norm1.weight", "time_embedding.linear_1.weight", ...), each prefixed by
// `prefix` + "." when a prefix is given.
struct UNet2DConditionModel {
  UNet2DConditionModel(Graph& graph, const UNetConfig& config, const std::string& prefix = "");

  // sample [B, in_channels, H, W] f32, timesteps [B] f32, encoder_hidden_states
  // [B, S, cross_attention_dim] → [B, out_channels, H, W]. H and W must be divisible by
  // 2^(number of blocks − 1).
  Tensor forward(Graph& graph, Tensor sample, Tensor timesteps, Tensor encoder_hidden_states) const;

  UNetConfig config;
  nn::Conv2d conv_in;
  nn::Linear time_linear_1;  // time_embedding.linear_1
  nn::Linear time_linear_2;  // time_embedding.linear_2
  std::vector<UNetDownBlock> down_blocks;
  UNetMidBlock mid_block;
  std::vector<UNetUpBlock> up_blocks;
  nn::GroupNorm conv_norm_out;
  nn::Conv2d conv_out;
};

// A forward-only graph: inputs "sample" [batch, in_channels, height, width], "timesteps" [batch],
// "encoder_hidden_states" [batch, context_length, cross_attention_dim]; outputs {prediction}
// [batch, out_channels, height, width].
Graph unet_denoising_graph(const UNetConfig& config, int64_t batch, int64_t height, int64_t width,
                           int64_t context_length);

}  // namespace meganeura::models
