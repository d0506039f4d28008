// Generation with KV caches: one decode session, prefill sessions per length bucket sharing its
// weights, the next token chosen on the GPU (argmax of scaled logits plus a bias: zeros for greedy,
// Gumbel noise for temperature sampling, a large negative value on masked tokens; with top_k /
// top_p the noise is added after the graph's filter instead).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "meganeura/error.h"
#include "meganeura/models/smollm2.h"
#include "meganeura/session.h"

namespace meganeura::models {
namespace {

// Far below any logit yet finite, so scaled sums never turn into NaN.
constexpr float kMasked = -1e30f;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Uniform in (0, 1) from 53 random bits, the same on every platform (unlike std distributions).
double open_uniform(std::mt19937_64& rng) {
  return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53;
}

}  // namespace

struct Generator::Impl {
  const SmolLM2Checkpoint* checkpoint = nullptr;
  int64_t max_positions = 0;
  DType weight_storage = DType::f32;  // prefill sessions borrow the weights only if they store them alike
  Session decode;  // owns the weights; prefill sessions borrow them, so it is declared first
  std::map<std::pair<int64_t, bool>, Session> prefill;
  GenerationStats stats;

  Impl(const SmolLM2Checkpoint& c, int64_t positions, DType storage)
      : checkpoint(&c),
        max_positions(positions),
        weight_storage(storage),
        decode(build(decoding_graph(c.config(), 1, positions), nullptr)) {
    c.upload(decode);
  }

  Session build(const Graph& graph, const Session* weights) {
    Session session = build_inference_session(
        graph, SessionOptions{.share_parameters_with = weights, .weight_storage = weight_storage});
    // The caches start as zeros: positions not written yet are masked, but must hold finite values.
    const std::vector<float> zeros(cache_elements(), 0.0f);
    for (int64_t i = 0; i < checkpoint->config().num_hidden_layers; ++i) {
      session.set_input("cache_k." + std::to_string(i), zeros);
      session.set_input("cache_v." + std::to_string(i), zeros);
    }
    session.set_input("inv_temperature", std::vector<float>{1.0f});
    const std::vector<float> vocab_zeros(static_cast<size_t>(checkpoint->config().vocab_size), 0.0f);
    session.set_input("logit_bias", vocab_zeros);
    session.set_input("sample_noise", vocab_zeros);
    session.set_input("top_k", std::span<const int32_t>(std::vector<int32_t>{0}));
    session.set_input("top_p", std::vector<float>{1.0f});
    return session;
  }

  size_t cache_elements() const {
    const LlamaConfig& c = checkpoint->config();
    return static_cast<size_t>(c.num_key_value_heads * max_positions * c.head_dim);
  }

  Session& prefill_session(int64_t bucket, bool all_logits) {
    auto it = prefill.find({bucket, all_logits});
    if (it == prefill.end())
      it = prefill.emplace(std::pair{bucket, all_logits},
                           build(decoding_graph(checkpoint->config(), bucket, max_positions, all_logits), &decode))
               .first;
    return it->second;
  }

  // Runs the prompt through a bucket's session from position 0; returns it for reading outputs.
  Session& run_prefill(std::span<const int32_t> prompt, bool all_logits) {
    return run_prefill(prefill_session(prefill_bucket(static_cast<int64_t>(prompt.size()), max_positions), all_logits),
                       prompt);
  }

  Session& run_prefill(Session& session, std::span<const int32_t> prompt) {
    const int64_t length = static_cast<int64_t>(prompt.size());
    const int64_t bucket = prefill_bucket(length, max_positions);
    const int32_t vocab = static_cast<int32_t>(checkpoint->config().vocab_size);
    std::vector<int32_t> padded(static_cast<size_t>(bucket), 0);
    for (size_t i = 0; i < prompt.size(); ++i) {
      if (prompt[i] < 0 || prompt[i] >= vocab)
        throw Error("prompt token " + std::to_string(prompt[i]) + " at index " + std::to_string(i) +
                    " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
      padded[i] = prompt[i];
    }
    session.set_input("input_ids", std::span<const int32_t>(padded));
    session.set_input("offset", std::span<const int32_t>(std::vector<int32_t>{0}));
    session.set_input("last", std::span<const int32_t>(std::vector<int32_t>{static_cast<int32_t>(length - 1)}));
    session.run();
    return session;
  }
};

Generator::Generator(const SmolLM2Checkpoint& checkpoint, int64_t max_positions, DType weight_storage) {
  const LlamaConfig& config = checkpoint.config();
  if (max_positions <= 0) max_positions = std::min<int64_t>(config.max_position_embeddings, 2048);
  if (max_positions > config.max_position_embeddings)
    throw Error("Generator: max_positions " + std::to_string(max_positions) + " exceeds the model's " +
                std::to_string(config.max_position_embeddings) + " positions");
  if (weight_storage != DType::f32 && weight_storage != DType::f16 && weight_storage != DType::bf16)
    throw Error("Generator: weight storage must be f32, f16 or bf16, got " + std::string(dtype_name(weight_storage)));
  impl_ = std::make_unique<Impl>(checkpoint, max_positions, weight_storage);
}

Generator::Generator(Generator&&) noexcept = default;
Generator& Generator::operator=(Generator&&) noexcept = default;
Generator::~Generator() = default;

int64_t Generator::max_positions() const { return impl_->max_positions; }
size_t Generator::prefill_sessions_built() const { return impl_->prefill.size(); }
uint64_t Generator::device_memory() const {
  // total() leaves out shared_parameters, so the borrowed weights are counted once, by decode.
  uint64_t bytes = impl_->decode.memory_summary().total();
  for (const auto& [bucket, session] : impl_->prefill) bytes += session.memory_summary().total();
  return bytes;
}
const GenerationStats& Generator::last_stats() const { return impl_->stats; }

Session Generator::build_prefill(const Graph& graph) const { return impl_->build(graph, &impl_->decode); }

std::vector<float> Generator::prompt_logits(std::span<const int32_t> prompt) {
  if (prompt.empty()) throw Error("Generator::prompt_logits: the prompt is empty");
  return prompt_logits(impl_->prefill_session(prefill_bucket(static_cast<int64_t>(prompt.size()), impl_->max_positions),
                                              /*all_logits=*/true),
                       prompt);
}

std::vector<float> Generator::prompt_logits(Session& prefill, std::span<const int32_t> prompt) {
  if (prompt.empty()) throw Error("Generator::prompt_logits: the prompt is empty");
  Session& session = impl_->run_prefill(prefill, prompt);
  std::vector<float> logits = session.read_output(1);
  const size_t wanted = prompt.size() * static_cast<size_t>(impl_->checkpoint->config().vocab_size);
  if (logits.size() < wanted)
    throw Error("Generator::prompt_logits: the prefill session gives one row of logits; build its graph with all_logits");
  logits.resize(wanted);
  return logits;
}

std::vector<int32_t> Generator::generate(std::span<const int32_t> prompt, const SamplingOptions& options) {
  return generate_on(nullptr, prompt, options);
}

std::vector<int32_t> Generator::generate(Session& prefill, std::span<const int32_t> prompt, const SamplingOptions& options) {
  return generate_on(&prefill, prompt, options);
}

std::vector<int32_t> Generator::generate_on(Session* custom_prefill, std::span<const int32_t> prompt,
                                            const SamplingOptions& options) {
  Impl& impl = *impl_;
  const LlamaConfig& config = impl.checkpoint->config();
  const int64_t length = static_cast<int64_t>(prompt.size());
  if (length == 0) throw Error("Generator::generate: the prompt is empty; give at least one token");
  if (options.max_new_tokens < 0) throw Error("Generator::generate: max_new_tokens must not be negative");
  if (options.temperature < 0 || !std::isfinite(options.temperature))
    throw Error("Generator::generate: temperature must be 0 (greedy) or positive, got " + std::to_string(options.temperature));
  if (!(options.top_p > 0 && options.top_p <= 1.0))
    throw Error("Generator::generate: top_p must be in (0, 1], got " + std::to_string(options.top_p));
  // The last new token is never fed back, so it needs no cache slot.
  if (length + options.max_new_tokens - 1 > impl.max_positions)
    throw Error("Generator::generate: " + std::to_string(length) + " prompt tokens + " +
                std::to_string(options.max_new_tokens) + " new ones exceed the KV cache of " +
                std::to_string(impl.max_positions) + " positions; make the Generator with a larger max_positions");
  impl.stats = GenerationStats{.prompt_tokens = length};
  std::vector<int32_t> generated;
  if (options.max_new_tokens == 0) return generated;

  const std::vector<int32_t>& stops = options.stop_tokens.empty() ? config.eos_token_ids : options.stop_tokens;
  std::vector<float> bias(static_cast<size_t>(config.vocab_size), 0.0f);
  if (options.ignore_eos)
    for (int32_t eos : config.eos_token_ids)
      if (eos < config.vocab_size) bias[static_cast<size_t>(eos)] = kMasked;
  const bool greedy = options.temperature == 0.0;
  // Greedy ignores top_k / top_p: the largest logit survives any filter.
  const bool filtered = !greedy && (options.top_k > 0 || options.top_p < 1.0);
  const float inv_temperature = greedy ? 1.0f : static_cast<float>(1.0 / options.temperature);
  const int32_t top_k = filtered && options.top_k > 0
                            ? static_cast<int32_t>(std::min<int64_t>(options.top_k, config.vocab_size))
                            : 0;
  const float top_p = filtered ? static_cast<float>(options.top_p) : 1.0f;
  const std::vector<float> no_noise(bias.size(), 0.0f);
  std::mt19937_64 rng(options.seed);

  // Gumbel-max: argmax(logits / T + g), g = −log(−log U), draws exactly from softmax(logits / T);
  // over the filter's survivors when the noise comes after the top-k / top-p mask.
  auto prepare = [&](Session& session) {
    if (greedy) {
      session.set_input("logit_bias", std::span<const float>(bias));
      session.set_input("sample_noise", std::span<const float>(no_noise));
    } else {
      std::vector<float> noisy = bias;
      for (float& b : noisy)
        if (b == 0.0f) b = static_cast<float>(-std::log(-std::log(open_uniform(rng))));
      if (filtered) {
        for (size_t i = 0; i < noisy.size(); ++i)
          if (bias[i] != 0.0f) noisy[i] = 0.0f;  // masked tokens are masked through logit_bias
        session.set_input("logit_bias", std::span<const float>(bias));
        session.set_input("sample_noise", std::span<const float>(noisy));
      } else {
        session.set_input("logit_bias", std::span<const float>(noisy));
        session.set_input("sample_noise", std::span<const float>(no_noise));
      }
    }
    session.set_input("inv_temperature", std::vector<float>{inv_temperature});
    session.set_input("top_k", std::span<const int32_t>(std::vector<int32_t>{top_k}));
    session.set_input("top_p", std::vector<float>{top_p});
  };
  auto choose = [&](Session& session) -> int32_t { return session.read_output_i32(0).at(0); };
  // Returns false when generation must end after `token`.
  auto accept = [&](int32_t token) {
    generated.push_back(token);
    const bool go_on = !options.on_token || options.on_token(token);
    return go_on && std::find(stops.begin(), stops.end(), token) == stops.end() &&
           static_cast<int64_t>(generated.size()) < options.max_new_tokens;
  };

  auto start = std::chrono::steady_clock::now();
  Session& prefill_session =
      custom_prefill ? *custom_prefill : impl.prefill_session(prefill_bucket(length, impl.max_positions), false);
  prepare(prefill_session);
  Session& prefill = impl.run_prefill(prefill_session, prompt);
  const int32_t first = choose(prefill);
  impl.stats.prefill_seconds = seconds_since(start);
  impl.stats.new_tokens = 1;
  if (!accept(first)) return generated;

  // Hand the caches over once, on the GPU; from here every step stays on the decode session.
  start = std::chrono::steady_clock::now();
  std::vector<std::pair<size_t, std::string>> caches;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const size_t output = 2 + 2 * static_cast<size_t>(i);
    caches.emplace_back(output, "cache_k." + std::to_string(i));
    caches.emplace_back(output + 1, "cache_v." + std::to_string(i));
  }
  impl.decode.set_inputs_from_outputs(prefill, caches);
  impl.decode.set_input("last", std::span<const int32_t>(std::vector<int32_t>{0}));
  int32_t position = static_cast<int32_t>(length);
  int32_t token = first;
  // Greedy decoding feeds the same bias and no noise every step: set once.
  if (greedy) prepare(impl.decode);
  while (true) {
    if (!greedy) prepare(impl.decode);
    impl.decode.set_input("input_ids", std::span<const int32_t>(std::vector<int32_t>{token}));
    impl.decode.set_input("offset", std::span<const int32_t>(std::vector<int32_t>{position}));
    impl.decode.run();
    token = choose(impl.decode);
    ++position;
    ++impl.stats.new_tokens;
    if (!accept(token)) break;
  }
  impl.stats.decode_seconds = seconds_since(start);
  return generated;
}

}  // namespace meganeura::models
