// UNetConfig::from_json on Stable Diffusion 1.5's unet/config.json (the published text), on lists and
// numbers for attention_head_dim, and on malformed or unsupported configs (an Error naming the field).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "meganeura/models/sd_unet.h"

namespace meganeura::models {
namespace {

const char* kSd15Json = R"({
  "_class_name": "UNet2DConditionModel",
  "_diffusers_version": "0.6.0",
  "act_fn": "silu",
  "attention_head_dim": 8,
  "block_out_channels": [320, 640, 1280, 1280],
  "center_input_sample": false,
  "cross_attention_dim": 768,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "downsample_padding": 1,
  "flip_sin_to_cos": true,
  "freq_shift": 0,
  "in_channels": 4,
  "layers_per_block": 2,
  "mid_block_scale_factor": 1,
  "norm_eps": 1e-05,
  "norm_num_groups": 32,
  "out_channels": 4,
  "sample_size": 64,
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
})";

std::string error_of(const std::string& text) {
  try {
    UNetConfig::from_json(text, "unet/config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The SD 1.5 text with one key set to `value` (JSON text), added when absent.
std::string with(const std::string& key, const std::string& value) {
  nlohmann::json config = nlohmann::json::parse(kSd15Json);
  config[key] = nlohmann::json::parse(value);
  return config.dump();
}

TEST(SdUnetConfig, ParsesStableDiffusion15) {
  const UNetConfig config = UNetConfig::from_json(kSd15Json);
  const UNetConfig sd15 = UNetConfig::sd15();
  EXPECT_EQ(config.block_out_channels, sd15.block_out_channels);
  EXPECT_EQ(config.down_block_types, sd15.down_block_types);
  EXPECT_EQ(config.up_block_types, sd15.up_block_types);
  EXPECT_EQ(config.mid_block_type, "UNetMidBlock2DCrossAttn");
  EXPECT_EQ(config.attention_head_dim, (std::vector<int64_t>{8, 8, 8, 8}));
  EXPECT_EQ(config.layers_per_block, 2);
  EXPECT_EQ(config.norm_num_groups, 32);
  EXPECT_EQ(config.cross_attention_dim, 768);
  EXPECT_DOUBLE_EQ(config.norm_eps, 1e-5);
  EXPECT_TRUE(config.flip_sin_to_cos);
  EXPECT_EQ(config.freq_shift, 0);
  EXPECT_EQ(config.in_channels, 4);
  EXPECT_EQ(config.out_channels, 4);
  EXPECT_EQ(config.sample_size, 64);
  EXPECT_FALSE(config.use_linear_projection);
  EXPECT_EQ(config.time_embed_dim(), 1280);
}

TEST(SdUnetConfig, AttentionHeadDimMayBeAList) {
  const UNetConfig config = UNetConfig::from_json(with("attention_head_dim", "[5, 10, 20, 20]"));
  EXPECT_EQ(config.attention_head_dim, (std::vector<int64_t>{5, 10, 20, 20}));
  EXPECT_EQ(config.heads(3), 20);
  EXPECT_NE(error_of(with("attention_head_dim", "[8, 8]")).find("attention_head_dim"), std::string::npos);
  EXPECT_NE(error_of(with("attention_head_dim", "7")).find("attention_head_dim"), std::string::npos);
}

TEST(SdUnetConfig, LinearProjectionAndDefaultsOfNewerDiffusers) {
  const std::string text = with("use_linear_projection", "true");
  EXPECT_TRUE(UNetConfig::from_json(text).use_linear_projection);
  // Newer diffusers writes every option; their default values are accepted.
  nlohmann::json full = nlohmann::json::parse(kSd15Json);
  full.update(nlohmann::json::parse(R"({"resnet_time_scale_shift": "default", "time_embedding_type": "positional",
      "upcast_attention": false, "dual_cross_attention": false, "only_cross_attention": false,
      "num_class_embeds": null, "class_embed_type": null, "conv_in_kernel": 3, "dropout": 0.0})"));
  EXPECT_EQ(UNetConfig::from_json(full.dump()).block_out_channels.size(), 4u);
}

TEST(SdUnetConfig, MalformedJsonAndTypesNameTheProblem) {
  EXPECT_NE(error_of("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("[1, 2]").find("JSON object"), std::string::npos);
  EXPECT_NE(error_of(with("block_out_channels", "\"wide\"")).find("block_out_channels"), std::string::npos);
  EXPECT_NE(error_of(with("norm_num_groups", "-4")).find("norm_num_groups"), std::string::npos);
  EXPECT_NE(error_of(with("layers_per_block", "[2, 2, 2, 2]")).find("layers_per_block"), std::string::npos);
  EXPECT_NE(error_of(with("flip_sin_to_cos", "1")).find("flip_sin_to_cos"), std::string::npos);
  EXPECT_NE(error_of(with("norm_num_groups", "48")).find("norm_num_groups"), std::string::npos);
  EXPECT_NE(error_of(with("down_block_types", "[\"DownBlock2D\"]")).find("down_block_types"), std::string::npos);
  EXPECT_NE(error_of(with("_class_name", "\"UNet2DModel\"")).find("_class_name"), std::string::npos);
  EXPECT_NE(error_of(R"({"in_channels": 4})").find("down_block_types"), std::string::npos);
  try {
    UNetConfig::load("no-such-folder/unet");
    ADD_FAILURE() << "a missing config loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-folder"), std::string::npos) << e.what();
  }
}

TEST(SdUnetConfig, UnsupportedOptionsNameTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"act_fn", "\"gelu\""},
      {"class_embed_type", "\"timestep\""},
      {"num_class_embeds", "10"},
      {"resnet_time_scale_shift", "\"scale_shift\""},
      {"center_input_sample", "true"},
      {"downsample_padding", "0"},
      {"addition_embed_type", "\"text_time\""},
      {"time_embedding_type", "\"fourier\""},
      {"mid_block_type", "\"UNetMidBlock2DSimpleCrossAttn\""},
      {"up_block_types", R"(["UpBlock2D", "AttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"])"},
      {"frobnicate", "true"},
  };
  for (const auto& [key, value] : cases) {
    const std::string message = error_of(with(key, value));
    EXPECT_NE(message.find(key), std::string::npos) << key << ": " << message;
    EXPECT_NE(message.find("unet/config.json"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace meganeura::models
