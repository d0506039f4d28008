// SmolVLM2 processor: configuration reading and its errors, output sizes worked out by hand, the
// tile layout, normalisation, and the prompt layout.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <random>

#include "meganeura/error.h"
#include "meganeura/image.h"
#include "meganeura/models/smolvlm2_processor.h"
#include "support/temp_dir.h"

namespace {

using meganeura::Image;
using meganeura::models::SmolVlmProcessor;
using meganeura::models::SmolVlmProcessorConfig;

// The shape of SmolVLM2-256M-Video-Instruct's preprocessor_config.json.
const char* kSmolVlm2Config = R"({
  "do_convert_rgb": true, "do_image_splitting": true, "do_normalize": true, "do_pad": true,
  "do_rescale": true, "do_resize": true, "image_mean": [0.5, 0.5, 0.5],
  "image_processor_type": "SmolVLMImageProcessor", "image_std": [0.5, 0.5, 0.5],
  "max_image_size": {"longest_edge": 512}, "processor_class": "SmolVLMProcessor", "resample": 1,
  "rescale_factor": 0.00392156862745098, "size": {"longest_edge": 2048},
  "video_sampling": {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": 512}}
})";

Image random_image(int64_t width, int64_t height, int64_t channels, uint32_t seed) {
  std::mt19937 rng(seed);
  Image image{width, height, channels, {}};
  image.pixels.resize(static_cast<size_t>(width * height * channels));
  for (auto& p : image.pixels) p = static_cast<uint8_t>(rng() & 0xff);
  return image;
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const meganeura::Error& e) {
    return e.what();
  }
  return "";
}

std::string with_field(const std::string& field_and_value) {
  return std::string(R"({"image_processor_type": "SmolVLMImageProcessor", )") + field_and_value + "}";
}

TEST(SmolVlmProcessorConfig, ReadsEveryField) {
  auto config = SmolVlmProcessorConfig::from_json(kSmolVlm2Config, R"({"image_seq_len": 64})");
  EXPECT_TRUE(config.do_convert_rgb && config.do_image_splitting && config.do_normalize && config.do_pad &&
              config.do_rescale && config.do_resize);
  EXPECT_EQ(config.longest_edge, 2048);
  EXPECT_EQ(config.max_image_size, 512);
  EXPECT_EQ(config.resample, meganeura::ResampleFilter::lanczos);
  EXPECT_DOUBLE_EQ(config.rescale_factor, 1.0 / 255.0);
  EXPECT_EQ(config.image_mean, (std::array<double, 3>{0.5, 0.5, 0.5}));
  EXPECT_EQ(config.image_seq_len, 64);

  auto other = SmolVlmProcessorConfig::from_json(
      R"({"do_image_splitting": false, "do_pad": false, "resample": 3, "image_mean": 0.25,
          "image_std": [0.1, 0.2, 0.3], "size": {"longest_edge": 96}, "max_image_size": {"longest_edge": 48}})");
  EXPECT_FALSE(other.do_image_splitting);
  EXPECT_FALSE(other.do_pad);
  EXPECT_EQ(other.resample, meganeura::ResampleFilter::bicubic);
  EXPECT_EQ(other.image_mean, (std::array<double, 3>{0.25, 0.25, 0.25}));
  EXPECT_EQ(other.image_std, (std::array<double, 3>{0.1, 0.2, 0.3}));
  EXPECT_EQ(other.longest_edge, 96);
  EXPECT_EQ(other.max_image_size, 48);
  EXPECT_EQ(other.image_seq_len, 169);  // no processor_config.json: the processor's default
}

TEST(SmolVlmProcessorConfig, UnsupportedValuesNameTheField) {
  struct Case {
    std::string json;
    std::string field;
  } cases[] = {
      {with_field(R"("resample": 7)"), "resample"},
      {with_field(R"("resample": "lanczos")"), "resample"},
      {with_field(R"("size": {"height": 10, "width": 10})"), "size"},
      {with_field(R"("max_image_size": {"longest_edge": 0})"), "max_image_size.longest_edge"},
      {with_field(R"("do_resize": "yes")"), "do_resize"},
      {with_field(R"("image_std": [0.5, 0.0, 0.5])"), "image_std"},
      {with_field(R"("image_mean": [0.5, 0.5])"), "image_mean"},
      {with_field(R"("rescale_factor": -1)"), "rescale_factor"},
      {R"({"image_processor_type": "CLIPImageProcessor"})", "image_processor_type"},
      {"{not json", "not valid JSON"},
  };
  for (const auto& c : cases) {
    std::string message = error_of([&] { SmolVlmProcessorConfig::from_json(c.json); });
    EXPECT_NE(message.find(c.field), std::string::npos) << c.json << " → " << message;
  }
  std::string message = error_of([] { SmolVlmProcessorConfig::from_json("{}", R"({"image_seq_len": 0})"); });
  EXPECT_NE(message.find("image_seq_len"), std::string::npos) << message;
}

TEST(SmolVlmProcessorConfig, FromDirectory) {
  TempDir dir;
  std::string message = error_of([&] { SmolVlmProcessor::from_directory(dir.path().string()); });
  EXPECT_NE(message.find("preprocessor_config.json"), std::string::npos) << message;
  std::ofstream(dir / "preprocessor_config.json") << kSmolVlm2Config;
  EXPECT_EQ(SmolVlmProcessor::from_directory(dir.path().string()).config().image_seq_len, 169);
  std::ofstream(dir / "processor_config.json") << R"({"image_seq_len": 64, "processor_class": "SmolVLMProcessor"})";
  auto processor = SmolVlmProcessor::from_directory(dir.path().string());
  EXPECT_EQ(processor.config().image_seq_len, 64);
  EXPECT_EQ(processor.config().max_image_size, 512);
}

// Worked by hand from transformers' rule: longest side set, the other truncated then made even.
TEST(SmolVlmProcessor, ResizeSizes) {
  using meganeura::models::smolvlm_resize_size;
  EXPECT_EQ(smolvlm_resize_size(61, 97, 64), (std::array<int64_t, 2>{40, 64}));    // 40.2 → 40
  EXPECT_EQ(smolvlm_resize_size(130, 40, 64), (std::array<int64_t, 2>{64, 20}));   // 19.7 → 19 → 20
  EXPECT_EQ(smolvlm_resize_size(200, 300, 128), (std::array<int64_t, 2>{86, 128}));  // 85.3 → 85 → 86
  EXPECT_EQ(smolvlm_resize_size(50, 50, 2048), (std::array<int64_t, 2>{2048, 2048}));  // upscales
  EXPECT_EQ(smolvlm_resize_size(1, 5000, 9000), (std::array<int64_t, 2>{1, 4096}));   // capped at 4096
}

float normalised(uint8_t level, int64_t channel, const SmolVlmProcessorConfig& c) {
  float x = static_cast<float>(level * c.rescale_factor);
  return (x - static_cast<float>(c.image_mean[channel])) / static_cast<float>(c.image_std[channel]);
}

void expect_tile_is(const meganeura::models::ProcessedImages& out, int64_t tile, const Image& expected,
                    const SmolVlmProcessorConfig& c) {
  ASSERT_EQ(expected.width, out.width);
  ASSERT_EQ(expected.height, out.height);
  const size_t plane = static_cast<size_t>(out.height * out.width);
  for (int64_t ch = 0; ch < 3; ++ch)
    for (int64_t y = 0; y < out.height; ++y)
      for (int64_t x = 0; x < out.width; ++x)
        ASSERT_EQ(out.values[(static_cast<size_t>(tile * 3 + ch)) * plane + static_cast<size_t>(y * out.width + x)],
                  normalised(expected.at(y, x, ch), ch, c))
            << "tile " << tile << " channel " << ch << " at " << y << "," << x;
}

// 97x61 → 64x40 (longest edge 64) → 64x64 (multiples of 32) → 2x2 tiles of 32 and the whole
// image resized to 32x32, in that order.
TEST(SmolVlmProcessor, SplitsIntoTilesThenTheGlobalView) {
  SmolVlmProcessorConfig config;
  config.longest_edge = 64;
  config.max_image_size = 32;
  config.image_mean = {0.4, 0.5, 0.6};
  config.image_std = {0.2, 0.3, 0.25};
  SmolVlmProcessor processor(config);
  Image image = random_image(97, 61, 3, 11);
  auto out = processor.preprocess(image);
  EXPECT_EQ(out.rows, 2);
  EXPECT_EQ(out.cols, 2);
  ASSERT_EQ(out.shape(), (std::vector<int64_t>{5, 3, 32, 32}));
  ASSERT_EQ(out.pixel_attention_mask.size(), size_t{5 * 32 * 32});
  for (uint8_t m : out.pixel_attention_mask) ASSERT_EQ(m, 1);

  using meganeura::ResampleFilter;
  Image resized = meganeura::resize(meganeura::resize(image, 64, 40, ResampleFilter::lanczos), 64, 64,
                                    ResampleFilter::lanczos);
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t c = 0; c < 2; ++c) expect_tile_is(out, r * 2 + c, meganeura::crop(resized, c * 32, r * 32, 32, 32), config);
  expect_tile_is(out, 4, meganeura::resize(resized, 32, 32, ResampleFilter::lanczos), config);
}

TEST(SmolVlmProcessor, WithoutSplittingOneSquareTile) {
  SmolVlmProcessorConfig config;
  config.longest_edge = 80;
  config.max_image_size = 24;
  config.do_image_splitting = false;
  config.do_pad = false;
  SmolVlmProcessor processor(config);
  Image image = random_image(50, 33, 3, 12);
  auto out = processor.preprocess(image);
  EXPECT_EQ(out.rows, 0);
  EXPECT_EQ(out.cols, 0);
  EXPECT_TRUE(out.pixel_attention_mask.empty());
  using meganeura::ResampleFilter;
  Image expected = meganeura::resize(meganeura::resize(image, 80, 52, ResampleFilter::lanczos), 24, 24,
                                     ResampleFilter::lanczos);
  expect_tile_is(out, 0, expected, config);
}

// Gray is repeated over R, G and B and alpha dropped before any resizing (Pillow's
// convert("RGB"), which transformers applies first); the RGB image is then resized as usual.
TEST(SmolVlmProcessor, GrayAndAlphaBecomeRgbBeforeResizing) {
  SmolVlmProcessorConfig config;
  config.longest_edge = 64;
  config.max_image_size = 64;
  SmolVlmProcessor processor(config);
  using meganeura::ResampleFilter;
  Image gray = random_image(40, 130, 1, 13);
  Image gray_rgb{40, 130, 3, {}};
  for (uint8_t v : gray.pixels) gray_rgb.pixels.insert(gray_rgb.pixels.end(), {v, v, v});
  auto out = processor.preprocess(gray);
  ASSERT_EQ(out.tiles, 1);
  expect_tile_is(out, 0,
                 meganeura::resize(meganeura::resize(gray_rgb, 20, 64, ResampleFilter::lanczos), 64, 64,
                                   ResampleFilter::lanczos),
                 config);

  Image rgba = random_image(30, 20, 4, 14);
  Image colours{30, 20, 3, {}};
  for (size_t p = 0; p < 30 * 20; ++p)
    for (size_t c = 0; c < 3; ++c) colours.pixels.push_back(rgba.pixels[p * 4 + c]);
  out = processor.preprocess(rgba);
  ASSERT_EQ(out.tiles, 1);
  expect_tile_is(out, 0,
                 meganeura::resize(meganeura::resize(colours, 64, 42, ResampleFilter::lanczos), 64, 64,
                                   ResampleFilter::lanczos),
                 config);
}

TEST(SmolVlmProcessor, RejectsImagesItCannotTake) {
  SmolVlmProcessorConfig config;
  config.do_convert_rgb = false;
  SmolVlmProcessor processor(config);
  std::string message = error_of([&] { processor.preprocess(random_image(8, 8, 4, 1)); });
  EXPECT_NE(message.find("do_convert_rgb"), std::string::npos) << message;
  Image broken = random_image(8, 8, 3, 1);
  broken.pixels.resize(10);
  EXPECT_THROW(processor.preprocess(broken), meganeura::Error);
}

TEST(SmolVlmProcessorPrompt, ImagePromptLayout) {
  SmolVlmProcessorConfig config;
  config.image_seq_len = 2;
  SmolVlmProcessor processor(config);
  const std::string f = "<fake_token_around_image>", i = "<image>";
  EXPECT_EQ(processor.image_prompt(0, 0), f + "<global-img>" + i + i + f);
  EXPECT_EQ(processor.image_prompt(1, 2),
            f + "<row_1_col_1>" + i + i + f + "<row_1_col_2>" + i + i + "\n\n" + f + "<global-img>" + i + i + f);
  std::string big = processor.image_prompt(3, 4);
  EXPECT_NE(big.find("<row_3_col_4>"), std::string::npos);
  size_t images = 0;
  for (size_t at = big.find(i); at != std::string::npos; at = big.find(i, at + 1)) ++images;
  EXPECT_EQ(images, size_t{(3 * 4 + 1) * 2});
  EXPECT_THROW(processor.image_prompt(1, 0), meganeura::Error);
}

TEST(SmolVlmProcessorPrompt, ExpandsEachImageTokenInOrder) {
  SmolVlmProcessorConfig config;
  config.image_seq_len = 3;
  SmolVlmProcessor processor(config);
  EXPECT_EQ(processor.expand_prompt("A <image> B", 0, 0), "A " + processor.image_prompt(0, 0) + " B");
  EXPECT_EQ(processor.expand_prompt("<image><image>?", {{{0, 0}}, {{2, 1}}}),
            processor.image_prompt(0, 0) + processor.image_prompt(2, 1) + "?");
  EXPECT_NE(error_of([&] { processor.expand_prompt("no image here", 1, 1); }).find("0 \"<image>\""),
            std::string::npos);
  EXPECT_THROW(processor.expand_prompt("<image> and <image>", 1, 1), meganeura::Error);
}

// SmolVLM2's chat template: "User:" directly before an image, "User: " before text.
TEST(SmolVlmProcessorPrompt, ChatTemplate) {
  SmolVlmProcessor processor{SmolVlmProcessorConfig{}};
  EXPECT_EQ(processor.chat_prompt("Describe it.", true),
            "<|im_start|>User:<image>Describe it.<end_of_utterance>\nAssistant:");
  EXPECT_EQ(processor.chat_prompt("Hi", false), "<|im_start|>User: Hi<end_of_utterance>\nAssistant:");
}

}  // namespace
