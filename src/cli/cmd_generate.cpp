// `meganeura generate --model DIR|REPO_ID (--prompt TEXT | --ids 1,2,3) [--max-tokens N] [--ignore-eos]
// [--save-logits FILE] [--weights f32|f16|bf16]`: streams the continuation as text and reports tokens/s on stderr. With --ids the
// last line of stdout is the generated ids as a JSON array, and nothing follows it on either stream.
// A SmolVLM model (its config.json has a vision_config) also answers about images: `--image FILE
// --prompt TEXT` (the prompt becomes a chat turn about the image, through the model's processor
// configs), or `--ids` holding the image tokens with `--pixel-values FILE` (safetensors
// "pixel_values" [..., channels, height, width], already preprocessed).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "meganeura/error.h"
#include "meganeura/image.h"
#include "meganeura/models/smollm2.h"
#include "meganeura/models/smolvlm2.h"
#include "meganeura/models/smolvlm2_processor.h"
#include "meganeura/safetensors.h"
#include "meganeura/tokenizer.h"

namespace {

using meganeura::Error;

struct GenerateOptions {
  std::string model;
  std::string prompt;
  std::string ids;
  int64_t max_tokens = 32;
  bool ignore_eos = false;
  std::string save_logits;
  std::string image;
  std::string pixel_values;
  double temperature = 0.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  std::string weights = "f32";
};

meganeura::DType weight_storage(const GenerateOptions& options) {
  if (options.weights == "f16") return meganeura::DType::f16;
  if (options.weights == "bf16") return meganeura::DType::bf16;
  return meganeura::DType::f32;
}

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    size_t used = 0;
    long long value = -1;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || item.find_first_not_of(" \t", used) != std::string::npos || value < 0 || value > INT32_MAX)
      throw Error("--ids: \"" + item + "\" is not a token id; pass ids like 1,2,3");
    ids.push_back(static_cast<int32_t>(value));
    pos = comma + 1;
  }
  return ids;
}

// Prints only text that can no longer change: a byte-level token may end in the middle of a UTF-8
// character, which decodes as U+FFFD until the next token completes it.
class TextStream {
 public:
  explicit TextStream(const meganeura::Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  void push(int32_t id) {
    ids_.push_back(id);
    const std::string text = tokenizer_.decode(ids_);
    if (text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0) return;
    if (text.compare(0, printed_, shown_) == 0) std::cout << text.substr(printed_) << std::flush;
    shown_ = text;
    printed_ = text.size();
  }

 private:
  const meganeura::Tokenizer& tokenizer_;
  std::vector<int32_t> ids_;
  std::string shown_;
  size_t printed_ = 0;
};

meganeura::models::SamplingOptions sampling_options(const GenerateOptions& options) {
  meganeura::models::SamplingOptions sampling;
  sampling.max_new_tokens = options.max_tokens;
  sampling.ignore_eos = options.ignore_eos;
  sampling.temperature = options.temperature;
  sampling.top_k = options.top_k;
  sampling.top_p = options.top_p;
  sampling.seed = options.seed;
  return sampling;
}

void save_logits(const std::string& path, const std::vector<float>& logits, size_t prompt_tokens, int64_t vocab) {
  meganeura::save_safetensors(path, {meganeura::tensor_view("logits", {static_cast<int64_t>(prompt_tokens), vocab}, logits)});
}

// The shared tail of both models: the tokens as they come (text when there is a tokenizer), the
// speed on stderr, the ids as JSON when the prompt was ids.
template <typename Generate>
void stream_generation(const GenerateOptions& options, const std::optional<meganeura::Tokenizer>& tokenizer,
                       Generate&& generate) {
  meganeura::models::SamplingOptions sampling = sampling_options(options);
  std::optional<TextStream> stream;
  if (tokenizer) stream.emplace(*tokenizer);
  sampling.on_token = [&](int32_t id) {
    if (stream) stream->push(id);
    return true;
  };
  const auto [generated, stats] = generate(sampling);
  if (stream) std::cout << "\n" << std::flush;

  const double decode_rate = stats.new_tokens > 1 ? static_cast<double>(stats.new_tokens - 1) / stats.decode_seconds : 0.0;
  std::cerr << std::fixed << std::setprecision(1) << "prompt: " << stats.prompt_tokens << " tokens in "
            << stats.prefill_seconds * 1e3 << " ms; generated " << stats.new_tokens << " tokens, decode "
            << decode_rate << " tokens/s\n"
            << std::flush;
  if (!options.ids.empty()) std::cout << nlohmann::json(generated).dump() << "\n" << std::flush;
}

std::optional<meganeura::Tokenizer> load_tokenizer(const std::string& directory, const GenerateOptions& options) {
  if (std::filesystem::exists(std::filesystem::path(directory) / "tokenizer.json"))
    return meganeura::Tokenizer::load(directory);
  if (!options.prompt.empty()) throw Error("generate: --prompt needs tokenizer.json beside the model; pass --ids instead");
  return std::nullopt;
}

// A cache just large enough (rounded up, so nearby requests build the same shaders).
int64_t cache_positions(size_t prompt_tokens, const GenerateOptions& options, int64_t limit) {
  const int64_t needed = static_cast<int64_t>(prompt_tokens) + std::max<int64_t>(options.max_tokens, 1);
  if (needed - 1 > limit)
    throw Error("generate: " + std::to_string(prompt_tokens) + " prompt tokens + " + std::to_string(options.max_tokens) +
                " new ones exceed the model's " + std::to_string(limit) + " positions");
  return std::min(limit, (needed + 63) / 64 * 64);
}

void run_text_generate(const GenerateOptions& options, const meganeura::models::SmolLM2Checkpoint& checkpoint,
                       const std::optional<meganeura::Tokenizer>& tokenizer) {
  const std::vector<int32_t> prompt = options.ids.empty() ? tokenizer->encode(options.prompt) : parse_ids(options.ids);
  if (prompt.empty()) throw Error("generate: the prompt encodes to no tokens");
  meganeura::models::Generator generator(
      checkpoint, cache_positions(prompt.size(), options, checkpoint.config().max_position_embeddings),
      weight_storage(options));
  if (!options.save_logits.empty())
    save_logits(options.save_logits, generator.prompt_logits(prompt), prompt.size(), checkpoint.config().vocab_size);
  stream_generation(options, tokenizer, [&](const meganeura::models::SamplingOptions& sampling) {
    std::vector<int32_t> generated = generator.generate(prompt, sampling);
    return std::pair{std::move(generated), generator.last_stats()};
  });
}

// pixel_values from a safetensors file: every leading dim counts images; all-zero (padding) images
// are dropped as transformers does.
std::vector<float> read_pixel_values(const std::string& path, const meganeura::models::SmolVlmConfig& config,
                                     int64_t& images) {
  const auto file = meganeura::SafeTensorsFile::open(path);
  const auto& info = file.tensor("pixel_values");
  const auto& v = config.vision;
  const std::vector<int64_t> image_shape{v.num_channels, v.image_size, v.image_size};
  const bool fits = info.shape.size() >= 4 && std::equal(image_shape.begin(), image_shape.end(), info.shape.end() - 3);
  if (!fits)
    throw Error("--pixel-values: " + path + " holds pixel_values of shape " + nlohmann::json(info.shape).dump() +
                "; this model needs [..., " + std::to_string(v.num_channels) + ", " + std::to_string(v.image_size) + ", " +
                std::to_string(v.image_size) + "]");
  images = 1;
  for (size_t d = 0; d + 3 < info.shape.size(); ++d) images *= info.shape[d];
  return meganeura::models::drop_padding_images(file.to_f32("pixel_values"), images,
                                                v.num_channels * v.image_size * v.image_size);
}

// --image and --prompt through the model's processor: the chat turn with the image's tokens
// expanded, and the image's tiles as pixel values.
std::vector<int32_t> process_image(const GenerateOptions& options, const meganeura::models::SmolVlmCheckpoint& checkpoint,
                                   const meganeura::Tokenizer& tokenizer, std::vector<float>& pixels, int64_t& images) {
  const auto processor = meganeura::models::SmolVlmProcessor::from_directory(checkpoint.directory());
  const meganeura::models::ProcessedImages processed = processor.preprocess(meganeura::read_image(options.image));
  const auto& v = checkpoint.config().vision;
  if (processed.height != v.image_size || processed.width != v.image_size)
    throw Error("generate: the processor makes " + std::to_string(processed.height) + "x" + std::to_string(processed.width) +
                " tiles but the vision encoder takes " + std::to_string(v.image_size) + "x" + std::to_string(v.image_size) +
                "; preprocessor_config.json's max_image_size must match vision_config.image_size");
  // One image never has padded pixels; a mask with zeros would need masked vision attention.
  if (std::find(processed.pixel_attention_mask.begin(), processed.pixel_attention_mask.end(), 0) !=
      processed.pixel_attention_mask.end())
    throw Error("generate: the processed image has padded pixels, which the vision encoder does not mask; "
                "preprocess without padding");
  pixels = processed.values;
  images = processed.tiles;
  const std::string text =
      processor.expand_prompt(processor.chat_prompt(options.prompt, /*with_image=*/true), processed.rows, processed.cols);
  return tokenizer.encode(text);
}

void run_vlm_generate(const GenerateOptions& options, const std::string& directory) {
  const auto checkpoint = meganeura::models::SmolVlmCheckpoint::open(directory);
  const auto& config = checkpoint.config();
  const std::optional<meganeura::Tokenizer> tokenizer = load_tokenizer(checkpoint.directory(), options);
  if (options.pixel_values.empty() && options.image.empty()) {
    // No image: the text model alone, as transformers runs it without pixel_values.
    run_text_generate(options, checkpoint.text(), tokenizer);
    return;
  }
  std::vector<int32_t> prompt;
  std::vector<float> pixels;
  int64_t images = 0;
  if (!options.image.empty()) {
    prompt = process_image(options, checkpoint, *tokenizer, pixels, images);
  } else {
    prompt = parse_ids(options.ids);
    pixels = read_pixel_values(options.pixel_values, config, images);
  }
  meganeura::models::VlmGenerator generator(
      checkpoint, cache_positions(prompt.size(), options, config.text.max_position_embeddings),
      weight_storage(options));
  if (!options.save_logits.empty())
    save_logits(options.save_logits, generator.prompt_logits(prompt, pixels, images), prompt.size(),
                config.text.vocab_size);
  stream_generation(options, tokenizer, [&](const meganeura::models::SamplingOptions& sampling) {
    std::vector<int32_t> generated = generator.generate(prompt, pixels, images, sampling);
    return std::pair{std::move(generated), generator.last_stats()};
  });
}

// The model's folder when it is local or a Hub snapshot once downloaded; empty for anything else,
// which the SmolLM2 loader then reports.
std::string resolve_model(const std::string& model) {
  if (std::filesystem::exists(model))
    return std::filesystem::is_directory(model) ? model : std::filesystem::path(model).parent_path().string();
  if (model.find('/') == std::string::npos || model.front() == '.' || model.front() == '/') return {};
  return meganeura::SafeTensorsModel::download(model).directory();
}

bool is_vlm(const std::string& directory) {
  std::ifstream in(std::filesystem::path(directory) / "config.json", std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  return meganeura::models::SmolVlmConfig::describes_vlm(text.str());
}

void run_generate(const GenerateOptions& options) {
  if (options.prompt.empty() == options.ids.empty())
    throw Error("generate: give exactly one of --prompt TEXT or --ids 1,2,3");
  if (options.max_tokens < 0) throw Error("generate: --max-tokens must not be negative");
  if (!options.image.empty() && options.prompt.empty()) throw Error("generate: --image goes with --prompt TEXT");
  if (!options.pixel_values.empty() && options.ids.empty())
    throw Error("generate: --pixel-values goes with --ids (holding the image tokens)");
  const std::string directory = resolve_model(options.model);
  if (!directory.empty() && is_vlm(directory)) {
    run_vlm_generate(options, directory);
    return;
  }
  if (!options.image.empty() || !options.pixel_values.empty())
    throw Error("generate: --image and --pixel-values need a SmolVLM model (a config.json with a vision_config); \"" +
                options.model + "\" is a text model");
  const auto checkpoint = meganeura::models::SmolLM2Checkpoint::open_or_download(directory.empty() ? options.model : directory);
  run_text_generate(options, checkpoint, load_tokenizer(checkpoint.directory(), options));
}

void setup_generate(CLI::App& app) {
  auto options = std::make_shared<GenerateOptions>();
  auto* sub = app.add_subcommand("generate", "Generate text with a SmolLM2 (Llama) or SmolVLM2 model on the GPU");
  sub->add_option("--model", options->model, "Model folder or Hugging Face repository id")->required();
  auto* prompt = sub->add_option("--prompt", options->prompt, "Prompt text (encoded with the model's tokenizer)");
  auto* ids = sub->add_option("--ids", options->ids, "Prompt token ids, such as 1,2,3; stdout ends with the new ids as JSON");
  prompt->excludes(ids);
  sub->add_option("--max-tokens", options->max_tokens, "Tokens to generate (fewer only if a stop token comes)")
      ->capture_default_str();
  sub->add_flag("--ignore-eos", options->ignore_eos, "Never choose the end-of-sequence token (min_new_tokens)");
  sub->add_option("--save-logits", options->save_logits, "Write the prompt's logits [T, vocab] as safetensors 'logits'");
  sub->add_option("--image", options->image, "Image (PNG or JPEG) the --prompt asks about (SmolVLM models)");
  sub->add_option("--pixel-values", options->pixel_values,
                  "Safetensors file of preprocessed 'pixel_values' for --ids holding image tokens (SmolVLM models)");
  sub->add_option("--temperature", options->temperature, "0: greedy; otherwise sample from softmax(logits / T)")
      ->capture_default_str();
  sub->add_option("--top-k", options->top_k, "Sample among the k most likely tokens (0: all)")->capture_default_str();
  sub->add_option("--top-p", options->top_p, "Sample from the smallest set holding this probability mass")
      ->capture_default_str();
  sub->add_option("--seed", options->seed, "Seed for sampling")->capture_default_str();
  sub->add_option("--weights", options->weights,
                  "How the GPU stores matmul and embedding weights: f32 (reference), f16 or bf16 (half the bytes)")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}))
      ->capture_default_str();
  sub->callback([options] { run_generate(*options); });
}

const bool registered = meganeura::cli::register_command("generate", setup_generate);

}  // namespace
