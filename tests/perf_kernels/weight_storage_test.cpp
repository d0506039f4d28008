// Weights stored as f16 or bf16 (SessionOptions::weight_storage) on the CI device: which parameters
// are packed, that the tiled matmul, the GEMV and the embedding read them, that the results equal the
// CPU reference run on the rounded weights, and that set/read_parameter convert at the boundary.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "kernels/kernel_test_util.h"
#include "meganeura/safetensors.h"

namespace meganeura {
namespace {

float round_to(float value, DType dtype) {
  return dtype == DType::f16 ? f16_to_f32(f32_to_f16(value)) : bf16_to_f32(f32_to_bf16(value));
}

// ids → embedding [vocab, width] → · w1ᵀ + b1 → relu → · w2ᵀ, plus one-row products through the
// GEMV whose weight rows are 45 (odd: single values), 34 (even: pairs) and 32 (16-byte loads) long;
// every weight matrix is read only by matmuls or the embedding.
Graph small_model(int64_t rows) {
  Graph g;
  Tensor ids = g.input("ids", {rows}, DType::i32);
  Tensor table = g.parameter("table", {50, 32}, Init::normal(0.0, 1.0));
  Tensor w1 = g.parameter("w1", {45, 32}, Init::normal(0.0, 0.3));
  Tensor b1 = g.parameter("b1", {45}, Init::normal(0.0, 0.3));
  Tensor w2 = g.parameter("w2", {20, 45}, Init::normal(0.0, 0.3));
  Tensor w3 = g.parameter("w3", {10, 34}, Init::normal(0.0, 0.3));
  Tensor row45 = g.input("row45", {1, 45});
  Tensor row34 = g.input("row34", {1, 34});
  Tensor row32 = g.input("row32", {1, 32});
  Tensor h = g.relu(g.matmul(g.embedding(table, ids), w1, false, true) + b1);
  g.set_outputs({g.matmul(h, w2, false, true), g.matmul(row45, w2, false, true), g.matmul(row34, w3, false, true),
                 g.matmul(row32, w1, false, true)});
  return g;
}

struct ModelRun {
  std::vector<std::vector<float>> outputs;
  std::map<std::string, std::vector<float>> parameters;  // as read back
  compile::Plan plan;
  MemorySummary memory;
};

ModelRun run_model(const Graph& graph, DType storage, const reference::Feeds& feeds,
              const std::map<std::string, std::vector<float>>& weights) {
  SessionOptions options;
  options.optimize = false;
  options.weight_storage = storage;
  Session session = build_inference_session(graph, options);
  for (const auto& [name, values] : weights) session.set_parameter(name, std::span<const float>(values));
  kernel_tests::apply(session, graph, feeds);
  kernel_tests::poison(session);
  session.run();
  ModelRun run;
  for (size_t k = 0; k < graph.outputs().size(); ++k) run.outputs.push_back(session.read_output(k));
  for (const auto& [name, values] : weights) run.parameters[name] = session.read_parameter(name);
  run.plan = session.impl().plan;
  run.memory = session.memory_summary();
  return run;
}

std::map<std::string, std::vector<float>> random_weights(const Graph& graph, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 0.4f);
  std::map<std::string, std::vector<float>> weights;
  for (int32_t id : graph.parameters()) {
    std::vector<float>& values = weights[graph.node(id).name];
    values.resize(static_cast<size_t>(num_elements(graph.node(id).shape)));
    for (float& v : values) v = normal(rng);
  }
  return weights;
}

class WeightStorage : public testing::TestWithParam<DType> {};

TEST_P(WeightStorage, MatchesTheReferenceOnTheRoundedWeights) {
  const DType storage = GetParam();
  const Graph graph = small_model(7);
  reference::Feeds feeds = kernel_tests::random_inputs(graph, 3, {{"ids", 0}});
  feeds["ids"] = {3, 0, 49, 17, 17, 8, 30};
  const auto weights = random_weights(graph, 5);

  // The reference sees the weights as the 16-bit storage holds them; the biases stay f32.
  reference::Feeds rounded = feeds;
  for (const auto& [name, values] : weights) {
    std::vector<double>& fed = rounded[name];
    for (float v : values) fed.push_back(name == "b1" ? v : round_to(v, storage));
  }
  reference::Options reference_options;
  reference_options.training = false;
  const auto expected = reference::run(graph, rounded, reference_options);

  const ModelRun run = run_model(graph, storage, feeds, weights);
  for (size_t k = 0; k < graph.outputs().size(); ++k) {
    EXPECT_LT(testing_support::relative_error(run.outputs[k], expected[graph.outputs()[k]]), 1e-5) << "output " << k;
  }
  // Matrices are packed, the bias is not; reading back gives the rounded values as f32.
  const auto packed = storage == DType::f16 ? compile::ElementStorage::packed_f16 : compile::ElementStorage::packed_bf16;
  for (const std::string name : {"table", "w1", "w2", "w3"}) {
    EXPECT_EQ(run.plan.storage[run.plan.graph.find(name)].element, packed) << name;
    const std::vector<float>& original = weights.at(name);
    const std::vector<float>& back = run.parameters.at(name);
    ASSERT_EQ(back.size(), original.size());
    for (size_t i = 0; i < back.size(); ++i) ASSERT_EQ(back[i], round_to(original[i], storage)) << name << "[" << i << "]";
  }
  EXPECT_EQ(run.plan.storage[run.plan.graph.find("b1")].element, compile::ElementStorage::bits32);
  EXPECT_EQ(run.parameters.at("b1"), weights.at("b1"));

  // Half the parameter bytes of the f32 session (the bias aside), and the same results within the
  // weights' rounding.
  const ModelRun reference_run = run_model(graph, DType::f32, feeds, weights);
  const uint64_t matrix_elements = 50 * 32 + 45 * 32 + 20 * 45 + 10 * 34;  // all even: no half word left over
  EXPECT_EQ(run.memory.parameters, matrix_elements * 2 + 45 * 4);
  EXPECT_EQ(reference_run.memory.parameters, (matrix_elements + 45) * 4);
  const double tolerance = storage == DType::f16 ? 5e-3 : 2e-2;
  for (size_t k = 0; k < graph.outputs().size(); ++k) {
    EXPECT_LT(testing_support::relative_error(run.outputs[k], std::vector<double>(reference_run.outputs[k].begin(),
                                                                                   reference_run.outputs[k].end())),
              tolerance);
  }
}

INSTANTIATE_TEST_SUITE_P(Types, WeightStorage, testing::Values(DType::f16, DType::bf16),
                         [](const testing::TestParamInfo<DType>& info) { return std::string(dtype_name(info.param)); });

TEST(WeightStorageRules, ParametersReadElsewhereStayF32AndTrainingRefuses) {
  Graph g;
  Tensor x = g.input("x", {8, 8});
  Tensor w = g.parameter("w", {8, 8}, Init::normal(0.0, 0.5));
  // w is also added to the product: a pointwise read, so it keeps 32-bit elements.
  g.set_outputs({g.matmul(x, w) + w, g.sum_all(g.matmul(x, w))});
  compile::CompileOptions compile_options;
  compile_options.weight_storage = DType::bf16;
  const compile::Plan plan = compile::compile(g, gpu::Context::shared()->caps(), compile_options);
  EXPECT_EQ(plan.storage[g.find("w")].element, compile::ElementStorage::bits32);

  Graph t;
  Tensor tx = t.input("x", {4, 8});
  Tensor tw = t.parameter("w", {8, 8}, Init::normal(0.0, 0.5));
  t.set_outputs({t.sum_all(t.matmul(tx, tw))});
  SessionOptions options;
  options.weight_storage = DType::f16;
  try {
    (void)build_session(t, options);
    FAIL() << "a training session with 16-bit weights was built";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("inference"), std::string::npos) << e.what();
  }
}

TEST(WeightStorageRules, SixteenBitUploadsAreExactAndSharingNeedsTheSameStorage) {
  const Graph graph = small_model(2);
  SessionOptions options;
  options.optimize = false;
  options.weight_storage = DType::bf16;
  Session owner = build_inference_session(graph, options);
  std::vector<uint16_t> bits(45 * 32);
  std::mt19937 rng(9);
  for (uint16_t& b : bits) b = static_cast<uint16_t>(0x3c00u + rng() % 0x0400u);  // bf16 values near 0.008
  owner.set_parameter("w1", bits, DType::bf16);
  const std::vector<float> back = owner.read_parameter("w1");
  for (size_t i = 0; i < bits.size(); ++i) ASSERT_EQ(back[i], bf16_to_f32(bits[i]));

  options.share_parameters_with = &owner;
  Session borrower = build_inference_session(graph, options);
  EXPECT_GT(borrower.memory_summary().shared_parameters, 0u);
  EXPECT_EQ(borrower.read_parameter("w1"), back);
  // An f32 session cannot read packed weights in place: it keeps its own.
  options.weight_storage = DType::f32;
  Session other = build_inference_session(graph, options);
  EXPECT_EQ(other.memory_summary().shared_parameters, 45u * 4);  // only the f32 bias is shared
}

}  // namespace
}  // namespace meganeura
