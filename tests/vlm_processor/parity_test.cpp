// Parity with transformers' SmolVLMImageProcessor and SmolVLMProcessor on data it produced
// (bench/make_smolvlm2_processor_data.py, output committed in tests/vlm_processor/data): decoding, pixel
// values, tile grids and prompt strings.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "meganeura/image.h"
#include "meganeura/models/smolvlm2_processor.h"
#include "meganeura/safetensors.h"

namespace {

using meganeura::Image;
using meganeura::models::SmolVlmProcessor;

// MEGANEURA_SMOLVLM_PROCESSOR_DATA points at freshly made data before it is committed.
std::filesystem::path data_dir() {
  const char* override_dir = std::getenv("MEGANEURA_SMOLVLM_PROCESSOR_DATA");
  if (override_dir && *override_dir) return override_dir;
  return std::filesystem::path(MEGANEURA_SOURCE_DIR) / "tests/vlm_processor/data";
}
const std::filesystem::path kDataDir = data_dir();

class SmolVlmParity : public testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kDataDir / "expected.json"))
      GTEST_SKIP() << "no parity data in " << kDataDir
                   << "; make it with transformers: python3 bench/make_smolvlm2_processor_data.py <dir>";
    std::ifstream in(kDataDir / "expected.json");
    expected_ = nlohmann::json::parse(in);
    tensors_ = std::make_unique<meganeura::SafeTensorsFile>(
        meganeura::SafeTensorsFile::open((kDataDir / "expected.safetensors").string()));
  }

  // The image exactly as Pillow decoded it, so that processing is compared on identical input.
  Image pillow_decoded(const std::string& name) const {
    const auto& info = tensors_->tensor("decoded/" + name);
    EXPECT_EQ(info.dtype, meganeura::SafeTensorsDType::U8);
    Image image;
    image.height = info.shape.at(0);
    image.width = info.shape.at(1);
    image.channels = info.shape.size() == 3 ? info.shape[2] : 1;
    const auto* bytes = reinterpret_cast<const uint8_t*>(info.bytes.data());
    image.pixels.assign(bytes, bytes + info.bytes.size());
    return image;
  }

  nlohmann::json expected_;
  std::unique_ptr<meganeura::SafeTensorsFile> tensors_;
};

TEST_F(SmolVlmParity, DecodingMatchesPillow) {
  for (const auto& [name, file] : expected_.at("images").items()) {
    Image ours = meganeura::read_image((kDataDir / "images" / file.get<std::string>()).string());
    Image theirs = pillow_decoded(name);
    ASSERT_EQ(ours.width, theirs.width) << name;
    ASSERT_EQ(ours.height, theirs.height) << name;
    ASSERT_EQ(ours.channels, theirs.channels) << name;
    size_t differing = 0;
    for (size_t i = 0; i < ours.pixels.size(); ++i) differing += ours.pixels[i] != theirs.pixels[i];
    EXPECT_EQ(differing, 0u) << name << ": " << differing << " of " << ours.pixels.size() << " samples differ";
  }
}

// Every Pillow filter, down and up, on RGB and (premultiplied) RGBA: bit for bit.
TEST_F(SmolVlmParity, ResizeMatchesPillowExactly) {
  ASSERT_TRUE(expected_.contains("resize"));
  for (const auto& c : expected_.at("resize")) {
    Image input = meganeura::read_image((kDataDir / "resize_inputs" / c.at("image").get<std::string>()).string());
    Image ours = meganeura::resize(input, c.at("width"), c.at("height"),
                                   meganeura::resample_filter_from_code(c.at("filter").get<int64_t>()));
    const auto& info = tensors_->tensor(c.at("tensor").get<std::string>());
    ASSERT_EQ(info.bytes.size(), ours.pixels.size()) << c.dump();
    const auto* theirs = reinterpret_cast<const uint8_t*>(info.bytes.data());
    size_t differing = 0;
    for (size_t i = 0; i < ours.pixels.size(); ++i) differing += ours.pixels[i] != theirs[i];
    EXPECT_EQ(differing, 0u) << c.at("tensor").get<std::string>();
  }
}

TEST_F(SmolVlmParity, PixelValuesRowsAndColsMatchTransformers) {
  double worst = 0.0;
  for (const auto& c : expected_.at("cases")) {
    const std::string set = c.at("set"), name = c.at("image");
    const std::string key = set + "/" + name;
    SmolVlmProcessor processor = SmolVlmProcessor::from_directory((kDataDir / "sets" / set).string());
    auto out = processor.preprocess(pillow_decoded(name));
    EXPECT_EQ(out.rows, c.at("rows").get<int64_t>()) << key;
    EXPECT_EQ(out.cols, c.at("cols").get<int64_t>()) << key;
    const auto& info = tensors_->tensor(key + "/pixel_values");
    ASSERT_EQ(out.shape(), info.shape) << key;
    std::vector<float> want = tensors_->to_f32(key + "/pixel_values");
    double max_diff = 0.0;
    size_t differing = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      double d = std::fabs(static_cast<double>(out.values[i]) - want[i]);
      max_diff = std::max(max_diff, d);
      differing += d > 0.0;
    }
    worst = std::max(worst, max_diff);
    EXPECT_LE(max_diff, 1e-5) << key << ": " << differing << " of " << want.size() << " values differ";
    std::string mask_key = key + "/pixel_attention_mask";
    if (tensors_->contains(mask_key)) {
      std::vector<int32_t> mask = tensors_->to_i32(mask_key);
      ASSERT_EQ(mask.size(), out.pixel_attention_mask.size()) << key;
      for (size_t i = 0; i < mask.size(); ++i) ASSERT_EQ(mask[i], out.pixel_attention_mask[i]) << key << " " << i;
    } else {
      EXPECT_TRUE(out.pixel_attention_mask.empty()) << key;
    }
  }
  RecordProperty("worst_max_abs_diff", std::to_string(worst));
  std::cout << "pixel_values: worst max abs diff over all cases " << worst << "\n";
}

// The whole file path: our decoder, then the processor, against transformers on Pillow's decode.
TEST_F(SmolVlmParity, FromFilesMatchesTransformers) {
  for (const auto& c : expected_.at("cases")) {
    const std::string set = c.at("set"), name = c.at("image");
    SmolVlmProcessor processor = SmolVlmProcessor::from_directory((kDataDir / "sets" / set).string());
    std::string file = expected_.at("images").at(name);
    auto out = processor.preprocess(meganeura::read_image((kDataDir / "images" / file).string()));
    std::vector<float> want = tensors_->to_f32(set + "/" + name + "/pixel_values");
    ASSERT_EQ(out.values.size(), want.size());
    double max_diff = 0.0;
    for (size_t i = 0; i < want.size(); ++i) max_diff = std::max(max_diff, std::fabs(double(out.values[i]) - want[i]));
    EXPECT_LE(max_diff, 1e-5) << set << "/" << name;
  }
}

TEST_F(SmolVlmParity, ExpandedPromptsMatch) {
  size_t checked = 0;
  for (const auto& c : expected_.at("cases")) {
    SmolVlmProcessor processor =
        SmolVlmProcessor::from_directory((kDataDir / "sets" / c.at("set").get<std::string>()).string());
    for (const auto& p : c.at("prompts")) {
      EXPECT_EQ(processor.expand_prompt(p.at("text").get<std::string>(), c.at("rows"), c.at("cols")),
                p.at("expanded").get<std::string>());
      ++checked;
    }
  }
  EXPECT_GT(checked, 0u);
}

TEST_F(SmolVlmParity, ChatPromptsMatchTheTemplate) {
  if (expected_.at("chat").empty()) GTEST_SKIP() << "the data was made without a chat template";
  SmolVlmProcessor processor{meganeura::models::SmolVlmProcessorConfig{}};
  for (const auto& c : expected_.at("chat"))
    EXPECT_EQ(processor.chat_prompt(c.at("user_text"), c.at("with_image")), c.at("prompt").get<std::string>());
}

}  // namespace
