// The SD 1.5 UNet built from UNetConfig::sd15() creates exactly the parameters of diffusers' state
// dict (tests/unet/data/sd15_unet_manifest.txt, written by bench/sd_unet_manifest.py from diffusers'
// constructors), names and shapes. Only the graph is built: no session, no device memory.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "meganeura/models/sd_unet.h"

namespace meganeura::models {
namespace {

const std::string kData = std::string(MEGANEURA_SOURCE_DIR) + "/tests/unet/data/";

std::map<std::string, Shape> read_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open " + path);
  std::map<std::string, Shape> entries;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name;
    fields >> name;
    Shape shape;
    int64_t dim = 0;
    while (fields >> dim) shape.push_back(dim);
    entries[name] = shape;
  }
  return entries;
}

std::map<std::string, Shape> graph_parameters(const Graph& graph) {
  std::map<std::string, Shape> entries;
  for (int32_t id : graph.parameters()) entries[graph.node(id).name] = graph.node(id).shape;
  return entries;
}

TEST(SdUnetManifest, Sd15ParametersMatchDiffusersNamesAndShapes) {
  const auto expected = read_manifest(kData + "sd15_unet_manifest.txt");
  ASSERT_EQ(expected.size(), 686u);
  Graph graph;
  const UNet2DConditionModel unet(graph, UNetConfig::sd15());
  const auto got = graph_parameters(graph);

  std::string missing, unexpected, misshaped;
  for (const auto& [name, shape] : expected) {
    const auto it = got.find(name);
    if (it == got.end()) {
      missing += " " + name;
    } else if (it->second != shape) {
      misshaped += " " + name + format_shape(it->second) + "!=" + format_shape(shape);
    }
  }
  for (const auto& [name, shape] : got)
    if (!expected.count(name)) unexpected += " " + name;
  EXPECT_EQ(missing, "");
  EXPECT_EQ(unexpected, "");
  EXPECT_EQ(misshaped, "");
  EXPECT_EQ(got.size(), expected.size());

  int64_t total = 0;
  for (const auto& [name, shape] : got) total += num_elements(shape);
  EXPECT_EQ(total, 859520964);
}

TEST(SdUnetManifest, PrefixIsPrependedToEveryName) {
  Graph graph;
  const UNet2DConditionModel unet(graph, UNetConfig::sd15(), "unet");
  const auto got = graph_parameters(graph);
  EXPECT_EQ(got.size(), 686u);
  EXPECT_TRUE(got.count("unet.conv_in.weight"));
  EXPECT_TRUE(got.count("unet.down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight"));
  for (const auto& [name, shape] : got) EXPECT_EQ(name.rfind("unet.", 0), 0u) << name;
}

TEST(SdUnetManifest, Sd15ForwardShapesAtFullSize) {
  const Graph graph = unet_denoising_graph(UNetConfig::sd15(), 2, 64, 64, 77);
  const Node& out = graph.node(graph.outputs().at(0));
  EXPECT_EQ(out.shape, (Shape{2, 4, 64, 64}));
  EXPECT_EQ(out.dtype, DType::f32);
}

TEST(SdUnetManifest, ForwardRejectsSizesTheDownPathCannotHalve) {
  Graph graph;
  const UNet2DConditionModel unet(graph, UNetConfig::sd15());
  const Tensor sample = graph.input("sample", {1, 4, 36, 36});
  const Tensor timesteps = graph.input("timesteps", {1});
  const Tensor context = graph.input("context", {1, 77, 768});
  EXPECT_THROW(unet.forward(graph, sample, timesteps, context), Error);
  const Tensor good = graph.input("good", {1, 4, 32, 32});
  const Tensor wrong_context = graph.input("wrong_context", {1, 77, 512});
  EXPECT_THROW(unet.forward(graph, good, timesteps, wrong_context), Error);
}

}  // namespace
}  // namespace meganeura::models
