#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "io_test_util.h"
#include "meganeura/error.h"
#include "meganeura/safetensors.h"

using namespace meganeura;
using meganeura::testing_io::float_bits;
using meganeura::testing_io::ScratchDir;

namespace {

const std::string fixtures = std::string(MEGANEURA_TEST_DATA_DIR) + "/fixtures/";

std::vector<std::byte> image(const std::string& header, const std::vector<std::byte>& data = {}) {
  std::vector<std::byte> out(8 + header.size());
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

template <typename T>
std::vector<std::byte> bytes_of(const std::vector<T>& values) {
  std::vector<std::byte> out(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

}  // namespace

TEST(SafeTensors, FixtureLoadsWithNamesDtypesShapesAndValues) {
  const auto file = SafeTensorsFile::open(fixtures + "smollm2-tiny/model.safetensors");
  ASSERT_EQ(file.tensors().size(), 20u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  const auto& embed = file.tensor("model.embed_tokens.weight");
  EXPECT_EQ(embed.dtype, SafeTensorsDType::F32);
  EXPECT_EQ(embed.shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(embed.bytes.size(), 131072u);
  EXPECT_EQ(file.tensor("model.layers.1.self_attn.k_proj.weight").shape, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(file.tensor("model.layers.0.mlp.down_proj.weight").shape, (std::vector<int64_t>{64, 128}));
  EXPECT_EQ(file.tensor("model.norm.weight").shape, (std::vector<int64_t>{64}));
  EXPECT_FALSE(file.contains("lm_head.weight"));  // tied to the embedding

  // Expected bits read from the raw bytes with Python's struct module.
  const auto embed_values = file.to_f32("model.embed_tokens.weight");
  EXPECT_EQ(float_bits(embed_values[0]), 0x3eb755aau);
  EXPECT_EQ(float_bits(embed_values[12345]), 0x3e1328bcu);
  EXPECT_EQ(float_bits(file.to_f32("model.norm.weight")[5]), 0x3e2a1436u);
  EXPECT_EQ(float_bits(file.to_f32("model.layers.1.self_attn.v_proj.weight")[2047]), 0x3e0419ceu);
  EXPECT_EQ(float_bits(file.to_f32("model.layers.0.mlp.down_proj.weight")[8191]), 0x3e60dcebu);

  // Data order: every tensor follows the previous one.
  for (size_t i = 1; i < file.tensors().size(); ++i)
    EXPECT_EQ(file.tensors()[i - 1].bytes.data() + file.tensors()[i - 1].bytes.size(), file.tensors()[i].bytes.data());
}

TEST(SafeTensors, ReferenceIdsReadAsI32) {
  const auto file = SafeTensorsFile::open(fixtures + "smollm2-tiny/reference.safetensors");
  EXPECT_EQ(file.to_i32("input_ids"), (std::vector<int32_t>{22, 506, 217, 201, 137, 437, 489, 451, 484, 463, 291, 300}));
  EXPECT_EQ(file.tensor("batch_logits").shape, (std::vector<int64_t>{2, 9, 512}));
  EXPECT_THROW(file.to_i32("logits"), Error);
  try {
    file.tensor("no_such_tensor");
    FAIL() << "a missing tensor was found";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("reference.safetensors: no tensor named 'no_such_tensor'"), std::string::npos)
        << e.what();
  }
}

TEST(SafeTensors, Bf16FixtureConvertsExactly) {
  const auto f32 = SafeTensorsFile::open(fixtures + "smollm2-tiny/model.safetensors");
  const auto bf16 = SafeTensorsFile::open(fixtures + "smollm2-tiny-bf16/model.safetensors");
  ASSERT_EQ(bf16.tensors().size(), f32.tensors().size());
  size_t compared = 0;
  for (const auto& t : f32.tensors()) {
    const auto& b = bf16.tensor(t.name);
    ASSERT_EQ(b.dtype, SafeTensorsDType::BF16);
    ASSERT_EQ(b.shape, t.shape);
    const auto reference = f32.to_f32(t.name);
    const auto converted = bf16.to_f32(t.name);
    ASSERT_EQ(converted.size(), reference.size());
    for (size_t i = 0; i < reference.size(); ++i) {
      uint16_t stored;
      std::memcpy(&stored, b.bytes.data() + 2 * i, 2);
      ASSERT_EQ(stored, f32_to_bf16(reference[i])) << t.name << "[" << i << "]";
      ASSERT_EQ(float_bits(converted[i]), static_cast<uint32_t>(stored) << 16) << t.name << "[" << i << "]";
    }
    compared += reference.size();
  }
  EXPECT_EQ(compared, 427264u / 4);
  // Spot values computed independently from the raw bf16 bytes.
  EXPECT_EQ(bf16.to_f32("model.embed_tokens.weight")[0], 0.357421875f);
  EXPECT_EQ(bf16.to_f32("model.embed_tokens.weight")[12345], 0.1435546875f);
  EXPECT_EQ(bf16.to_f32("model.norm.weight")[5], 0.166015625f);
}

TEST(SafeTensors, MalformedCorpusIsRejectedWithSpecificMessages) {
  const std::string folder = std::string(MEGANEURA_TEST_DATA_DIR) + "/malformed/";
  std::ifstream list(folder + "expected.tsv");
  ASSERT_TRUE(list) << "missing expected.tsv; run make_malformed.py";
  std::string line;
  int checked = 0;
  while (std::getline(list, line)) {
    const auto tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos) << line;
    const std::string path = folder + line.substr(0, tab);
    const std::string expected = line.substr(tab + 1);
    try {
      SafeTensorsFile::open(path);
      ADD_FAILURE() << path << " was accepted";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << "message does not name the file: " << message;
      EXPECT_NE(message.find(expected), std::string::npos) << path << "\n  expected: " << expected << "\n  got: " << message;
    }
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

TEST(SafeTensors, AcceptsPaddingScalarsZeroSizeAndAnyKeyOrder) {
  const float scalar = 2.5f;
  const std::vector<float> vec = {1.0f, -2.0f, 3.5f};
  std::vector<std::byte> data = bytes_of(vec);
  const auto scalar_bytes = bytes_of(std::vector<float>{scalar});
  data.insert(data.end(), scalar_bytes.begin(), scalar_bytes.end());
  // "z" comes first in the data though last by name; "empty" has zero elements; trailing spaces pad.
  const std::string header =
      R"({"z": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},)"
      R"( "a_scalar": {"data_offsets": [12, 16], "shape": [], "dtype": "F32"},)"
      R"( "empty": {"dtype": "I64", "shape": [0, 7], "data_offsets": [16, 16]},)"
      R"( "__metadata__": {"k": "v"}}          )";
  const auto file = SafeTensorsFile::from_bytes(image(header, data), "edge.safetensors");
  ASSERT_EQ(file.tensors().size(), 3u);
  EXPECT_EQ(file.tensors()[0].name, "z");
  EXPECT_EQ(file.to_f32("z"), vec);
  EXPECT_EQ(file.tensor("a_scalar").shape, std::vector<int64_t>{});
  EXPECT_EQ(file.tensor("a_scalar").element_count(), 1);
  EXPECT_EQ(file.to_f32("a_scalar"), std::vector<float>{scalar});
  EXPECT_EQ(file.to_i32("empty").size(), 0u);
  EXPECT_EQ(file.metadata().at("k"), "v");

  // A file holding nothing but an empty header is valid too.
  const auto none = SafeTensorsFile::from_bytes(image("{}"), "none.safetensors");
  EXPECT_TRUE(none.tensors().empty());
}

TEST(SafeTensors, WriterRoundTripsDtypesShapesAndMetadata) {
  ScratchDir dir;
  const auto weights = testing_io::random_floats(6 * 5, 7);
  const auto ids = testing_io::random_ints(9, 8);
  std::vector<uint16_t> halves;
  for (float v : testing_io::random_floats(4, 9)) halves.push_back(f32_to_f16(v));
  const float scalar = testing_io::random_floats(1, 10)[0];
  const std::vector<TensorToSave> tensors = {
      tensor_view("layer.weight", {6, 5}, weights),
      tensor_view("ids", {3, 3}, ids),
      {"half", SafeTensorsDType::F16, {2, 2}, std::as_bytes(std::span(halves))},
      tensor_view("scalar", {}, std::span(&scalar, 1)),
      {"nothing", SafeTensorsDType::BF16, {0}, {}},
  };
  const std::string path = dir.file("round.safetensors");
  save_safetensors(path, tensors, {{"format", "pt"}, {"step", "42"}});

  const auto file = SafeTensorsFile::open(path);
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"step", "42"}}));
  EXPECT_EQ(file.to_f32("layer.weight"), weights);
  EXPECT_EQ(file.tensor("layer.weight").shape, (std::vector<int64_t>{6, 5}));
  EXPECT_EQ(file.to_i32("ids"), ids);
  const auto half_values = file.to_f32("half");
  for (size_t i = 0; i < halves.size(); ++i) EXPECT_EQ(half_values[i], f16_to_f32(halves[i]));
  EXPECT_EQ(file.to_f32("scalar"), std::vector<float>{scalar});
  EXPECT_EQ(file.tensor("nothing").element_count(), 0);
  // Header length keeps the data 8-byte aligned, as the reference writer does.
  uint64_t header_length = 0;
  std::ifstream(path, std::ios::binary).read(reinterpret_cast<char*>(&header_length), 8);
  EXPECT_EQ(header_length % 8, 0u);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp." + std::to_string(::getpid())));
}

TEST(SafeTensors, WriterRejectsDuplicatesAndWrongByteCounts) {
  ScratchDir dir;
  const auto values = testing_io::random_floats(4, 11);
  EXPECT_THROW(save_safetensors(dir.file("dup.safetensors"),
                                {tensor_view("w", {4}, values), tensor_view("w", {2, 2}, values)}),
               Error);
  try {
    save_safetensors(dir.file("bad.safetensors"), {tensor_view("w", {5}, values)});
    FAIL() << "a 4-element buffer was written as shape [5]";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs 20 bytes, got 16"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad.safetensors")));
}

TEST(SafeTensors, OpeningAMissingFileNamesIt) {
  try {
    SafeTensorsFile::open("/nonexistent/model.safetensors");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.safetensors: cannot open"), std::string::npos) << e.what();
  }
}
