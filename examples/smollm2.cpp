// SmolLM2 in a short program: load a checkpoint (a folder or a Hub repository), continue a prompt
// with greedy decoding on the GPU, then compute the loss and gradients of one batch.
//
//   smollm2 --model HuggingFaceTB/SmolLM2-135M --prompt "The capital of France is" --max-tokens 20
#include <CLI/CLI.hpp>
#include <cmath>
#include <iostream>

#include "meganeura/error.h"
#include "meganeura/models/smollm2.h"
#include "meganeura/session.h"
#include "meganeura/tokenizer.h"

int main(int argc, char** argv) {
  std::string model = "HuggingFaceTB/SmolLM2-135M";
  std::string prompt = "The capital of France is";
  int64_t max_tokens = 20;
  CLI::App app("SmolLM2: generate a continuation, then one training step's loss and gradient norm");
  app.add_option("--model", model, "Model folder or Hugging Face repository id")->capture_default_str();
  app.add_option("--prompt", prompt, "Text to continue")->capture_default_str();
  app.add_option("--max-tokens", max_tokens, "Tokens to generate")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  namespace models = meganeura::models;
  try {
    const auto checkpoint = models::SmolLM2Checkpoint::open_or_download(model);
    const auto tokenizer = meganeura::Tokenizer::load(checkpoint.directory());
    const std::vector<int32_t> ids = tokenizer.encode(prompt);

    // Generation: the KV cache holds the prompt and the new tokens.
    models::Generator generator(checkpoint, static_cast<int64_t>(ids.size()) + max_tokens);
    models::SamplingOptions sampling;
    sampling.max_new_tokens = max_tokens;
    const std::vector<int32_t> generated = generator.generate(ids, sampling);
    std::cout << prompt << tokenizer.decode(generated) << "\n";
    const auto& stats = generator.last_stats();
    std::cout << "decode: " << static_cast<double>(stats.new_tokens - 1) / stats.decode_seconds << " tokens/s\n";

    // Training: the prompt and its continuation as one sequence, next-token cross-entropy.
    std::vector<int32_t> sequence = ids;
    sequence.insert(sequence.end(), generated.begin(), generated.end());
    const auto length = static_cast<int64_t>(sequence.size());
    meganeura::Session session = meganeura::build_session(models::training_graph(checkpoint.config(), 1, length),
                                                          {.optimizer = meganeura::OptimizerSpec::adamw(1e-4)});
    checkpoint.upload(session);
    session.set_input("input_ids", std::span<const int32_t>(sequence));
    const std::vector<int32_t> labels = models::next_token_labels(sequence, 1, length);
    session.set_input("labels", std::span<const int32_t>(labels));
    session.compute_gradients();
    const std::vector<float> grad = session.read_gradient(models::SmolLM2Checkpoint::embedding_name());
    double norm = 0;
    for (float g : grad) norm += static_cast<double>(g) * g;
    std::cout << "loss on its own continuation: " << session.read_loss()
              << ", embedding gradient norm: " << std::sqrt(norm) << "\n";
  } catch (const meganeura::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
