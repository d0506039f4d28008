// The SmolLM2 graphs the generator and loss-grad run, checked on the CPU reference against the
// transformers fixtures: logits (f32 and bf16 checkpoints), greedy tokens through a padded prefill
// bucket and one-token decoding, the batch loss and every parameter's gradient.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "meganeura/autodiff.h"
#include "meganeura/models/smollm2.h"
#include "meganeura/reference.h"
#include "meganeura/safetensors.h"

namespace meganeura::models {
namespace {

const std::string kFixtures = std::string(MEGANEURA_TEST_DATA_DIR) + "/fixtures/";

nlohmann::json golden_json() {
  std::ifstream in(kFixtures + "smollm2-tiny/reference.json");
  return nlohmann::json::parse(in);
}

reference::Feeds weight_feeds(const SmolLM2Checkpoint& checkpoint) {
  reference::Feeds feeds;
  for (const auto& [name, values] : checkpoint.weights()) feeds[name] = {values.begin(), values.end()};
  return feeds;
}

std::vector<double> as_doubles(const std::vector<int32_t>& ids) { return {ids.begin(), ids.end()}; }

double worst_over_largest(const std::vector<double>& got, const std::vector<float>& want) {
  double largest = 0, worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    largest = std::max(largest, std::fabs(static_cast<double>(want[i])));
    worst = std::max(worst, std::fabs(got.at(i) - want[i]));
  }
  return worst / largest;
}

double relative_error(const std::vector<double>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (got.at(i) - want[i]) * (got.at(i) - want[i]);
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(diff / norm);
}

void expect_logits_match(const std::string& fixture) {
  const auto checkpoint = SmolLM2Checkpoint::open(kFixtures + fixture);
  const auto golden = SafeTensorsFile::open(kFixtures + fixture + "/reference.safetensors");
  const std::vector<int32_t> ids = golden.to_i32("input_ids");
  const Graph g = logits_graph(checkpoint.config(), 1, static_cast<int64_t>(ids.size()));
  reference::Feeds feeds = weight_feeds(checkpoint);
  feeds["input_ids"] = as_doubles(ids);
  const auto values = reference::run(g, feeds);
  EXPECT_LE(worst_over_largest(values[static_cast<size_t>(g.outputs()[0])], golden.to_f32("logits")), 1e-4);
}

TEST(SmolLM2Reference, CheckpointLoadsWithTiedEmbeddings) {
  const auto checkpoint = SmolLM2Checkpoint::open(kFixtures + "smollm2-tiny");
  EXPECT_EQ(checkpoint.weights().size(), 20u);  // 9 per layer, the embedding and the final norm
  EXPECT_FALSE(checkpoint.weights().count("lm_head.weight"));
  EXPECT_EQ(checkpoint.weights().at("model.embed_tokens.weight").size(), 512u * 64u);
}

TEST(SmolLM2Reference, Bf16WeightsWidenExactly) {
  const auto bf16 = SmolLM2Checkpoint::open(kFixtures + "smollm2-tiny-bf16");
  const auto f32 = SmolLM2Checkpoint::open(kFixtures + "smollm2-tiny");
  for (const auto& [name, values] : f32.weights()) {
    const auto& widened = bf16.weights().at(name);
    ASSERT_EQ(widened.size(), values.size()) << name;
    for (size_t i = 0; i < values.size(); ++i)
      ASSERT_EQ(widened[i], bf16_to_f32(f32_to_bf16(values[i]))) << name << "[" << i << "]";
  }
}

TEST(SmolLM2Reference, LogitsMatchTransformersF32) { expect_logits_match("smollm2-tiny"); }

TEST(SmolLM2Reference, LogitsMatchTransformersBf16) { expect_logits_match("smollm2-tiny-bf16"); }

TEST(SmolLM2Reference, PaddedPrefillAndDecodingGiveTheGreedyTokens) {
  // The generator's graphs: a 16-token bucket holding the 12-token prompt (row 11 chosen), then
  // one-token steps; the end-of-sequence token masked through logit_bias as --ignore-eos does.
  const auto checkpoint = SmolLM2Checkpoint::open(kFixtures + "smollm2-tiny");
  const LlamaConfig& config = checkpoint.config();
  const auto json = golden_json();
  const auto prompt = json.at("prompt_ids").get<std::vector<int32_t>>();
  const auto expected = json.at("greedy_new_ids").get<std::vector<int32_t>>();
  const int64_t max_positions = 32;
  const int64_t bucket = prefill_bucket(static_cast<int64_t>(prompt.size()), max_positions);
  ASSERT_EQ(bucket, 16);
  const Graph prefill = decoding_graph(config, bucket, max_positions);
  const Graph decode = decoding_graph(config, 1, max_positions);

  reference::Feeds feeds = weight_feeds(checkpoint);
  const size_t cache_size = static_cast<size_t>(config.num_key_value_heads * max_positions * config.head_dim);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i)
    for (const char* kv : {"cache_k.", "cache_v."}) feeds[kv + std::to_string(i)] = std::vector<double>(cache_size, 0.0);
  std::vector<double> bias(static_cast<size_t>(config.vocab_size), 0.0);
  bias[static_cast<size_t>(config.eos_token_ids.at(0))] = -1e30;
  feeds["logit_bias"] = bias;
  feeds["inv_temperature"] = {1.0};
  feeds["top_k"] = {0.0};
  feeds["top_p"] = {1.0};
  feeds["sample_noise"] = std::vector<double>(static_cast<size_t>(config.vocab_size), 0.0);
  std::vector<double> padded(static_cast<size_t>(bucket), 7.0);  // padding ids must not matter
  std::copy(prompt.begin(), prompt.end(), padded.begin());
  feeds["input_ids"] = padded;
  feeds["offset"] = {0.0};
  feeds["last"] = {static_cast<double>(prompt.size() - 1)};

  std::vector<int32_t> generated;
  int64_t position = static_cast<int64_t>(prompt.size());
  for (size_t step = 0; step < expected.size(); ++step) {
    const Graph& g = step == 0 ? prefill : decode;
    const auto values = reference::run(g, feeds, {.training = false});
    generated.push_back(static_cast<int32_t>(values[static_cast<size_t>(g.outputs()[0])].at(0)));
    for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
      feeds["cache_k." + std::to_string(i)] = values[static_cast<size_t>(g.outputs()[2 + 2 * i])];
      feeds["cache_v." + std::to_string(i)] = values[static_cast<size_t>(g.outputs()[3 + 2 * i])];
    }
    feeds["input_ids"] = {static_cast<double>(generated.back())};
    feeds["offset"] = {static_cast<double>(position++)};
    feeds["last"] = {0.0};
  }
  EXPECT_EQ(generated, expected);
}

TEST(SmolLM2Reference, AllLogitsPrefillMatchesTransformers) {
  const auto checkpoint = SmolLM2Checkpoint::open(kFixtures + "smollm2-tiny");
  const LlamaConfig& config = checkpoint.config();
  const auto golden = SafeTensorsFile::open(kFixtures + "smollm2-tiny/reference.safetensors");
  const std::vector<int32_t> ids = golden.to_i32("input_ids");
  const Graph g = decoding_graph(config, 16, 16, /*all_logits=*/true);
  reference::Feeds feeds = weight_feeds(checkpoint);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i)
    for (const char* kv : {"cache_k.", "cache_v."})
      feeds[kv + std::to_string(i)] = std::vector<double>(static_cast<size_t>(2 * 16 * 16), 0.5);
  std::vector<double> padded(16, 3.0);
  std::copy(ids.begin(), ids.end(), padded.begin());
  feeds["input_ids"] = padded;
  feeds["offset"] = {0.0};
  feeds["last"] = {static_cast<double>(ids.size() - 1)};
  feeds["logit_bias"] = std::vector<double>(512, 0.0);
  feeds["inv_temperature"] = {1.0};
  feeds["top_k"] = {0.0};
  feeds["top_p"] = {1.0};
  feeds["sample_noise"] = std::vector<double>(512, 0.0);
  const auto values = reference::run(g, feeds, {.training = false});
  std::vector<double> logits = values[static_cast<size_t>(g.outputs()[1])];
  logits.resize(ids.size() * 512);
  const std::vector<float> want = golden.to_f32("logits");
  EXPECT_LE(worst_over_largest(logits, want), 1e-4);
  const auto last_row = want.begin() + static_cast<long>((ids.size() - 1) * 512);
  EXPECT_EQ(values[static_cast<size_t>(g.outputs()[0])].at(0), std::max_element(last_row, want.end()) - last_row);
}

TEST(SmolLM2Reference, LossAndEveryGradientMatchPyTorch) {
  const auto checkpoint = SmolLM2Checkpoint::open(kFixtures + "smollm2-tiny");
  const auto golden = SafeTensorsFile::open(kFixtures + "smollm2-tiny/reference.safetensors");
  const auto golden_grads = SafeTensorsFile::open(kFixtures + "smollm2-tiny/reference_grads.safetensors");
  const std::vector<int32_t> ids = golden.to_i32("batch_input_ids");
  const Graph g = training_graph(checkpoint.config(), 2, 9);
  const GradientGraph d = differentiate(g);
  reference::Feeds feeds = weight_feeds(checkpoint);
  feeds["input_ids"] = as_doubles(ids);
  feeds["labels"] = as_doubles(next_token_labels(ids, 2, 9));
  const auto values = reference::run(d.graph, feeds);
  EXPECT_NEAR(values[static_cast<size_t>(g.outputs()[0])].at(0), golden_json().at("batch_loss").get<double>(), 1e-5);
  ASSERT_EQ(d.parameters.size(), 20u);
  for (const std::string& name : d.parameters)
    EXPECT_LE(relative_error(values[static_cast<size_t>(d.gradients.at(name))], golden_grads.to_f32(name)), 1e-4) << name;
}

TEST(SmolLM2Reference, NextTokenLabelsShiftEachRow) {
  const std::vector<int32_t> ids{5, 6, 7, 8, 9, 10};
  EXPECT_EQ(next_token_labels(ids, 2, 3), (std::vector<int32_t>{6, 7, -100, 9, 10, -100}));
  EXPECT_THROW(next_token_labels(ids, 4, 2), Error);
}

TEST(SmolLM2Reference, PrefillBucketsArePowersOfTwoWithinTheCache) {
  EXPECT_EQ(prefill_bucket(1, 100), 16);
  EXPECT_EQ(prefill_bucket(16, 100), 16);
  EXPECT_EQ(prefill_bucket(17, 100), 32);
  EXPECT_EQ(prefill_bucket(70, 100), 100);
  EXPECT_THROW(prefill_bucket(101, 100), Error);
  EXPECT_THROW(prefill_bucket(0, 100), Error);
}

TEST(SmolLM2Reference, DecodingGraphRejectsACacheTooSmall) {
  const LlamaConfig config = LlamaConfig::load(kFixtures + "smollm2-tiny");
  EXPECT_THROW(decoding_graph(config, 16, 8), Error);
}

}  // namespace
}  // namespace meganeura::models
