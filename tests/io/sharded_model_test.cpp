#include <gtest/gtest.h>

#include <fstream>

#include "io_test_util.h"
#include "meganeura/error.h"
#include "meganeura/graph.h"
#include "meganeura/safetensors.h"

using namespace meganeura;
using meganeura::testing_io::ScratchDir;

namespace {

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string message_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(ShardedSafeTensors, ReadsTensorsAcrossShards) {
  ScratchDir dir;
  const auto a = testing_io::random_floats(6, 1), b = testing_io::random_floats(4, 2), c = testing_io::random_floats(3, 3);
  save_safetensors(dir.file("model-00001-of-00002.safetensors"), {tensor_view("a", {2, 3}, a), tensor_view("b", {4}, b)});
  save_safetensors(dir.file("model-00002-of-00002.safetensors"), {tensor_view("c", {3}, c)});
  write_text(dir.file("model.safetensors.index.json"),
             R"({"metadata": {"total_size": 52}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                 "b": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}})");
  const auto sharded = ShardedSafeTensors::open(dir.file("model.safetensors.index.json"));
  EXPECT_EQ(sharded.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(sharded.shards().size(), 2u);
  EXPECT_EQ(sharded.metadata().at("total_size"), "52");
  EXPECT_EQ(sharded.to_f32("a"), a);
  EXPECT_EQ(sharded.to_f32("c"), c);
  EXPECT_EQ(sharded.tensor("a").shape, (std::vector<int64_t>{2, 3}));

  const auto model = SafeTensorsModel::open(dir.path().string());
  EXPECT_EQ(model.tensors().names().size(), 3u);
  EXPECT_EQ(model.directory(), dir.path().string());
}

TEST(ShardedSafeTensors, RejectsInconsistentOrHostileIndexes) {
  ScratchDir dir;
  const auto a = testing_io::random_floats(2, 4), b = testing_io::random_floats(2, 5);
  save_safetensors(dir.file("s1.safetensors"), {tensor_view("a", {2}, a), tensor_view("b", {2}, b)});
  const std::string index = dir.file("model.safetensors.index.json");

  write_text(index, R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors", "z": "s1.safetensors"}})");
  EXPECT_NE(message_of([&] { ShardedSafeTensors::open(index); }).find("places 'z' in s1.safetensors, which has no such tensor"),
            std::string::npos);
  write_text(index, R"({"weight_map": {"a": "s1.safetensors"}})");
  EXPECT_NE(message_of([&] { ShardedSafeTensors::open(index); }).find("holds 'b', which the index does not assign"),
            std::string::npos);
  write_text(index, R"({"weight_map": {"a": "../../etc/x.safetensors"}})");
  EXPECT_NE(message_of([&] { ShardedSafeTensors::open(index); }).find("is not a file inside the checkpoint folder"),
            std::string::npos);
  write_text(index, R"({"weight_map": {"a": "/etc/x.safetensors"}})");
  EXPECT_NE(message_of([&] { ShardedSafeTensors::open(index); }).find("is not a file inside the checkpoint folder"),
            std::string::npos);
  write_text(index, R"({"weights": {}})");
  EXPECT_NE(message_of([&] { ShardedSafeTensors::open(index); }).find("needs a \"weight_map\" object"), std::string::npos);
  write_text(index, R"({"weight_map": )");
  EXPECT_NE(message_of([&] { ShardedSafeTensors::open(index); }).find("shard index is not valid JSON"), std::string::npos);
}

TEST(SafeTensorsModel, MapsRenamesTransposesAndConvertsDtypes) {
  ScratchDir dir;
  const auto q = testing_io::random_floats(3 * 2, 21);  // stored [out=3, in=2]
  const auto norm = testing_io::random_floats(2, 22);
  std::vector<uint16_t> norm_bf16;
  for (float v : norm) norm_bf16.push_back(f32_to_bf16(v));
  const auto inv_freq = testing_io::random_floats(4, 23);
  save_safetensors(dir.file("model.safetensors"),
                   {tensor_view("model.layers.0.q_proj.weight", {3, 2}, q),
                    {"model.norm.weight", SafeTensorsDType::BF16, {2}, std::as_bytes(std::span(norm_bf16))},
                    tensor_view("model.rotary_emb.inv_freq", {4}, inv_freq)});
  const auto model = SafeTensorsModel::open(dir.file("model.safetensors"));

  WeightMapping mapping;
  mapping.rename = {{"model.", ""}};
  mapping.transpose = {"*_proj.weight"};
  mapping.ignore = {"*.inv_freq"};
  mapping.sources = {{"lm_head.weight", "model.layers.0.q_proj.weight"}};  // a tied weight, read twice
  const auto params = model.load({{"layers.0.q_proj.weight", {2, 3}}, {"norm.weight", {2}}, {"lm_head.weight", {3, 2}}},
                                 mapping);
  ASSERT_EQ(params.size(), 3u);
  const auto& qt = params.at("layers.0.q_proj.weight");
  for (int out = 0; out < 3; ++out)
    for (int in = 0; in < 2; ++in) EXPECT_EQ(qt[in * 3 + out], q[out * 2 + in]);
  EXPECT_EQ(params.at("lm_head.weight"), q);  // no transpose pattern matches lm_head
  for (size_t i = 0; i < norm.size(); ++i) EXPECT_EQ(params.at("norm.weight")[i], bf16_to_f32(norm_bf16[i]));
}

TEST(SafeTensorsModel, ReportsMissingUnexpectedAndMismatchedTogether) {
  const auto model = SafeTensorsModel::open(std::string(MEGANEURA_TEST_DATA_DIR) + "/fixtures/smollm2-tiny");
  WeightMapping mapping;
  mapping.rename = {{"model.", ""}};
  mapping.transpose = {"*_proj.weight"};
  const std::string message = message_of([&] {
    model.load({{"embed_tokens.weight", {512, 64}},
                {"layers.0.self_attn.q_proj.weight", {64, 64}},
                {"layers.0.mlp.up_proj.weight", {128, 64}},  // wrong: transposed it is [64, 128]
                {"layers.0.not_there.weight", {3}}},
               mapping);
  });
  EXPECT_NE(message.find("1 missing: layers.0.not_there.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("unexpected"), std::string::npos) << message;
  EXPECT_NE(message.find("model.layers.1.mlp.down_proj.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("1 shape mismatch: layers.0.mlp.up_proj.weight expects [128, 64] but "
                         "'model.layers.0.mlp.up_proj.weight' is [128, 64] (before transposing"),
            std::string::npos)
      << message;
}

TEST(SafeTensorsModel, LoadsTheFixtureCompletely) {
  const auto model = SafeTensorsModel::open(std::string(MEGANEURA_TEST_DATA_DIR) + "/fixtures/smollm2-tiny-bf16");
  std::vector<ParameterSpec> expected;
  for (const auto& name : model.tensors().names()) {
    auto shape = model.tensors().tensor(name).shape;
    const bool linear = name.ends_with("_proj.weight");
    if (linear) std::swap(shape[0], shape[1]);
    expected.push_back({name, shape});
  }
  WeightMapping mapping;
  mapping.transpose = {"*_proj.weight"};
  const auto params = model.load(expected, mapping);
  EXPECT_EQ(params.size(), 20u);
  EXPECT_EQ(params.at("model.embed_tokens.weight")[0], 0.357421875f);
}

TEST(SafeTensorsModel, LoadsTheParametersOfAGraph) {
  ScratchDir dir;
  const auto weight = testing_io::random_floats(3 * 4, 31);  // stored [out=3, in=4]
  const auto bias = testing_io::random_floats(3, 32);
  save_safetensors(dir.file("model.safetensors"), {tensor_view("fc.weight", {3, 4}, weight), tensor_view("fc.bias", {3}, bias)});
  Graph graph;
  auto x = graph.input("x", {2, 4});
  auto w = graph.parameter("fc.weight", {4, 3});  // [in, out]
  auto b = graph.parameter("fc.bias", {3});
  graph.set_outputs({graph.matmul(x, w) + b});
  ASSERT_EQ(parameter_specs(graph).size(), 2u);
  EXPECT_EQ(parameter_specs(graph)[0].shape, (std::vector<int64_t>{4, 3}));

  WeightMapping mapping;
  mapping.transpose = {"*.weight"};
  const auto params = SafeTensorsModel::open(dir.path().string()).load(graph, mapping);
  EXPECT_EQ(params.at("fc.bias"), bias);
  for (int out = 0; out < 3; ++out)
    for (int in = 0; in < 4; ++in) EXPECT_EQ(params.at("fc.weight")[in * 3 + out], weight[out * 4 + in]);
}
