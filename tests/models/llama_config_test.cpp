// config.json in both layouts the published Llama/SmolLM2 checkpoints use, and the errors for
// configs the graphs cannot honour.
#include <gtest/gtest.h>

#include "meganeura/error.h"
#include "meganeura/models/smollm2.h"

namespace meganeura::models {
namespace {

const std::string kFixtures = std::string(MEGANEURA_TEST_DATA_DIR) + "/fixtures/";

TEST(LlamaConfig, ReadsTheNewerLayoutWithRopeParameters) {
  const LlamaConfig config = LlamaConfig::load(kFixtures + "smollm2-tiny");
  EXPECT_EQ(config.vocab_size, 512);
  EXPECT_EQ(config.hidden_size, 64);
  EXPECT_EQ(config.intermediate_size, 128);
  EXPECT_EQ(config.num_hidden_layers, 2);
  EXPECT_EQ(config.num_attention_heads, 4);
  EXPECT_EQ(config.num_key_value_heads, 2);
  EXPECT_EQ(config.head_dim, 16);
  EXPECT_EQ(config.max_position_embeddings, 512);
  EXPECT_DOUBLE_EQ(config.rope_theta, 100000.0);
  EXPECT_DOUBLE_EQ(config.rms_norm_eps, 1e-5);
  EXPECT_TRUE(config.tie_word_embeddings);
  EXPECT_EQ(config.eos_token_ids, std::vector<int32_t>{0});
  EXPECT_EQ(config.bos_token_id, 0);
  EXPECT_EQ(config.dtype, "float32");
}

TEST(LlamaConfig, ReadsTheOlderLayoutWithTopLevelRopeTheta) {
  const LlamaConfig older = LlamaConfig::load(kFixtures + "smollm2-tiny-bf16/config.json");
  const LlamaConfig newer = LlamaConfig::load(kFixtures + "smollm2-tiny");
  EXPECT_DOUBLE_EQ(older.rope_theta, newer.rope_theta);
  EXPECT_EQ(older.dtype, "bfloat16");
  EXPECT_EQ(older.head_dim, newer.head_dim);
  EXPECT_EQ(older.num_key_value_heads, newer.num_key_value_heads);
}

TEST(LlamaConfig, DerivesHeadDimAndKvHeadsAndReadsEosLists) {
  const LlamaConfig config = LlamaConfig::from_json(
      R"({"vocab_size": 10, "hidden_size": 24, "intermediate_size": 8, "num_hidden_layers": 1,
          "num_attention_heads": 3, "eos_token_id": [2, 5], "rope_theta": 500.0})");
  EXPECT_EQ(config.head_dim, 8);
  EXPECT_EQ(config.num_key_value_heads, 3);
  EXPECT_EQ(config.eos_token_ids, (std::vector<int32_t>{2, 5}));
  EXPECT_DOUBLE_EQ(config.rope_theta, 500.0);
  EXPECT_FALSE(config.tie_word_embeddings);
  const nn::TransformerConfig block = config.block_config();
  EXPECT_EQ(block.head_dim, 8);
  EXPECT_EQ(block.num_kv_heads, 3);
}

void expect_error(const std::string& json, const std::string& fragment) {
  try {
    LlamaConfig::from_json(json, "test config");
    ADD_FAILURE() << "no error for " << json;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("test config"), std::string::npos) << e.what();
  }
}

TEST(LlamaConfig, RejectsWhatTheGraphsCannotHonour) {
  const std::string base = R"("vocab_size": 10, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2)";
  expect_error("{" + base + R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}})", "rope_scaling");
  expect_error("{" + base + R"(, "rope_parameters": {"rope_type": "yarn", "rope_theta": 1.0}})", "rope_type");
  expect_error("{" + base + R"(, "hidden_act": "gelu"})", "hidden_act");
  expect_error("{" + base + R"(, "attention_bias": true})", "attention_bias");
  expect_error("{" + base + R"(, "num_key_value_heads": 3})", "num_key_value_heads");
  expect_error("{" + base + R"(, "model_type": "gpt2"})", "model_type");
  expect_error(R"({"hidden_size": 8})", "vocab_size");
  expect_error("{" + base + R"(, "vocab_size": -4})", "vocab_size");
  expect_error("{" + base + R"(, "vocab_size": 1e400})", "JSON");
  expect_error("{" + base + R"(, "rms_norm_eps": "small"})", "rms_norm_eps");
  expect_error("{" + base + R"(, "eos_token_id": [1, -2]})", "eos_token_id");
  expect_error("[1, 2]", "object");
  expect_error("{", "JSON");
}

TEST(LlamaConfig, MissingFileNamesThePath) {
  try {
    LlamaConfig::load(kFixtures + "no-such-model");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-model"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace meganeura::models

TEST(LlamaConfig, SmolLM2_135MHasThePublishedParameterCount) {
  // 134,515,008 parameters with the embedding tied to the lm_head, as the published checkpoint has.
  const meganeura::Graph graph = meganeura::models::logits_graph(meganeura::models::LlamaConfig::smollm2_135m(), 1, 1);
  int64_t parameters = 0;
  for (int32_t id : graph.parameters()) parameters += meganeura::num_elements(graph.node(id).shape);
  EXPECT_EQ(parameters, 134515008);
  EXPECT_EQ(graph.parameters().size(), 1u + 30u * 9u + 1u);
}
