// bench_smolvlm2 — a SmolVLM2-256M-size model (SigLIP-B/16 at 512 px, pixel shuffle by 4,
// SmolLM2-135M text model) with random weights and one 512 × 512 image (64 image tokens) inside an
// 80-token prompt. Prints one JSON line per workload for bench/run.py.
//
//   build/bin/bench_smolvlm2 smolvlm2_ttft smolvlm2_decode_step
//
// smolvlm2_ttft: pixels and ids in, first token id out (vision encoder, connector, prefill, token
// chosen on the GPU). smolvlm2_decode_step: the time per further token, (t(34 tokens) − t(2 tokens))
// / 32, so the prompt and the cache hand-over cancel out. Checks before timing: the first token
// equals the argmax of the all-position prefill's last row, and the decode steps agree with a full
// prefill of the longer prompt. Times are host-measured medians (fence wait included).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bench_report.h"
#include "gpu/context.h"
#include "meganeura/error.h"
#include "meganeura/models/smolvlm2.h"

namespace {

using namespace meganeura;
using models::SmolVlmConfig;

constexpr int64_t kTextBefore = 8, kTextAfter = 8;

SmolVlmConfig smolvlm2_256m() {
  SmolVlmConfig c;
  c.vision = {.hidden_size = 768, .intermediate_size = 3072, .num_hidden_layers = 12, .num_attention_heads = 12,
              .num_channels = 3, .image_size = 512, .patch_size = 16, .layer_norm_eps = 1e-6, .gelu_tanh = true};
  c.scale_factor = 4;
  c.image_token_id = 49190;
  // SmolVLM2-256M's text model is SmolLM2-135M with a larger vocabulary and its own lm_head.
  models::LlamaConfig& t = c.text;
  t = models::LlamaConfig::smollm2_135m();
  t.vocab_size = 49280;
  t.tie_word_embeddings = false;
  t.eos_token_ids = {2};
  return c;
}

models::SmolVlmCheckpoint random_checkpoint(const SmolVlmConfig& config) {
  const int64_t length = 1 + config.image_tokens();
  const Graph graph = models::vlm_decoding_graph(config, 1, length, length);
  std::map<std::string, std::vector<float>> weights;
  for (int32_t id : graph.parameters()) {
    const Node& node = graph.node(id);
    weights[node.name] = initial_values(node.init, node.shape, parameter_seed(5, node.name));
  }
  return models::SmolVlmCheckpoint(config, std::move(weights));
}

// Text, the image's tokens, text: the layout the processor gives one image without splitting.
std::vector<int32_t> prompt_ids(const SmolVlmConfig& config) {
  std::mt19937 rng(1);
  std::vector<int32_t> ids;
  auto text = [&](int64_t count) {
    for (int64_t i = 0; i < count; ++i) ids.push_back(static_cast<int32_t>(4 + rng() % 40000));
  };
  text(kTextBefore);
  ids.insert(ids.end(), static_cast<size_t>(config.image_tokens()), config.image_token_id);
  text(kTextAfter);
  return ids;
}

std::vector<float> random_pixels(const SmolVlmConfig& config) {
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);  // normalised pixels lie in [-1, 1]
  std::vector<float> pixels(static_cast<size_t>(config.vision.num_channels * config.vision.image_size * config.vision.image_size));
  for (float& p : pixels) p = unit(rng);
  return pixels;
}

using bench_report::emit;
using bench_report::emit_failed;
using bench_report::median_ms;

int32_t last_row_argmax(const std::vector<float>& logits, size_t row, int64_t vocab) {
  const auto begin = logits.begin() + static_cast<std::ptrdiff_t>(row * static_cast<size_t>(vocab));
  return static_cast<int32_t>(std::max_element(begin, begin + vocab) - begin);
}

}  // namespace

int main(int argc, char** argv) {
  const std::set<std::string> known{"smolvlm2_ttft", "smolvlm2_decode_step"};
  std::set<std::string> wanted;
  for (int i = 1; i < argc; ++i) {
    if (!known.count(argv[i])) {
      std::fprintf(stderr, "unknown workload %s; known: smolvlm2_ttft smolvlm2_decode_step\n", argv[i]);
      return 2;
    }
    wanted.insert(argv[i]);
  }
  if (wanted.empty()) wanted = known;
  try {
    const SmolVlmConfig config = smolvlm2_256m();
    const models::SmolVlmCheckpoint checkpoint = random_checkpoint(config);
    const std::vector<int32_t> ids = prompt_ids(config);
    const std::vector<float> pixels = random_pixels(config);
    const int64_t vocab = config.text.vocab_size;
    models::VlmGenerator generator(checkpoint, 128);

    const std::vector<float> logits = generator.prompt_logits(ids, pixels, 1);
    const int32_t expected = last_row_argmax(logits, ids.size() - 1, vocab);
    auto generate = [&](int64_t tokens) {
      models::SamplingOptions options;
      options.max_new_tokens = tokens;
      options.ignore_eos = true;
      return generator.generate(ids, pixels, 1, options);
    };
    std::vector<int32_t> first;
    const double ttft = median_ms([&] { first = generate(1); }, 10);
    if (first.size() != 1 || first[0] != expected) {
      for (const auto& name : wanted) emit_failed(name, "first token disagrees with the prefill logits");
      return 1;
    }
    if (wanted.count("smolvlm2_ttft")) {
      char note[256];
      std::snprintf(note, sizeof note,
                    "%zu-token prompt (%lld image tokens from one 512x512 image), padded to a 128 bucket; prefill "
                    "stage %.2f ms",
                    ids.size(), static_cast<long long>(config.image_tokens()),
                    generator.last_stats().prefill_seconds * 1e3);
      emit("smolvlm2_ttft", ttft, "ok (first token = all-position prefill argmax)", note);
    }
    if (wanted.count("smolvlm2_decode_step")) {
      std::vector<int32_t> longest;
      const double short_run = median_ms([&] { (void)generate(2); }, 10);
      const double long_run = median_ms([&] { longest = generate(34); }, 5);
      // The decode path (KV cache) must choose what a full prefill of the longer prompt does.
      std::vector<int32_t> extended = ids;
      extended.insert(extended.end(), longest.begin(), longest.begin() + 4);
      const std::vector<float> check = generator.prompt_logits(extended, pixels, 1);
      for (size_t k = 0; k < 4; ++k)
        if (last_row_argmax(check, ids.size() + k - 1, vocab) != longest[k]) {
          emit_failed("smolvlm2_decode_step", "a decode step disagrees with a full prefill");
          return 1;
        }
      char note[200];
      std::snprintf(note, sizeof note, "(t(34 tokens) %.1f ms - t(2 tokens) %.1f ms) / 32; greedy, EOS masked",
                    long_run, short_run);
      emit("smolvlm2_decode_step", (long_run - short_run) / 32.0, "ok (decode steps = full-prefill argmax)", note);
    }
  } catch (const Error& e) {
    for (const auto& name : wanted) emit_failed(name, e.what());
    return 1;
  }
  return 0;
}
