// `meganeura generate --image FILE --prompt TEXT` with a SmolVLM model: the CLI runs the model's
// processor and tokenizer and gives the same prompt logits as the library pipeline does by hand.
// The model is the smolvlm2-tiny fixture with a tokenizer whose last four vocabulary entries became
// SmolVLM's image tokens, and processor configs for one 64 × 64 tile.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "meganeura/image.h"
#include "meganeura/models/smolvlm2.h"
#include "meganeura/models/smolvlm2_processor.h"
#include "meganeura/safetensors.h"
#include "meganeura/tokenizer.h"
#include "support/temp_dir.h"

namespace meganeura::models {
namespace {

const std::string kFixtures = std::string(MEGANEURA_TEST_DATA_DIR) + "/fixtures/";

// The fixture model in `dir`, its image token and the processor's tokens taking ids 508..511.
void write_model(const std::filesystem::path& dir) {
  std::filesystem::copy_file(kFixtures + "smolvlm2-tiny/model.safetensors", dir / "model.safetensors");
  nlohmann::json config = nlohmann::json::parse(std::ifstream(kFixtures + "smolvlm2-tiny/config.json"));
  config["image_token_id"] = 508;
  std::ofstream(dir / "config.json") << config.dump();

  nlohmann::json tokenizer = nlohmann::json::parse(std::ifstream(kFixtures + "smollm2-tiny/tokenizer.json"));
  const std::vector<std::string> names{"<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"};
  auto& vocab = tokenizer["model"]["vocab"];
  auto& merges = tokenizer["model"]["merges"];
  for (size_t k = 0; k < names.size(); ++k) {
    const int id = 508 + static_cast<int>(k);
    for (auto it = vocab.begin(); it != vocab.end(); ++it)
      if (it.value() == id) {
        vocab.erase(it);
        break;
      }
    vocab[names[k]] = id;
    tokenizer["added_tokens"].push_back({{"id", id}, {"content", names[k]}, {"single_word", false}, {"lstrip", false},
                                         {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  merges.erase(merges.end() - 4, merges.end());  // the merges that made the renamed entries
  std::ofstream(dir / "tokenizer.json") << tokenizer.dump();

  std::ofstream(dir / "preprocessor_config.json") << R"({
    "do_convert_rgb": true, "do_image_splitting": false, "do_normalize": true, "do_pad": true,
    "do_rescale": true, "do_resize": true, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
    "image_processor_type": "SmolVLMImageProcessor", "max_image_size": {"longest_edge": 64}, "resample": 1,
    "rescale_factor": 0.00392156862745098, "size": {"longest_edge": 64}})";
  std::ofstream(dir / "processor_config.json") << R"({"image_seq_len": 4, "processor_class": "SmolVLMProcessor"})";
}

Image random_photo(int64_t width, int64_t height) {
  std::mt19937 rng(11);
  Image image{width, height, 3, {}};
  image.pixels.resize(static_cast<size_t>(width * height * 3));
  for (auto& p : image.pixels) p = static_cast<uint8_t>(rng() & 0xff);
  return image;
}

TEST(SmolVlmImage, GenerateCommandRunsTheProcessorAsTheLibraryDoes) {
  const char* bin = std::getenv("MEGANEURA_BIN_DIR");
  const std::string cli = (bin ? std::string(bin) : std::string(MEGANEURA_BINARY_DIR) + "/bin") + "/meganeura";
  ASSERT_TRUE(std::filesystem::exists(cli)) << cli;
  TempDir dir;
  const auto model = dir / "model";
  std::filesystem::create_directories(model);
  write_model(model);
  const Image photo = random_photo(80, 48);
  write_png((dir / "photo.png").string(), photo);
  const std::string question = "What is in the picture?";

  const std::string saved = (dir / "logits.safetensors").string();
  const std::string command = cli + " generate --model " + model.string() + " --image " + (dir / "photo.png").string() +
                              " --prompt \"" + question + "\" --max-tokens 2 --save-logits " + saved +
                              " > /dev/null 2> " + (dir / "stderr.txt").string();
  ASSERT_EQ(std::system(command.c_str()), 0) << command << "\n" << std::ifstream(dir / "stderr.txt").rdbuf();

  // The same by hand.
  const SmolVlmCheckpoint checkpoint = SmolVlmCheckpoint::open(model.string());
  const auto processor = SmolVlmProcessor::from_directory(model.string());
  const ProcessedImages pixels = processor.preprocess(photo);
  ASSERT_EQ(pixels.tiles, 1);
  const Tokenizer tokenizer = Tokenizer::load(model.string());
  const std::vector<int32_t> ids =
      tokenizer.encode(processor.expand_prompt(processor.chat_prompt(question, true), pixels.rows, pixels.cols));
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 508), 4);
  VlmGenerator generator(checkpoint);
  const std::vector<float> want = generator.prompt_logits(ids, pixels.values, 1);

  const auto file = SafeTensorsFile::open(saved);
  EXPECT_EQ(file.tensor("logits").shape, (std::vector<int64_t>{static_cast<int64_t>(ids.size()), 512}));
  const std::vector<float> got = file.to_f32("logits");
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5) << i;
}

}  // namespace
}  // namespace meganeura::models
