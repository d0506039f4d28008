// SmolLM2-tiny with its weights stored as bf16 (SessionOptions::weight_storage) against the
// transformers fixtures: the bf16 checkpoint's prompt logits (its weights are bf16 already, so the
// storage is exact), and greedy decoding through the KV cache of the f32 checkpoint rounded to bf16.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "meganeura/models/smollm2.h"
#include "meganeura/safetensors.h"
#include "meganeura/session.h"

namespace meganeura::models {
namespace {

const std::string kFixtures = std::string(MEGANEURA_TEST_DATA_DIR) + "/fixtures/";

double worst_over_largest(const std::vector<float>& got, const std::vector<float>& want) {
  double largest = 0, worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    largest = std::max(largest, std::fabs(static_cast<double>(want[i])));
    worst = std::max(worst, std::fabs(static_cast<double>(got.at(i)) - want[i]));
  }
  return worst / largest;
}

SessionOptions bf16_weights() {
  SessionOptions options;
  options.weight_storage = DType::bf16;
  return options;
}

TEST(SmolLM2WeightStorage, Bf16CheckpointPromptLogitsMatchTransformers) {
  const auto checkpoint = SmolLM2Checkpoint::open(kFixtures + "smollm2-tiny-bf16");
  const auto golden = SafeTensorsFile::open(kFixtures + "smollm2-tiny-bf16/reference.safetensors");
  const std::vector<int32_t> ids = golden.to_i32("input_ids");
  Session session = build_inference_session(logits_graph(checkpoint.config(), 1, static_cast<int64_t>(ids.size())),
                                            bf16_weights());
  checkpoint.upload(session);
  // The matrices (all but the norm scales) take half their f32 bytes.
  const uint64_t f32_bytes = build_inference_session(logits_graph(checkpoint.config(), 1, 2)).memory_summary().parameters;
  EXPECT_LT(session.memory_summary().parameters, f32_bytes * 0.52);
  session.set_input("input_ids", std::span<const int32_t>(ids));
  session.run();
  const std::vector<float> want = golden.to_f32("logits");
  const std::vector<float> got = session.read_output(0);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_LE(worst_over_largest(got, want), 1e-4);
}

// Greedy tokens one position at a time through a decode session's KV cache.
std::vector<int32_t> greedy_decode(const SmolLM2Checkpoint& checkpoint, const std::vector<int32_t>& prompt,
                                   size_t new_tokens, const SessionOptions& options) {
  const LlamaConfig& config = checkpoint.config();
  const int64_t capacity = 64;
  Session session = build_inference_session(decoding_graph(config, 1, capacity), options);
  checkpoint.upload(session);
  const std::vector<float> empty_cache(static_cast<size_t>(config.num_key_value_heads * capacity * config.head_dim), 0.f);
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    session.set_input("cache_k." + std::to_string(layer), empty_cache);
    session.set_input("cache_v." + std::to_string(layer), empty_cache);
  }
  const std::vector<float> zeros(static_cast<size_t>(config.vocab_size), 0.f);
  session.set_input("logit_bias", zeros);
  session.set_input("sample_noise", zeros);
  session.set_input("inv_temperature", std::vector<float>{1.f});
  session.set_input("top_k", std::span<const int32_t>(std::vector<int32_t>{0}));
  session.set_input("top_p", std::vector<float>{1.f});
  session.set_input("last", std::span<const int32_t>(std::vector<int32_t>{0}));
  std::vector<int32_t> generated;
  int32_t next = 0;
  for (size_t position = 0; position < prompt.size() + new_tokens - 1; ++position) {
    const int32_t id = position < prompt.size() ? prompt[position] : next;
    session.set_input("input_ids", std::span<const int32_t>(std::vector<int32_t>{id}));
    session.set_input("offset", std::span<const int32_t>(std::vector<int32_t>{static_cast<int32_t>(position)}));
    session.run();
    next = session.read_output_i32(0).at(0);
    if (position + 1 >= prompt.size()) generated.push_back(next);
  }
  return generated;
}

TEST(SmolLM2WeightStorage, GreedyTokensWithBf16WeightsMatchTransformers) {
  const auto checkpoint = SmolLM2Checkpoint::open(kFixtures + "smollm2-tiny");
  std::ifstream in(kFixtures + "smollm2-tiny/reference.json");
  const auto json = nlohmann::json::parse(in);
  const auto prompt = json.at("prompt_ids").get<std::vector<int32_t>>();
  const auto expected = json.at("greedy_new_ids").get<std::vector<int32_t>>();
  EXPECT_EQ(greedy_decode(checkpoint, prompt, expected.size(), bf16_weights()), expected);
}

}  // namespace
}  // namespace meganeura::models
