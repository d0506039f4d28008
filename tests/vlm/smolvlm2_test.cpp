// SmolVLM2 against the transformers fixture (smolvlm2-tiny): config parsing and its errors, the
// image-token merge, prompt logits with an image on the GPU (lavapipe in CI), and greedy generation
// whose KV-cache decoding agrees with a full prefill.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "meganeura/models/smolvlm2.h"
#include "meganeura/reference.h"
#include "meganeura/safetensors.h"
#include "support/temp_dir.h"

namespace meganeura::models {
namespace {

const std::string kFixture = std::string(MEGANEURA_TEST_DATA_DIR) + "/fixtures/smolvlm2-tiny";

nlohmann::json fixture_config() {
  std::ifstream in(kFixture + "/config.json");
  return nlohmann::json::parse(in);
}

int32_t argmax_of_row(const std::vector<float>& logits, size_t row, size_t width) {
  const auto begin = logits.begin() + static_cast<std::ptrdiff_t>(row * width);
  return static_cast<int32_t>(std::max_element(begin, begin + static_cast<std::ptrdiff_t>(width)) - begin);
}

// Expects an Error whose message contains `needle`.
void expect_config_error(const nlohmann::json& config, const std::string& needle) {
  try {
    (void)SmolVlmConfig::from_json(config.dump(), "test config");
    ADD_FAILURE() << "no Error for a config needing \"" << needle << "\"";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(SmolVlmConfig, ReadsTheFixture) {
  const SmolVlmConfig config = SmolVlmConfig::load(kFixture);
  EXPECT_EQ(config.vision.hidden_size, 32);
  EXPECT_EQ(config.vision.intermediate_size, 64);
  EXPECT_EQ(config.vision.num_hidden_layers, 2);
  EXPECT_EQ(config.vision.num_attention_heads, 2);
  EXPECT_EQ(config.vision.image_size, 64);
  EXPECT_EQ(config.vision.patch_size, 16);
  EXPECT_DOUBLE_EQ(config.vision.layer_norm_eps, 1e-6);
  EXPECT_TRUE(config.vision.gelu_tanh);
  EXPECT_EQ(config.scale_factor, 2);
  EXPECT_EQ(config.image_token_id, 3);
  EXPECT_EQ(config.image_tokens(), 4);
  EXPECT_EQ(config.text.hidden_size, 64);
  EXPECT_EQ(config.text.num_key_value_heads, 2);
  EXPECT_EQ(config.text.vocab_size, 512);
  EXPECT_DOUBLE_EQ(config.text.rope_theta, 100000.0);
  EXPECT_FALSE(config.text.tie_word_embeddings);
  std::ifstream in(kFixture + "/config.json");
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_TRUE(SmolVlmConfig::describes_vlm(text.str()));
  EXPECT_FALSE(SmolVlmConfig::describes_vlm(fixture_config()["text_config"].dump()));
  EXPECT_FALSE(SmolVlmConfig::describes_vlm("not json"));
}

TEST(SmolVlmConfig, MissingVisionFieldsTakeTransformersDefaults) {
  nlohmann::json config = fixture_config();
  config["vision_config"] = {{"hidden_size", 64}, {"image_size", 512}, {"patch_size", 16}, {"num_attention_heads", 4}};
  const SmolVlmConfig parsed = SmolVlmConfig::from_json(config.dump());
  EXPECT_EQ(parsed.vision.intermediate_size, 3072);
  EXPECT_EQ(parsed.vision.num_hidden_layers, 12);
  EXPECT_EQ(parsed.image_tokens(), 256);  // (512 / 16 / 2)²
}

TEST(SmolVlmConfig, ErrorsNameTheField) {
  const nlohmann::json base = fixture_config();
  auto with = [&](const nlohmann::json::json_pointer& where, const nlohmann::json& value) {
    nlohmann::json config = base;
    config[where] = value;
    return config;
  };
  expect_config_error(with(nlohmann::json::json_pointer("/model_type"), "llama"), "model_type");
  nlohmann::json no_text = base;
  no_text.erase("text_config");
  expect_config_error(no_text, "text_config");
  expect_config_error(with(nlohmann::json::json_pointer("/scale_factor"), 3), "scale_factor");
  expect_config_error(with(nlohmann::json::json_pointer("/image_token_id"), 512), "image_token_id");
  expect_config_error(with(nlohmann::json::json_pointer("/vision_config/hidden_act"), "relu"), "hidden_act");
  expect_config_error(with(nlohmann::json::json_pointer("/vision_config/num_attention_heads"), 3), "num_attention_heads");
  expect_config_error(with(nlohmann::json::json_pointer("/vision_config/patch_size"), 24), "patch_size");
  expect_config_error(with(nlohmann::json::json_pointer("/vision_config/hidden_size"), -32), "hidden_size");
  expect_config_error(with(nlohmann::json::json_pointer("/text_config/hidden_act"), "gelu"), "text_config");
  EXPECT_THROW((void)SmolVlmConfig::from_json("{", "broken"), Error);
  EXPECT_THROW((void)SmolVlmConfig::load(kFixture + "/no-such-folder"), Error);
}

TEST(SmolVlmConfig, GenerationConfigGivesTheStopTokens) {
  TempDir dir;
  std::filesystem::copy_file(kFixture + "/config.json", dir / "config.json");
  EXPECT_EQ(SmolVlmConfig::load(dir.path().string()).text.eos_token_ids, (std::vector<int32_t>{2}));  // text_config's
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": [2, 7], "pad_token_id": 0})";
  EXPECT_EQ(SmolVlmConfig::load(dir.path().string()).text.eos_token_ids, (std::vector<int32_t>{2, 7}));
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": 9999})";
  EXPECT_THROW((void)SmolVlmConfig::load(dir.path().string()), Error);  // beyond the vocabulary
}

TEST(SmolVlmMerge, ImageTokensTakeFeaturesInOrder) {
  const SmolVlmConfig config = SmolVlmConfig::load(kFixture);
  const std::vector<int32_t> ids{1, 5, 3, 3, 3, 3, 9, 3, 3, 3, 3, 7};
  const std::vector<int32_t> index = image_merge_index(config, ids, 2, 16);
  const std::vector<int32_t> want{0, 1, 16, 17, 18, 19, 6, 20, 21, 22, 23, 11, 12, 13, 14, 15};
  EXPECT_EQ(index, want);
  EXPECT_THROW((void)image_merge_index(config, ids, 1, 16), Error);  // 8 image tokens, one image gives 4
  EXPECT_THROW((void)image_merge_index(config, ids, 2, 8), Error);   // longer than the graph
}

// Materialises a permutation of a row-major array, as torch's .permute(...).reshape(...) does.
std::vector<double> permuted(const std::vector<double>& data, const std::vector<int64_t>& shape,
                             const std::vector<size_t>& order) {
  std::vector<int64_t> out_shape, strides(shape.size(), 1);
  for (size_t d = shape.size() - 1; d > 0; --d) strides[d - 1] = strides[d] * shape[d];
  for (size_t axis : order) out_shape.push_back(shape[axis]);
  std::vector<double> out(data.size());
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t rest = static_cast<int64_t>(i), source = 0;
    for (size_t d = out_shape.size(); d-- > 0;) {
      source += (rest % out_shape[d]) * strides[order[d]];
      rest /= out_shape[d];
    }
    out[i] = data[static_cast<size_t>(source)];
  }
  return out;
}

TEST(SmolVlmConnector, PixelShuffleFollowsTransformersViewsAndPermutes) {
  const int64_t images = 2, side = 8, dim = 3;
  for (int64_t s : {2, 4}) {
    Graph graph;
    const Tensor x = graph.input("x", {images, side * side, dim});
    const Tensor y = pixel_shuffle(graph, x, s);
    EXPECT_EQ(y.shape(), (Shape{images, side * side / (s * s), s * s * dim}));
    graph.set_outputs({y});
    std::vector<double> values(static_cast<size_t>(images * side * side * dim));
    for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>((i * 7919) % 1009);  // distinct
    const auto got = reference::run(graph, {{"x", values}})[static_cast<size_t>(y.id)];
    // transformers: view(b, h, w/s, d·s) → permute(0, 2, 1, 3) → reshape(b, w/s, h/s, d·s²) → permute(0, 2, 1, 3).
    const std::vector<double> first = permuted(values, {images, side, side / s, dim * s}, {0, 2, 1, 3});
    const std::vector<double> want = permuted(first, {images, side / s, side / s, dim * s * s}, {0, 2, 1, 3});
    EXPECT_EQ(got, want) << "scale " << s;
  }
  Graph graph;
  EXPECT_THROW((void)pixel_shuffle(graph, graph.input("odd", {1, 36, 3}), 4), Error);  // 6 patches a side
}

TEST(SmolVlmMerge, AllZeroImagesAreDropped) {
  std::vector<float> pixels(3 * 4, 0.0f);
  pixels[4] = 0.5f;  // image 1
  pixels[11] = -0.25f;  // image 2
  int64_t images = 3;
  const std::vector<float> kept = drop_padding_images(pixels, images, 4);
  EXPECT_EQ(images, 2);
  ASSERT_EQ(kept.size(), 8u);
  EXPECT_EQ(kept[0], 0.5f);
  EXPECT_EQ(kept[7], -0.25f);
  std::vector<float> zeros(8, 0.0f);
  images = 2;
  EXPECT_EQ(drop_padding_images(zeros, images, 4).size(), 4u);  // one is kept, as transformers does
  EXPECT_EQ(images, 1);
  EXPECT_THROW((void)drop_padding_images(zeros, images, 3), Error);
}

class SmolVlmGpu : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    checkpoint = new SmolVlmCheckpoint(SmolVlmCheckpoint::open(kFixture));
    generator = new VlmGenerator(*checkpoint);
    const auto golden = SafeTensorsFile::open(kFixture + "/reference.safetensors");
    ids = golden.to_i32("input_ids");
    pixels = golden.to_f32("pixel_values");
    reference = golden.to_f32("logits");
    logits = generator->prompt_logits(ids, pixels, 1);
  }
  static void TearDownTestSuite() {
    delete generator;
    delete checkpoint;
  }

  static inline SmolVlmCheckpoint* checkpoint = nullptr;
  static inline VlmGenerator* generator = nullptr;
  static inline std::vector<int32_t> ids;
  static inline std::vector<float> pixels;
  static inline std::vector<float> reference;
  static inline std::vector<float> logits;
};

TEST_F(SmolVlmGpu, PromptLogitsMatchTransformers) {
  ASSERT_EQ(logits.size(), reference.size());
  double largest = 0, worst = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    largest = std::max(largest, std::fabs(static_cast<double>(reference[i])));
    worst = std::max(worst, std::fabs(static_cast<double>(logits[i]) - reference[i]));
  }
  EXPECT_GT(largest, 0.0);
  EXPECT_LE(worst, 1e-4 * largest) << "max abs error " << worst << ", largest logit " << largest;
}

TEST_F(SmolVlmGpu, TheImageChangesTheLogits) {
  // A different image must move the text positions after it (the merge really feeds features).
  std::vector<float> other = pixels;
  for (size_t i = 0; i < other.size(); ++i) other[i] = -other[i];
  const std::vector<float> changed = generator->prompt_logits(ids, other, 1);
  const size_t vocab = static_cast<size_t>(checkpoint->config().text.vocab_size);
  double difference = 0;
  for (size_t i = (ids.size() - 1) * vocab; i < ids.size() * vocab; ++i)
    difference = std::max(difference, std::fabs(static_cast<double>(changed[i]) - logits[i]));
  EXPECT_GT(difference, 1e-3);
  // The rows before the first image token see no image.
  for (size_t i = 0; i < 2 * vocab; ++i) ASSERT_NEAR(changed[i], logits[i], 1e-4) << i;
}

TEST_F(SmolVlmGpu, GreedyGenerationDecodesWithTheCache) {
  SamplingOptions sampling;
  sampling.max_new_tokens = 3;
  sampling.ignore_eos = true;
  const std::vector<int32_t> generated = generator->generate(ids, pixels, 1, sampling);
  ASSERT_EQ(generated.size(), 3u);
  const size_t vocab = static_cast<size_t>(checkpoint->config().text.vocab_size);
  EXPECT_EQ(generated[0], argmax_of_row(reference, ids.size() - 1, vocab));
  EXPECT_EQ(generated[0], argmax_of_row(logits, ids.size() - 1, vocab));
  // The decode steps (one token each, on the KV cache) choose what a full prefill of the longer
  // prompt does.
  std::vector<int32_t> longer = ids;
  longer.insert(longer.end(), generated.begin(), generated.end() - 1);
  const std::vector<float> full = generator->prompt_logits(longer, pixels, 1);
  EXPECT_EQ(generated[1], argmax_of_row(full, ids.size(), vocab));
  EXPECT_EQ(generated[2], argmax_of_row(full, ids.size() + 1, vocab));
  EXPECT_EQ(generator->last_stats().new_tokens, 3);
}

TEST_F(SmolVlmGpu, WrongInputsAreErrors) {
  EXPECT_THROW((void)generator->prompt_logits(ids, pixels, 2), Error);  // 2 images need twice the pixels
  std::vector<float> short_pixels(pixels.begin(), pixels.end() - 1);
  EXPECT_THROW((void)generator->prompt_logits(ids, short_pixels, 1), Error);
  std::vector<int32_t> no_image{1, 5, 9};
  EXPECT_THROW((void)generator->prompt_logits(no_image, pixels, 1), Error);
}

std::string cli_path() {
  const char* bin = std::getenv("MEGANEURA_BIN_DIR");
  return (bin ? std::string(bin) : std::string(MEGANEURA_BINARY_DIR) + "/bin") + "/meganeura";
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST_F(SmolVlmGpu, GenerateCommandTakesPixelValues) {
  ASSERT_TRUE(std::filesystem::exists(cli_path())) << cli_path();
  TempDir folder;
  std::string id_list;
  for (int32_t id : ids) id_list += (id_list.empty() ? "" : ",") + std::to_string(id);
  const std::string out = (folder / "stdout.txt").string(), saved = (folder / "logits.safetensors").string();
  const std::string command = cli_path() + " generate --model " + kFixture + " --ids " + id_list + " --pixel-values " +
                              kFixture + "/reference.safetensors --max-tokens 2 --ignore-eos --save-logits " + saved +
                              " > " + out + " 2>/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::istringstream lines(read_text(out));
  std::string line, last;
  while (std::getline(lines, line)) last = line;
  const auto generated = nlohmann::json::parse(last).get<std::vector<int32_t>>();
  ASSERT_EQ(generated.size(), 2u);
  const size_t vocab = static_cast<size_t>(checkpoint->config().text.vocab_size);
  EXPECT_EQ(generated[0], argmax_of_row(reference, ids.size() - 1, vocab));
  const auto file = SafeTensorsFile::open(saved);
  EXPECT_EQ(file.tensor("logits").shape, (std::vector<int64_t>{static_cast<int64_t>(ids.size()), static_cast<int64_t>(vocab)}));
  const std::vector<float> got = file.to_f32("logits");
  double largest = 0, worst = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    largest = std::max(largest, std::fabs(static_cast<double>(reference[i])));
    worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - reference[i]));
  }
  EXPECT_LE(worst, 1e-4 * largest);
}

TEST(SmolVlmCommand, ImageOptionsNeedAVisionModelAndTheirPartner) {
  ASSERT_TRUE(std::filesystem::exists(cli_path())) << cli_path();
  TempDir folder;
  const std::string err = (folder / "stderr.txt").string();
  const std::string text_model = std::string(MEGANEURA_TEST_DATA_DIR) + "/fixtures/smollm2-tiny";
  auto fails_with = [&](const std::string& arguments, const std::string& needle) {
    const std::string command = cli_path() + " generate " + arguments + " > /dev/null 2> " + err;
    EXPECT_NE(std::system(command.c_str()), 0) << command;
    const std::string message = read_text(err);
    EXPECT_NE(message.find(needle), std::string::npos) << message;
  };
  fails_with("--model " + text_model + " --ids 1,2 --pixel-values " + kFixture + "/reference.safetensors",
             "need a SmolVLM model");
  fails_with("--model " + kFixture + " --prompt hi --pixel-values " + kFixture + "/reference.safetensors",
             "--pixel-values goes with --ids");
  fails_with("--model " + kFixture + " --ids 1,3,3,3,3 --pixel-values " + kFixture + "/config.json", "config.json");
  fails_with("--model " + kFixture + " --ids 1,3,3,5 --pixel-values " + kFixture + "/reference.safetensors",
             "image tokens");
}

}  // namespace
}  // namespace meganeura::models
