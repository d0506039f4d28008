// `meganeura generate --model DIR|REPO_ID (--prompt TEXT | --ids 1,2,3) [--max-tokens N] [--ignore-eos]
// [--save-logits FILE]`: streams the continuation as text and reports tokens/s on stderr. With --ids the
// last line of stdout is the generated ids as a JSON array, and nothing follows it on either stream.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/command.h"
#include "meganeura/error.h"
#include "meganeura/models/smollm2.h"
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
  double temperature = 0.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
};

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

void run_generate(const GenerateOptions& options) {
  if (options.prompt.empty() == options.ids.empty())
    throw Error("generate: give exactly one of --prompt TEXT or --ids 1,2,3");
  if (options.max_tokens < 0) throw Error("generate: --max-tokens must not be negative");
  const auto checkpoint = meganeura::models::SmolLM2Checkpoint::open_or_download(options.model);
  std::optional<meganeura::Tokenizer> tokenizer;
  if (std::filesystem::exists(std::filesystem::path(checkpoint.directory()) / "tokenizer.json"))
    tokenizer = meganeura::Tokenizer::load(checkpoint.directory());
  else if (!options.prompt.empty())
    throw Error("generate: --prompt needs tokenizer.json beside the model; pass --ids instead");

  const std::vector<int32_t> prompt = options.ids.empty() ? tokenizer->encode(options.prompt) : parse_ids(options.ids);
  if (prompt.empty()) throw Error("generate: the prompt encodes to no tokens");
  const int64_t needed = static_cast<int64_t>(prompt.size()) + std::max<int64_t>(options.max_tokens, 1);
  const int64_t limit = checkpoint.config().max_position_embeddings;
  if (needed - 1 > limit)
    throw Error("generate: " + std::to_string(prompt.size()) + " prompt tokens + " + std::to_string(options.max_tokens) +
                " new ones exceed the model's " + std::to_string(limit) + " positions");
  // A cache just large enough (rounded up, so nearby requests build the same shaders).
  meganeura::models::Generator generator(checkpoint, std::min(limit, (needed + 63) / 64 * 64));

  if (!options.save_logits.empty()) {
    const std::vector<float> logits = generator.prompt_logits(prompt);
    meganeura::save_safetensors(options.save_logits,
                                {meganeura::tensor_view("logits", {static_cast<int64_t>(prompt.size()),
                                                                   checkpoint.config().vocab_size},
                                                        logits)});
  }

  meganeura::models::SamplingOptions sampling;
  sampling.max_new_tokens = options.max_tokens;
  sampling.ignore_eos = options.ignore_eos;
  sampling.temperature = options.temperature;
  sampling.top_k = options.top_k;
  sampling.top_p = options.top_p;
  sampling.seed = options.seed;
  std::optional<TextStream> stream;
  if (tokenizer) stream.emplace(*tokenizer);
  sampling.on_token = [&](int32_t id) {
    if (stream) stream->push(id);
    return true;
  };
  const std::vector<int32_t> generated = generator.generate(prompt, sampling);
  if (stream) std::cout << "\n" << std::flush;

  const auto& stats = generator.last_stats();
  const double decode_rate = stats.new_tokens > 1 ? static_cast<double>(stats.new_tokens - 1) / stats.decode_seconds : 0.0;
  std::cerr << std::fixed << std::setprecision(1) << "prompt: " << stats.prompt_tokens << " tokens in "
            << stats.prefill_seconds * 1e3 << " ms; generated " << stats.new_tokens << " tokens, decode "
            << decode_rate << " tokens/s\n"
            << std::flush;
  if (!options.ids.empty()) std::cout << nlohmann::json(generated).dump() << "\n" << std::flush;
}

void setup_generate(CLI::App& app) {
  auto options = std::make_shared<GenerateOptions>();
  auto* sub = app.add_subcommand("generate", "Generate text with a SmolLM2 (Llama) model on the GPU");
  sub->add_option("--model", options->model, "Model folder or Hugging Face repository id")->required();
  auto* prompt = sub->add_option("--prompt", options->prompt, "Prompt text (encoded with the model's tokenizer)");
  auto* ids = sub->add_option("--ids", options->ids, "Prompt token ids, such as 1,2,3; stdout ends with the new ids as JSON");
  prompt->excludes(ids);
  sub->add_option("--max-tokens", options->max_tokens, "Tokens to generate (fewer only if a stop token comes)")
      ->capture_default_str();
  sub->add_flag("--ignore-eos", options->ignore_eos, "Never choose the end-of-sequence token (min_new_tokens)");
  sub->add_option("--save-logits", options->save_logits, "Write the prompt's logits [T, vocab] as safetensors 'logits'");
  sub->add_option("--temperature", options->temperature, "0: greedy; otherwise sample from softmax(logits / T)")
      ->capture_default_str();
  sub->add_option("--top-k", options->top_k, "Sample among the k most likely tokens (0: all)")->capture_default_str();
  sub->add_option("--top-p", options->top_p, "Sample from the smallest set holding this probability mass")
      ->capture_default_str();
  sub->add_option("--seed", options->seed, "Seed for sampling")->capture_default_str();
  sub->callback([options] { run_generate(*options); });
}

const bool registered = meganeura::cli::register_command("generate", setup_generate);

}  // namespace
