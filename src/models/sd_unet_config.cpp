// Reads a diffusers UNet2DConditionModel config.json (see UNetConfig in models/sd_unet.h).
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "meganeura/error.h"
#include "meganeura/models/sd_unet.h"

namespace meganeura::models {
namespace {

using nlohmann::json;

// Keys diffusers writes whose only value these layers build; null always means the default too.
struct FixedKey {
  const char* key;
  json accepted;
  const char* meaning;
};

const std::vector<FixedKey>& fixed_keys() {
  static const std::vector<FixedKey> keys = {
      {"center_input_sample", false, "input centring is not built"},
      {"only_cross_attention", false, "only SD's self- then cross-attention blocks are built"},
      {"downsample_padding", 1, "downsampling convolutions use padding 1"},
      {"mid_block_scale_factor", 1, "the mid block's output scale is 1"},
      {"dropout", 0, "dropout is not built (inference and DDPM training use none)"},
      {"act_fn", "silu", "the activation is SiLU"},
      {"reverse_transformer_layers_per_block", nullptr, "per-block transformer depths are not built"},
      {"encoder_hid_dim", nullptr, "an encoder projection is not built"},
      {"encoder_hid_dim_type", nullptr, "an encoder projection is not built"},
      {"num_attention_heads", nullptr, "give the head counts in attention_head_dim as diffusers does"},
      {"dual_cross_attention", false, "dual cross-attention is not built"},
      {"class_embed_type", nullptr, "class embeddings are not built (condition through the context)"},
      {"addition_embed_type", nullptr, "additional embeddings are not built"},
      {"addition_time_embed_dim", nullptr, "additional time embeddings are not built"},
      {"num_class_embeds", nullptr, "class embeddings are not built (condition through the context)"},
      {"resnet_time_scale_shift", "default", "the time embedding is added (\"default\"), not scale-shift"},
      {"resnet_skip_time_act", false, "the time embedding passes through SiLU"},
      {"resnet_out_scale_factor", 1, "resnet outputs are not rescaled"},
      {"time_embedding_type", "positional", "the timestep embedding is sinusoidal (\"positional\")"},
      {"time_embedding_dim", nullptr, "the time embedding is 4 × block_out_channels[0] wide"},
      {"time_embedding_act_fn", nullptr, "no activation follows the time embedding"},
      {"timestep_post_act", nullptr, "no activation follows the time embedding"},
      {"time_cond_proj_dim", nullptr, "timestep conditioning projections are not built"},
      {"conv_in_kernel", 3, "conv_in is 3×3"},
      {"conv_out_kernel", 3, "conv_out is 3×3"},
      {"projection_class_embeddings_input_dim", nullptr, "class embedding projections are not built"},
      {"attention_type", "default", "attention is the default (ungated) kind"},
      {"class_embeddings_concat", false, "class embeddings are not built"},
      {"mid_block_only_cross_attention", nullptr, "the mid block has self- and cross-attention"},
      {"cross_attention_norm", nullptr, "the context is not normalised"},
  };
  return keys;
}

// Keys read into UNetConfig, or that only change numerics (upcast_attention: this library computes
// attention in f32 anyway) or configure parts that are off.
const std::vector<std::string>& read_keys() {
  static const std::vector<std::string> keys = {
      "sample_size", "in_channels", "out_channels", "flip_sin_to_cos", "freq_shift", "down_block_types",
      "mid_block_type", "up_block_types", "block_out_channels", "layers_per_block", "norm_num_groups", "norm_eps",
      "cross_attention_dim", "transformer_layers_per_block", "attention_head_dim", "use_linear_projection",
      "upcast_attention", "addition_embed_type_num_heads"};
  return keys;
}

class Reader {
 public:
  Reader(const json& root, const std::string& label) : root_(root), label_(label) {}

  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    throw Error(label_ + ": \"" + key + "\" " + problem);
  }

  const json* find(const std::string& key) const {
    const auto it = root_.find(key);
    return it == root_.end() || it->is_null() ? nullptr : &*it;
  }

  int64_t positive_value(const json& value, const std::string& key) const {
    if (!value.is_number_integer()) fail(key, "must be a positive integer, got " + value.dump());
    const auto number = value.get<int64_t>();
    if (number <= 0 || number > std::numeric_limits<int32_t>::max())
      fail(key, "must be a positive integer below 2^31, got " + value.dump());
    return number;
  }

  int64_t positive(const std::string& key, int64_t fallback) const {
    const json* value = find(key);
    return value ? positive_value(*value, key) : fallback;
  }

  int64_t integer(const std::string& key, int64_t fallback) const {
    const json* value = find(key);
    if (!value) return fallback;
    if (!value->is_number_integer()) fail(key, "must be an integer, got " + value->dump());
    const auto number = value->get<int64_t>();
    if (number < -1000000 || number > 1000000) fail(key, "is out of range: " + value->dump());
    return number;
  }

  double real(const std::string& key, double fallback) const {
    const json* value = find(key);
    if (!value) return fallback;
    if (!value->is_number()) fail(key, "must be a number, got " + value->dump());
    const double number = value->get<double>();
    if (!std::isfinite(number) || number <= 0) fail(key, "must be a positive number, got " + value->dump());
    return number;
  }

  bool flag(const std::string& key, bool fallback) const {
    const json* value = find(key);
    if (!value) return fallback;
    if (!value->is_boolean()) fail(key, "must be true or false, got " + value->dump());
    return value->get<bool>();
  }

  std::string text(const std::string& key, const std::string& fallback) const {
    const json* value = find(key);
    if (!value) return fallback;
    if (!value->is_string()) fail(key, "must be a string, got " + value->dump());
    return value->get<std::string>();
  }

  std::vector<std::string> texts(const std::string& key) const {
    const json* value = find(key);
    if (!value) fail(key, "is missing; a UNet2DConditionModel config.json must give it");
    if (!value->is_array() || value->empty()) fail(key, "must be a non-empty list of block names, got " + value->dump());
    std::vector<std::string> out;
    for (const json& item : *value) {
      if (!item.is_string()) fail(key, "must hold block names (strings), got " + item.dump());
      out.push_back(item.get<std::string>());
    }
    return out;
  }

  // A positive number, or a list of them when `allow_list`.
  std::vector<int64_t> sizes(const std::string& key, bool allow_list) const {
    const json* value = find(key);
    if (!value) fail(key, "is missing; a UNet2DConditionModel config.json must give it");
    if (value->is_array()) {
      if (!allow_list) fail(key, "must be a single number here, got " + value->dump());
      if (value->empty()) fail(key, "must not be an empty list");
      std::vector<int64_t> out;
      for (const json& item : *value) out.push_back(positive_value(item, key));
      return out;
    }
    return {positive_value(*value, key)};
  }

  const json& root() const { return root_; }

 private:
  const json& root_;
  const std::string& label_;
};

void check_keys(const Reader& reader) {
  for (const auto& [key, value] : reader.root().items()) {
    if (!key.empty() && key[0] == '_') continue;  // _class_name, _diffusers_version, _name_or_path
    bool known = false;
    for (const auto& name : read_keys()) known = known || name == key;
    for (const FixedKey& fixed : fixed_keys()) {
      if (key != fixed.key) continue;
      known = true;
      if (!value.is_null() && value != fixed.accepted)
        reader.fail(key, "is " + value.dump() + "; only " + fixed.accepted.dump() + " is supported (" + fixed.meaning +
                             ")");
    }
    if (!known) reader.fail(key, "is not a UNet2DConditionModel option these layers know; remove it or use a "
                                 "Stable Diffusion 1.x/2.x UNet config");
  }
}

}  // namespace

UNetConfig UNetConfig::from_json(std::string_view json_text, const std::string& label) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(label + ": not valid JSON (" + e.what() + ")");
  }
  if (!root.is_object())
    throw Error(label + ": expected a JSON object at the top level, got " + std::string(root.type_name()));
  const Reader reader(root, label);
  if (const json* name = reader.find("_class_name"); name && *name != "UNet2DConditionModel")
    reader.fail("_class_name", "is " + name->dump() + "; only \"UNet2DConditionModel\" configs are supported");
  check_keys(reader);

  UNetConfig config;
  config.in_channels = reader.positive("in_channels", config.in_channels);
  config.out_channels = reader.positive("out_channels", config.out_channels);
  config.sample_size = reader.positive("sample_size", config.sample_size);
  config.down_block_types = reader.texts("down_block_types");
  config.up_block_types = reader.texts("up_block_types");
  config.mid_block_type = reader.text("mid_block_type", config.mid_block_type);
  config.block_out_channels = reader.sizes("block_out_channels", true);
  config.layers_per_block = reader.sizes("layers_per_block", false)[0];
  config.norm_num_groups = reader.positive("norm_num_groups", config.norm_num_groups);
  config.cross_attention_dim = reader.sizes("cross_attention_dim", false)[0];
  config.attention_head_dim = reader.sizes("attention_head_dim", true);
  config.norm_eps = reader.real("norm_eps", config.norm_eps);
  config.flip_sin_to_cos = reader.flag("flip_sin_to_cos", config.flip_sin_to_cos);
  config.freq_shift = reader.integer("freq_shift", config.freq_shift);
  config.use_linear_projection = reader.flag("use_linear_projection", config.use_linear_projection);
  if (const json* depth = reader.find("transformer_layers_per_block"))
    config.transformer_layers_per_block = reader.positive_value(*depth, "transformer_layers_per_block");
  reader.flag("upcast_attention", false);
  if (config.attention_head_dim.size() == 1 && config.down_block_types.size() > 1)
    config.attention_head_dim.assign(config.down_block_types.size(), config.attention_head_dim[0]);
  config.validate(label);
  return config;
}

UNetConfig UNetConfig::load(const std::string& path) {
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(file)) file /= "config.json";
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error("UNetConfig: cannot open " + file.string() + "; give a diffusers unet/config.json or its folder");
  std::stringstream text;
  text << in.rdbuf();
  return from_json(text.str(), file.string());
}

UNetConfig UNetConfig::sd15() {
  UNetConfig config;
  config.in_channels = 4;
  config.out_channels = 4;
  config.sample_size = 64;
  config.down_block_types = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"};
  config.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"};
  config.mid_block_type = "UNetMidBlock2DCrossAttn";
  config.block_out_channels = {320, 640, 1280, 1280};
  config.layers_per_block = 2;
  config.norm_num_groups = 32;
  config.cross_attention_dim = 768;
  config.attention_head_dim = {8, 8, 8, 8};
  config.norm_eps = 1e-5;
  config.flip_sin_to_cos = true;
  config.freq_shift = 0;
  return config;
}

int64_t UNetConfig::heads(size_t block) const {
  if (attention_head_dim.empty()) throw Error("UNetConfig: attention_head_dim is empty");
  return attention_head_dim[std::min(block, attention_head_dim.size() - 1)];
}

void UNetConfig::validate(const std::string& label) const {
  auto fail = [&](const std::string& key, const std::string& problem) {
    throw Error(label + ": \"" + key + "\" " + problem);
  };
  const size_t blocks = block_out_channels.size();
  if (blocks == 0) fail("block_out_channels", "must list at least one block");
  if (down_block_types.size() != blocks)
    fail("down_block_types", "lists " + std::to_string(down_block_types.size()) + " blocks but block_out_channels " +
                                 std::to_string(blocks));
  if (up_block_types.size() != blocks)
    fail("up_block_types", "lists " + std::to_string(up_block_types.size()) + " blocks but block_out_channels " +
                               std::to_string(blocks));
  if (attention_head_dim.size() != blocks)
    fail("attention_head_dim", "lists " + std::to_string(attention_head_dim.size()) +
                                   " head counts but there are " + std::to_string(blocks) + " blocks");
  for (const auto& type : down_block_types)
    if (type != "CrossAttnDownBlock2D" && type != "DownBlock2D")
      fail("down_block_types", "holds \"" + type + "\"; only CrossAttnDownBlock2D and DownBlock2D are supported");
  for (const auto& type : up_block_types)
    if (type != "CrossAttnUpBlock2D" && type != "UpBlock2D")
      fail("up_block_types", "holds \"" + type + "\"; only CrossAttnUpBlock2D and UpBlock2D are supported");
  if (mid_block_type != "UNetMidBlock2DCrossAttn")
    fail("mid_block_type", "is \"" + mid_block_type + "\"; only UNetMidBlock2DCrossAttn is supported");
  for (int64_t size : {in_channels, out_channels, sample_size, layers_per_block, norm_num_groups, cross_attention_dim,
                       transformer_layers_per_block})
    if (size <= 0) fail("sizes", "must be positive (channels, layers, groups, dims)");
  for (size_t i = 0; i < blocks; ++i) {
    const int64_t channels = block_out_channels[i];
    if (channels <= 0 || channels % norm_num_groups != 0)
      fail("block_out_channels", "holds " + std::to_string(channels) + ", which norm_num_groups " +
                                     std::to_string(norm_num_groups) + " does not divide");
    if (attention_head_dim[i] <= 0 || channels % attention_head_dim[i] != 0)
      fail("attention_head_dim", "gives " + std::to_string(attention_head_dim[i]) + " heads for block " +
                                     std::to_string(i) + " of " + std::to_string(channels) +
                                     " channels; the heads must divide the channels");
  }
  if (block_out_channels.back() % heads(blocks - 1) != 0) fail("attention_head_dim", "must divide the mid block's channels");
  if (block_out_channels[0] % 2 != 0) fail("block_out_channels", "[0] must be even (the timestep embedding's width)");
  if (2 * freq_shift >= block_out_channels[0]) fail("freq_shift", "must be below half of block_out_channels[0]");
}

}  // namespace meganeura::models
