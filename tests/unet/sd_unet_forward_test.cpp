// The tiny UNets of tests/unet/data (written by bench/make_unet_fixture.py) against the golden outputs
// of the independent PyTorch UNet, on the GPU (lavapipe in CI) and in the CPU reference interpreter:
// tiny_unet has SD 1.5's options with cross-attention and plain blocks; tiny_unet_variant turns on
// the others (linear projections, two transformer layers, freq_shift, sin first, a non-square latent). Then a training sanity check: a few SGD
// steps on an MSE loss lower it.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "meganeura/models/sd_unet.h"
#include "meganeura/reference.h"
#include "meganeura/safetensors.h"
#include "meganeura/session.h"

namespace meganeura::models {
namespace {

const std::string kData = std::string(MEGANEURA_SOURCE_DIR) + "/tests/unet/data/";

struct Golden {
  explicit Golden(const std::string& stem = "tiny_unet")
      : config(UNetConfig::load(kData + stem + "_config.json")),
        weights(SafeTensorsFile::open(kData + stem + ".safetensors")),
        reference(SafeTensorsFile::open(kData + stem + "_reference.safetensors")) {}

  UNetConfig config;
  SafeTensorsFile weights;
  SafeTensorsFile reference;

  const Shape& shape(const std::string& name) const { return reference.tensor(name).shape; }
  Graph graph() const {
    return unet_denoising_graph(config, shape("sample")[0], shape("sample")[2], shape("sample")[3],
                                shape("encoder_hidden_states")[1]);
  }
};

double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += std::pow(static_cast<double>(got.at(i)) - want[i], 2);
    norm += std::pow(static_cast<double>(want[i]), 2);
  }
  return std::sqrt(diff / norm);
}

class SdUnetGolden : public testing::TestWithParam<std::string> {};

TEST_P(SdUnetGolden, MatchesPyTorchOnTheGpu) {
  const Golden golden(GetParam());
  const Graph graph = golden.graph();
  Session session = build_inference_session(graph);
  session.load_parameters(kData + GetParam() + ".safetensors");
  for (const char* name : {"sample", "timesteps", "encoder_hidden_states"})
    session.set_input(name, golden.reference.to_f32(name));
  session.run();
  const std::vector<float> want = golden.reference.to_f32("output");
  const std::vector<float> got = session.read_output(0);
  ASSERT_EQ(got.size(), want.size());
  const double error = relative_error(got, want);
  RecordProperty("relative_error", std::to_string(error));
  EXPECT_LE(error, 1e-4);
}

TEST_P(SdUnetGolden, MatchesPyTorchInTheReferenceInterpreter) {
  const Golden golden(GetParam());
  const Graph graph = golden.graph();
  reference::Feeds feeds;
  auto feed = [&](const std::string& name, const std::vector<float>& values) {
    feeds[name] = std::vector<double>(values.begin(), values.end());
  };
  for (const char* name : {"sample", "timesteps", "encoder_hidden_states"}) feed(name, golden.reference.to_f32(name));
  for (const auto& tensor : golden.weights.tensors()) feed(tensor.name, golden.weights.to_f32(tensor.name));
  ASSERT_EQ(graph.parameters().size(), golden.weights.tensors().size());
  reference::Options options;
  options.training = false;
  options.targets = {graph.outputs().at(0)};
  const auto values = reference::run(graph, feeds, options);
  const std::vector<double>& out = values.at(static_cast<size_t>(graph.outputs().at(0)));
  const double error = relative_error(std::vector<float>(out.begin(), out.end()), golden.reference.to_f32("output"));
  RecordProperty("relative_error", std::to_string(error));
  EXPECT_LE(error, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SdUnetGolden, testing::Values("tiny_unet", "tiny_unet_variant"));

TEST(SdUnetForward, TimestepEmbeddingFollowsDiffusersFormula) {
  Graph graph;
  const Tensor t = graph.input("t", {2});
  const Tensor flipped = timestep_embedding(graph, t, 8, true, 1);
  const Tensor plain = timestep_embedding(graph, t, 8, false, 0);
  graph.set_outputs({flipped, plain});
  const auto values = reference::run(graph, {{"t", {3.0, 250.5}}});
  for (int b = 0; b < 2; ++b) {
    const double time = b == 0 ? 3.0 : 250.5;
    for (int i = 0; i < 4; ++i) {
      const double shifted = time * std::exp(-std::log(10000.0) * i / 3.0);
      const double unshifted = time * std::exp(-std::log(10000.0) * i / 4.0);
      EXPECT_NEAR(values[flipped.id][b * 8 + i], std::cos(shifted), 1e-6);
      EXPECT_NEAR(values[flipped.id][b * 8 + 4 + i], std::sin(shifted), 1e-6);
      EXPECT_NEAR(values[plain.id][b * 8 + i], std::sin(unshifted), 1e-6);
      EXPECT_NEAR(values[plain.id][b * 8 + 4 + i], std::cos(unshifted), 1e-6);
    }
  }
}

TEST(SdUnetForward, SgdStepsLowerAnMseLoss) {
  // The tiny fixture's blocks at a quarter of the width: lavapipe pays per workgroup of the
  // backward's reductions, and the narrower UNet exercises the same kernels.
  UNetConfig config = Golden().config;
  config.block_out_channels = {8, 16};
  config.norm_num_groups = 4;
  config.attention_head_dim = {1, 2};
  Graph graph;
  const UNet2DConditionModel unet(graph, config);
  const Tensor sample = graph.input("sample", {1, 4, 8, 8});
  const Tensor timesteps = graph.input("timesteps", {1});
  const Tensor context = graph.input("encoder_hidden_states", {1, 3, 16});
  const Tensor target = graph.input("target", {1, 4, 8, 8});
  graph.set_outputs({graph.mse_loss(unet.forward(graph, sample, timesteps, context), target)});

  Session session = build_session(graph, {.seed = 5});
  session.set_optimizer(OptimizerSpec::sgd(0.03));
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return v;
  };
  session.set_input("sample", random(256));
  session.set_input("timesteps", std::vector<float>{420.0f});
  session.set_input("encoder_hidden_states", random(48));
  session.set_input("target", random(256));
  std::vector<float> losses;
  for (int step = 0; step < 4; ++step) {  // each read gives the loss before that step's update
    session.step();
    losses.push_back(session.read_loss());
  }
  for (float loss : losses) EXPECT_TRUE(std::isfinite(loss));
  EXPECT_LT(losses.back(), 0.9f * losses.front()) << losses.front() << " → " << losses.back();
  EXPECT_GT(session.read_gradient("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight").size(), 0u);
}

}  // namespace
}  // namespace meganeura::models
