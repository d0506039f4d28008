// SmolLM2 on the GPU (lavapipe in CI) against the transformers fixtures: prompt logits for the f32
// and bf16 checkpoints, 16 greedy tokens through prefill + KV-cache decoding, prefill buckets reused,
// seeded sampling, and the loss and gradients of a batch — directly and through `meganeura loss-grad`.
// Until the attention kernels exist, a session holding attention cannot be built; these tests then
// skip with the compiler's message, and the CPU-reference tests cover the graphs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "meganeura/models/smollm2.h"
#include "meganeura/safetensors.h"
#include "meganeura/session.h"

namespace meganeura::models {
namespace {

const std::string kFixtures = std::string(MEGANEURA_TEST_DATA_DIR) + "/fixtures/";

// Empty when the GPU can run attention; otherwise why not.
const std::string& attention_unavailable() {
  static const std::string reason = [] {
    try {
      Graph g;
      const Tensor q = g.input("q", {1, 2, 3, 4});
      g.set_outputs({g.attention(q, q, q, {.causal = true})});
      (void)build_inference_session(g);
      return std::string();
    } catch (const Error& e) {
      if (std::string(e.what()).find("no GPU kernel") != std::string::npos) return std::string(e.what());
      throw;
    }
  }();
  return reason;
}

#define SKIP_WITHOUT_ATTENTION_KERNELS() \
  if (!attention_unavailable().empty()) GTEST_SKIP() << attention_unavailable()

nlohmann::json golden_json() {
  std::ifstream in(kFixtures + "smollm2-tiny/reference.json");
  return nlohmann::json::parse(in);
}

double worst_over_largest(const std::vector<float>& got, const std::vector<float>& want) {
  double largest = 0, worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    largest = std::max(largest, std::fabs(static_cast<double>(want[i])));
    worst = std::max(worst, std::fabs(static_cast<double>(got.at(i)) - want[i]));
  }
  return worst / largest;
}

double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (static_cast<double>(got.at(i)) - want[i]) * (static_cast<double>(got.at(i)) - want[i]);
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(diff / norm);
}

void expect_prompt_logits_match(const std::string& fixture) {
  const auto checkpoint = SmolLM2Checkpoint::open(kFixtures + fixture);
  const auto golden = SafeTensorsFile::open(kFixtures + fixture + "/reference.safetensors");
  Generator generator(checkpoint, 64);
  const std::vector<float> want = golden.to_f32("logits");
  const std::vector<float> got = generator.prompt_logits(golden.to_i32("input_ids"));
  ASSERT_EQ(got.size(), want.size());
  EXPECT_LE(worst_over_largest(got, want), 1e-4);
}

TEST(SmolLM2Gpu, PromptLogitsMatchTransformersF32) {
  SKIP_WITHOUT_ATTENTION_KERNELS();
  expect_prompt_logits_match("smollm2-tiny");
}

TEST(SmolLM2Gpu, PromptLogitsMatchTransformersBf16) {
  SKIP_WITHOUT_ATTENTION_KERNELS();
  expect_prompt_logits_match("smollm2-tiny-bf16");
}

TEST(SmolLM2Gpu, GreedyTokensThroughTheKvCacheMatchTransformers) {
  SKIP_WITHOUT_ATTENTION_KERNELS();
  const auto checkpoint = SmolLM2Checkpoint::open(kFixtures + "smollm2-tiny");
  const auto json = golden_json();
  const auto prompt = json.at("prompt_ids").get<std::vector<int32_t>>();
  const auto expected = json.at("greedy_new_ids").get<std::vector<int32_t>>();
  Generator generator(checkpoint, 64);
  SamplingOptions options;
  options.max_new_tokens = static_cast<int64_t>(expected.size());
  options.ignore_eos = true;
  std::vector<int32_t> streamed;
  options.on_token = [&](int32_t id) {
    streamed.push_back(id);
    return true;
  };
  EXPECT_EQ(generator.generate(prompt, options), expected);
  EXPECT_EQ(streamed, expected);
  EXPECT_EQ(generator.last_stats().new_tokens, static_cast<int64_t>(expected.size()));

  // A shorter prompt of the same bucket reuses the prefill session and continues the same text.
  const std::vector<int32_t> shorter(prompt.begin(), prompt.end() - 1);
  options.max_new_tokens = 3;
  options.on_token = {};
  const auto continued = generator.generate(shorter, options);
  EXPECT_EQ(generator.prefill_sessions_built(), 1u);
  EXPECT_EQ(continued.size(), 3u);
  // Stopping: the callback's false ends generation after that token.
  options.on_token = [](int32_t) { return false; };
  EXPECT_EQ(generator.generate(prompt, options), std::vector<int32_t>{expected[0]});
}

TEST(SmolLM2Gpu, Bf16WeightStorageKeepsTheGreedyTokensAndHalvesTheWeights) {
  SKIP_WITHOUT_ATTENTION_KERNELS();
  const auto checkpoint = SmolLM2Checkpoint::open(kFixtures + "smollm2-tiny");
  const auto json = golden_json();
  const auto prompt = json.at("prompt_ids").get<std::vector<int32_t>>();
  const auto expected = json.at("greedy_new_ids").get<std::vector<int32_t>>();
  SamplingOptions options;
  options.max_new_tokens = static_cast<int64_t>(expected.size());
  options.ignore_eos = true;
  Generator reference(checkpoint, 64);
  Generator bf16(checkpoint, 64, meganeura::DType::bf16);
  // The fixture's weights survive rounding to bf16 with the same greedy continuation.
  EXPECT_EQ(bf16.generate(prompt, options), expected);
  EXPECT_EQ(reference.generate(prompt, options), expected);
  // Same sessions, 16-bit matmul and embedding weights: the bf16 generator holds fewer bytes.
  EXPECT_LT(bf16.device_memory(), reference.device_memory());
  EXPECT_THROW(Generator(checkpoint, 64, meganeura::DType::i32), meganeura::Error);
}

TEST(SmolLM2Gpu, DeviceMemoryCountsSharedWeightsOnceAndGrowsPerPrefillBucket) {
  SKIP_WITHOUT_ATTENTION_KERNELS();
  const auto checkpoint = SmolLM2Checkpoint::open(kFixtures + "smollm2-tiny");
  const LlamaConfig& config = checkpoint.config();
  constexpr int64_t kPositions = 64;
  Generator generator(checkpoint, kPositions);
  uint64_t parameter_bytes = 0;
  for (const auto& [name, values] : checkpoint.weights()) parameter_bytes += values.size() * sizeof(float);
  const uint64_t decode_only = generator.device_memory();
  // Weights plus at least the decode session's own KV caches (inputs) and their written copies.
  const uint64_t cache_bytes = static_cast<uint64_t>(2 * config.num_hidden_layers * config.num_key_value_heads *
                                                     kPositions * config.head_dim) * sizeof(float);
  EXPECT_GE(decode_only, parameter_bytes + cache_bytes);

  // What a bucket's session holds of its own: its whole plan less the weights it borrows, the
  // derived ones included (its last layer's stacked gate and up weights are the decode session's).
  auto own_bytes = [&](int64_t bucket) {
    const Session standalone = build_inference_session(decoding_graph(config, bucket, kPositions));
    const MemorySummary summary = standalone.memory_summary();
    EXPECT_EQ(summary.parameters, parameter_bytes);
    EXPECT_GT(summary.derived, 0u);
    return summary.total() - summary.parameters - summary.derived;
  };
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(config.vocab_size - 1));
  auto prompt_of = [&](size_t length) {
    std::vector<int32_t> ids(length);
    for (auto& id : ids) id = token(rng);
    return ids;
  };
  SamplingOptions options;
  options.max_new_tokens = 1;
  options.ignore_eos = true;
  (void)generator.generate(prompt_of(5), options);  // bucket 16
  ASSERT_EQ(generator.prefill_sessions_built(), 1u);
  const uint64_t one_bucket = generator.device_memory();
  EXPECT_EQ(one_bucket - decode_only, own_bytes(16));
  (void)generator.generate(prompt_of(20), options);  // bucket 32
  ASSERT_EQ(generator.prefill_sessions_built(), 2u);
  EXPECT_EQ(generator.device_memory() - one_bucket, own_bytes(32));
  // A prompt of a bucket already built adds nothing.
  (void)generator.generate(prompt_of(9), options);
  EXPECT_EQ(generator.device_memory(), one_bucket + own_bytes(32));
}

TEST(SmolLM2Gpu, PrefillNormalizesOnlyTheChosenRow) {
  SKIP_WITHOUT_ATTENTION_KERNELS();
  // The last layer's output is gathered at row `last` before the final norm, so the head's product
  // normalizes that one row itself: no kernel normalizes every row of the prompt.
  const LlamaConfig config = LlamaConfig::load(kFixtures + "smollm2-tiny");
  const std::string plan = build_inference_session(decoding_graph(config, 16, 32)).plan_summary();
  EXPECT_NE(plan.find(" rms_norm+matmul ["), std::string::npos) << plan;
  EXPECT_EQ(plan.find("add+rms_norm"), std::string::npos) << plan;
}

TEST(SmolLM2Gpu, PrefillCarriesOnlyTheChosenRowThroughTheLastLayer) {
  // With one row of logits wanted, the last layer's attention has one query and its products after
  // it one row each; every other layer, and the all-logits graph, keep the prompt's rows.
  const LlamaConfig config = LlamaConfig::load(kFixtures + "smollm2-tiny");
  for (bool all_logits : {false, true}) {
    const Graph g = decoding_graph(config, 16, 32, all_logits);
    int64_t one_query = 0, prompt_queries = 0, one_row_products = 0;
    for (const Node& node : g.nodes()) {
      if (node.op == Op::attention) ++(g.node(node.inputs[0]).shape[2] == 1 ? one_query : prompt_queries);
      if (node.op == Op::matmul && node.shape.size() == 3 && node.shape[1] == 1) ++one_row_products;
    }
    EXPECT_EQ(one_query, all_logits ? 0 : 1);
    EXPECT_EQ(prompt_queries, config.num_hidden_layers - one_query);
    // q, o, gate, up and down of the last layer.
    EXPECT_EQ(one_row_products, all_logits ? 0 : 5);
  }
}

TEST(SmolLM2Gpu, SeededSamplingRepeatsAndStaysInTheTopK) {
  SKIP_WITHOUT_ATTENTION_KERNELS();
  const auto checkpoint = SmolLM2Checkpoint::open(kFixtures + "smollm2-tiny");
  const auto prompt = golden_json().at("prompt_ids").get<std::vector<int32_t>>();
  Generator generator(checkpoint, 64);
  SamplingOptions options;
  options.max_new_tokens = 8;
  options.temperature = 1.5;
  options.seed = 11;
  options.ignore_eos = true;
  const auto first = generator.generate(prompt, options);
  EXPECT_EQ(generator.generate(prompt, options), first);
  options.seed = 12;
  const auto other = generator.generate(prompt, options);
  EXPECT_EQ(other.size(), 8u);
  // top_k = 1 is greedy whatever the temperature.
  options.top_k = 1;
  options.max_new_tokens = 4;
  const auto expected = golden_json().at("greedy_new_ids").get<std::vector<int32_t>>();
  EXPECT_EQ(generator.generate(prompt, options), std::vector<int32_t>(expected.begin(), expected.begin() + 4));
}

// Every chosen token must lie in the top-k / top-p set of the logits before it, recomputed on the
// host from the prompt's logits (with a little slack at the nucleus edge for GPU rounding).
TEST(SmolLM2Gpu, TopKAndTopPSampleOnTheGpuWithinTheAllowedSet) {
  SKIP_WITHOUT_ATTENTION_KERNELS();
  const auto checkpoint = SmolLM2Checkpoint::open(kFixtures + "smollm2-tiny");
  const auto prompt = golden_json().at("prompt_ids").get<std::vector<int32_t>>();
  const size_t vocab = static_cast<size_t>(checkpoint.config().vocab_size);
  Generator generator(checkpoint, 64);
  struct Case {
    int64_t top_k;
    double top_p;
  };
  for (const Case c : {Case{4, 1.0}, Case{0, 0.6}, Case{6, 0.8}}) {
    SamplingOptions options;
    options.max_new_tokens = 6;
    options.temperature = 1.3;
    options.top_k = c.top_k;
    options.top_p = c.top_p;
    options.ignore_eos = true;
    std::vector<std::vector<int32_t>> runs;
    for (uint64_t seed : {5u, 5u, 6u, 7u}) {
      options.seed = seed;
      runs.push_back(generator.generate(prompt, options));
      ASSERT_EQ(runs.back().size(), 6u);
    }
    EXPECT_EQ(runs[0], runs[1]) << "the same seed gives the same tokens";
    for (const auto& tokens : runs) {
      std::vector<int32_t> context = prompt;
      for (int32_t token : tokens) {
        const std::vector<float> all = generator.prompt_logits(context);
        const std::vector<float> row(all.end() - static_cast<std::ptrdiff_t>(vocab), all.end());
        std::vector<double> scaled;
        for (float v : row) scaled.push_back(v / options.temperature);
        for (int32_t eos : checkpoint.config().eos_token_ids) scaled.at(static_cast<size_t>(eos)) = -1e30;
        const double chosen = scaled.at(static_cast<size_t>(token));
        const double top = *std::max_element(scaled.begin(), scaled.end());
        size_t larger = 0;
        double above = 0, total = 0;
        std::vector<double> sorted = scaled;
        std::sort(sorted.begin(), sorted.end(), std::greater<>());
        const double kth = c.top_k > 0 ? sorted[static_cast<size_t>(c.top_k - 1)] : sorted.back();
        for (double v : scaled) {
          if (v < kth) continue;
          total += std::exp(v - top);
          if (v > chosen) {
            ++larger;
            above += std::exp(v - top);
          }
        }
        if (c.top_k > 0) {
          EXPECT_LT(larger, static_cast<size_t>(c.top_k)) << "token " << token;
        }
        EXPECT_LT(above, c.top_p * total + 1e-3 * total) << "token " << token;
        context.push_back(token);
      }
    }
  }
  // top_k = 1 is greedy however it is reached, also through top_p.
  const auto expected = golden_json().at("greedy_new_ids").get<std::vector<int32_t>>();
  SamplingOptions narrow;
  narrow.max_new_tokens = 4;
  narrow.temperature = 0.9;
  narrow.top_p = 1e-6;
  narrow.seed = 3;
  narrow.ignore_eos = true;
  EXPECT_EQ(generator.generate(prompt, narrow), std::vector<int32_t>(expected.begin(), expected.begin() + 4));
}

TEST(SmolLM2Gpu, BatchLossAndEveryGradientMatchPyTorch) {
  SKIP_WITHOUT_ATTENTION_KERNELS();
  const auto checkpoint = SmolLM2Checkpoint::open(kFixtures + "smollm2-tiny");
  const auto golden = SafeTensorsFile::open(kFixtures + "smollm2-tiny/reference.safetensors");
  const auto golden_grads = SafeTensorsFile::open(kFixtures + "smollm2-tiny/reference_grads.safetensors");
  const std::vector<int32_t> ids = golden.to_i32("batch_input_ids");
  Session session = build_session(training_graph(checkpoint.config(), 2, 9), {.optimizer = OptimizerSpec::sgd(0.0)});
  checkpoint.upload(session);
  session.set_input("input_ids", std::span<const int32_t>(ids));
  const std::vector<int32_t> labels = next_token_labels(ids, 2, 9);
  session.set_input("labels", std::span<const int32_t>(labels));
  session.compute_gradients();
  EXPECT_NEAR(session.read_loss(), golden_json().at("batch_loss").get<double>(), 1e-5);
  for (const auto& tensor : golden_grads.tensors())
    EXPECT_LE(relative_error(session.read_gradient(tensor.name), golden_grads.to_f32(tensor.name)), 1e-4) << tensor.name;
}

TEST(SmolLM2Gpu, LossGradCommandWritesHuggingFaceNamedGradients) {
  SKIP_WITHOUT_ATTENTION_KERNELS();
  const char* bin = std::getenv("MEGANEURA_BIN_DIR");
  const std::string cli = (bin ? std::string(bin) : std::string(MEGANEURA_BINARY_DIR) + "/bin") + "/meganeura";
  ASSERT_TRUE(std::filesystem::exists(cli)) << cli;
  const auto folder = std::filesystem::temp_directory_path() / ("loss_grad_" + std::to_string(::getpid()));
  std::filesystem::create_directories(folder);
  const std::string output = (folder / "stdout.txt").string(), grads = (folder / "grads.safetensors").string();
  const std::string command = cli + " loss-grad --model " + kFixtures + "smollm2-tiny --batch " + kFixtures +
                              "smollm2-tiny/reference.safetensors --save " + grads + " > " + output;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream in(output);
  std::string line, last;
  while (std::getline(in, line)) last = line;
  ASSERT_EQ(last.rfind("loss: ", 0), 0u) << last;
  EXPECT_NEAR(std::stod(last.substr(6)), golden_json().at("batch_loss").get<double>(), 1e-5);
  const auto got = SafeTensorsFile::open(grads);
  const auto want = SafeTensorsFile::open(kFixtures + "smollm2-tiny/reference_grads.safetensors");
  EXPECT_EQ(got.tensors().size(), want.tensors().size());
  for (const auto& tensor : want.tensors())
    EXPECT_LE(relative_error(got.to_f32(tensor.name), want.to_f32(tensor.name)), 1e-4) << tensor.name;
  std::filesystem::remove_all(folder);
}

TEST(SmolLM2Gpu, GenerateCommandPrintsTheGreedyIdsLastAndSavesPromptLogits) {
  SKIP_WITHOUT_ATTENTION_KERNELS();
  const char* bin = std::getenv("MEGANEURA_BIN_DIR");
  const std::string cli = (bin ? std::string(bin) : std::string(MEGANEURA_BINARY_DIR) + "/bin") + "/meganeura";
  const auto folder = std::filesystem::temp_directory_path() / ("generate_" + std::to_string(::getpid()));
  std::filesystem::create_directories(folder);
  const auto json = golden_json();
  std::string ids;
  for (int32_t id : json.at("prompt_ids").get<std::vector<int32_t>>()) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  const std::string output = (folder / "stdout.txt").string(), logits = (folder / "logits.safetensors").string();
  const std::string command = cli + " generate --model " + kFixtures + "smollm2-tiny --ids " + ids +
                              " --max-tokens 16 --ignore-eos --save-logits " + logits + " > " + output + " 2>/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream in(output);
  std::string line, last;
  while (std::getline(in, line)) last = line;
  EXPECT_EQ(nlohmann::json::parse(last).get<std::vector<int32_t>>(), json.at("greedy_new_ids").get<std::vector<int32_t>>());
  const auto golden = SafeTensorsFile::open(kFixtures + "smollm2-tiny/reference.safetensors");
  const auto saved = SafeTensorsFile::open(logits);
  EXPECT_EQ(saved.tensor("logits").shape, (std::vector<int64_t>{12, 512}));
  EXPECT_LE(worst_over_largest(saved.to_f32("logits"), golden.to_f32("logits")), 1e-4);
  std::filesystem::remove_all(folder);
}

}  // namespace
}  // namespace meganeura::models
