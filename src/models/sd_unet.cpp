// The UNet's down, mid and up blocks and the whole UNet2DConditionModel (diffusers' layout).
#include "meganeura/error.h"
#include "meganeura/models/sd_unet.h"

namespace meganeura::models {

using nn::join;

namespace {

std::string indexed(const std::string& prefix, const std::string& list, size_t index) {
  return join(prefix, list + "." + std::to_string(index));
}

bool has_attention(const std::string& block_type) { return block_type.rfind("CrossAttn", 0) == 0; }

std::vector<Transformer2DModel> make_attentions(Graph& graph, const std::string& prefix, const UNetConfig& config,
                                                size_t count, int64_t channels, int64_t heads) {
  std::vector<Transformer2DModel> attentions;
  attentions.reserve(count);
  for (size_t j = 0; j < count; ++j)
    attentions.emplace_back(graph, indexed(prefix, "attentions", j), channels, heads, config.norm_num_groups,
                            config.cross_attention_dim, config.transformer_layers_per_block,
                            config.use_linear_projection);
  return attentions;
}

const Conv2dOptions kSamePadding{.padding = {1, 1}};

}  // namespace

UNetDownBlock::UNetDownBlock(Graph& graph, const std::string& prefix, const UNetConfig& config, size_t index,
                             int64_t in_channels) {
  const int64_t out_channels = config.block_out_channels[index];
  const auto layers = static_cast<size_t>(config.layers_per_block);
  const bool attention = has_attention(config.down_block_types[index]);
  // diffusers registers a block's attentions before its resnets; the names do not depend on it.
  if (attention) attentions = make_attentions(graph, prefix, config, layers, out_channels, config.heads(index));
  resnets.reserve(layers);
  for (size_t j = 0; j < layers; ++j)
    resnets.emplace_back(graph, indexed(prefix, "resnets", j), j == 0 ? in_channels : out_channels, out_channels,
                         config.time_embed_dim(), config.norm_num_groups, config.norm_eps);
  if (index + 1 < config.block_out_channels.size())
    downsampler.emplace(graph, join(prefix, "downsamplers.0.conv"), out_channels, out_channels,
                        std::array<int64_t, 2>{3, 3}, Conv2dOptions{.stride = {2, 2}, .padding = {1, 1}});
}

Tensor UNetDownBlock::forward(Graph& graph, Tensor x, Tensor temb, Tensor context, std::vector<Tensor>& skips) const {
  for (size_t j = 0; j < resnets.size(); ++j) {
    x = resnets[j].forward(graph, x, temb);
    if (!attentions.empty()) x = attentions[j].forward(graph, x, context);
    skips.push_back(x);
  }
  if (downsampler) {
    x = downsampler->forward(graph, x);
    skips.push_back(x);
  }
  return x;
}

UNetMidBlock::UNetMidBlock(Graph& graph, const std::string& prefix, const UNetConfig& config) {
  const int64_t channels = config.block_out_channels.back();
  const size_t last = config.block_out_channels.size() - 1;
  attentions = make_attentions(graph, prefix, config, 1, channels, config.heads(last));
  for (size_t j = 0; j < 2; ++j)
    resnets.emplace_back(graph, indexed(prefix, "resnets", j), channels, channels, config.time_embed_dim(),
                         config.norm_num_groups, config.norm_eps);
}

Tensor UNetMidBlock::forward(Graph& graph, Tensor x, Tensor temb, Tensor context) const {
  x = resnets[0].forward(graph, x, temb);
  x = attentions[0].forward(graph, x, context);
  return resnets[1].forward(graph, x, temb);
}

UNetUpBlock::UNetUpBlock(Graph& graph, const std::string& prefix, const UNetConfig& config, size_t index) {
  // Up block i mirrors down block n − 1 − i; its first resnet takes the previous up block's output
  // (or the mid block's), and the skips come from the down path in reverse.
  const size_t n = config.block_out_channels.size();
  const int64_t out_channels = config.block_out_channels[n - 1 - index];
  const int64_t prev_output_channels = config.block_out_channels[n - 1 - (index == 0 ? 0 : index - 1)];
  const int64_t skip_in_channels = config.block_out_channels[n - 1 - std::min(index + 1, n - 1)];
  const auto layers = static_cast<size_t>(config.layers_per_block + 1);
  if (has_attention(config.up_block_types[index]))
    attentions = make_attentions(graph, prefix, config, layers, out_channels, config.heads(n - 1 - index));
  resnets.reserve(layers);
  for (size_t j = 0; j < layers; ++j) {
    const int64_t skip_channels = j + 1 == layers ? skip_in_channels : out_channels;
    const int64_t resnet_in = j == 0 ? prev_output_channels : out_channels;
    resnets.emplace_back(graph, indexed(prefix, "resnets", j), resnet_in + skip_channels, out_channels,
                         config.time_embed_dim(), config.norm_num_groups, config.norm_eps);
  }
  if (index + 1 < n)
    upsampler.emplace(graph, join(prefix, "upsamplers.0.conv"), out_channels, out_channels,
                      std::array<int64_t, 2>{3, 3}, kSamePadding);
}

Tensor UNetUpBlock::forward(Graph& graph, Tensor x, Tensor temb, Tensor context, std::vector<Tensor>& skips) const {
  for (size_t j = 0; j < resnets.size(); ++j) {
    if (skips.empty()) throw Error("UNetUpBlock: the down path left too few skip connections");
    const Tensor skip = skips.back();
    skips.pop_back();
    x = resnets[j].forward(graph, graph.concat({x, skip}, 1), temb);
    if (!attentions.empty()) x = attentions[j].forward(graph, x, context);
  }
  if (upsampler) x = upsampler->forward(graph, graph.upsample_nearest2x(x));
  return x;
}

namespace {

const UNetConfig& validated(const UNetConfig& config) {
  config.validate();
  return config;
}

std::vector<UNetDownBlock> make_down_blocks(Graph& graph, const std::string& prefix, const UNetConfig& config) {
  std::vector<UNetDownBlock> blocks;
  int64_t channels = config.block_out_channels[0];
  for (size_t i = 0; i < config.block_out_channels.size(); ++i) {
    blocks.emplace_back(graph, indexed(prefix, "down_blocks", i), config, i, channels);
    channels = config.block_out_channels[i];
  }
  return blocks;
}

std::vector<UNetUpBlock> make_up_blocks(Graph& graph, const std::string& prefix, const UNetConfig& config) {
  std::vector<UNetUpBlock> blocks;
  for (size_t i = 0; i < config.block_out_channels.size(); ++i)
    blocks.emplace_back(graph, indexed(prefix, "up_blocks", i), config, i);
  return blocks;
}

}  // namespace

UNet2DConditionModel::UNet2DConditionModel(Graph& graph, const UNetConfig& c, const std::string& prefix)
    : config(validated(c)),
      conv_in(graph, join(prefix, "conv_in"), c.in_channels, c.block_out_channels[0], {3, 3}, kSamePadding),
      time_linear_1(graph, join(prefix, "time_embedding.linear_1"), c.block_out_channels[0], c.time_embed_dim(), true),
      time_linear_2(graph, join(prefix, "time_embedding.linear_2"), c.time_embed_dim(), c.time_embed_dim(), true),
      down_blocks(make_down_blocks(graph, prefix, c)),
      mid_block(graph, join(prefix, "mid_block"), c),
      up_blocks(make_up_blocks(graph, prefix, c)),
      conv_norm_out(graph, join(prefix, "conv_norm_out"), c.norm_num_groups, c.block_out_channels[0], c.norm_eps),
      conv_out(graph, join(prefix, "conv_out"), c.block_out_channels[0], c.out_channels, {3, 3}, kSamePadding) {}

Tensor UNet2DConditionModel::forward(Graph& graph, Tensor sample, Tensor timesteps, Tensor encoder_hidden_states) const {
  if (sample.rank() != 4 || sample.dim(1) != config.in_channels)
    throw Error("UNet2DConditionModel: sample must be [B, " + std::to_string(config.in_channels) + ", H, W], got " +
                format_shape(sample.shape()));
  const int64_t batch = sample.dim(0);
  const int64_t factor = int64_t{1} << (config.block_out_channels.size() - 1);
  if (sample.dim(2) % factor != 0 || sample.dim(3) % factor != 0)
    throw Error("UNet2DConditionModel: sample height and width " + format_shape(sample.shape()) +
                " must be divisible by " + std::to_string(factor) + " (one halving per down block but the last)");
  if (timesteps.shape() != Shape{batch})
    throw Error("UNet2DConditionModel: timesteps must be [" + std::to_string(batch) + "] (one per sample), got " +
                format_shape(timesteps.shape()));
  if (encoder_hidden_states.rank() != 3 || encoder_hidden_states.dim(0) != batch ||
      encoder_hidden_states.dim(2) != config.cross_attention_dim)
    throw Error("UNet2DConditionModel: encoder_hidden_states must be [" + std::to_string(batch) + ", S, " +
                std::to_string(config.cross_attention_dim) + "], got " + format_shape(encoder_hidden_states.shape()));

  const Tensor projected = timestep_embedding(graph, timesteps, config.block_out_channels[0], config.flip_sin_to_cos,
                                              config.freq_shift);
  const Tensor temb = time_linear_2.forward(graph, nn::silu(graph, time_linear_1.forward(graph, projected)));

  Tensor x = conv_in.forward(graph, sample);
  std::vector<Tensor> skips{x};
  for (const auto& block : down_blocks) x = block.forward(graph, x, temb, encoder_hidden_states, skips);
  x = mid_block.forward(graph, x, temb, encoder_hidden_states);
  for (const auto& block : up_blocks) x = block.forward(graph, x, temb, encoder_hidden_states, skips);
  return conv_out.forward(graph, nn::silu(graph, conv_norm_out.forward(graph, x)));
}

Graph unet_denoising_graph(const UNetConfig& config, int64_t batch, int64_t height, int64_t width,
                           int64_t context_length) {
  if (batch <= 0 || height <= 0 || width <= 0 || context_length <= 0)
    throw Error("unet_denoising_graph: batch, height, width and context length must be positive");
  Graph graph;
  const UNet2DConditionModel unet(graph, config);
  const Tensor sample = graph.input("sample", {batch, config.in_channels, height, width});
  const Tensor timesteps = graph.input("timesteps", {batch});
  const Tensor context = graph.input("encoder_hidden_states", {batch, context_length, config.cross_attention_dim});
  graph.set_outputs({unet.forward(graph, sample, timesteps, context)});
  return graph;
}

}  // namespace meganeura::models
