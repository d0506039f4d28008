// Tokenizer tests against the golden encodings made with Hugging Face `tokenizers`, plus the
// behaviours those strings do not reach (added-token options, errors, chat templates).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "meganeura/error.h"
#include "meganeura/tokenizer.h"
#include "text/utf8.h"

namespace {

using meganeura::Tokenizer;

const std::filesystem::path kFixtureDir = std::filesystem::path(MEGANEURA_TEST_DATA_DIR) / "fixtures" / "tokenizer";

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

nlohmann::json fixture_tokenizer_json() { return nlohmann::json::parse(read_text(kFixtureDir / "tokenizer.json")); }

const Tokenizer& fixture() {
  static const Tokenizer tokenizer = Tokenizer::load(kFixtureDir);
  return tokenizer;
}

std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

// A folder under the system temp directory, removed at the end of the test.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::random_device seed;
    path = std::filesystem::temp_directory_path() / ("meganeura-tokenizer-test-" + std::to_string(seed()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  void write(const std::string& name, const std::string& content) const {
    std::ofstream(path / name, std::ios::binary) << content;
  }
};

// Random UTF-8 text mixing ASCII, Latin accents, CJK, emoji, digits of other scripts and spaces.
std::string random_text(std::mt19937& rng, size_t characters) {
  static const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x20, 0x7E}, {0xC0, 0x17F}, {0x4E00, 0x4FFF}, {0x1F600, 0x1F64F}, {0x0660, 0x0669}, {0x3040, 0x309F}, {0x09, 0x0A}};
  std::uniform_int_distribution<size_t> pick_range(0, ranges.size() - 1);
  std::string out;
  for (size_t i = 0; i < characters; ++i) {
    const auto [low, high] = ranges[pick_range(rng)];
    const char32_t cp = std::uniform_int_distribution<uint32_t>(low, high)(rng);
    meganeura::text::append_code_point(out, cp);
  }
  return out;
}

template <typename Fn>
std::string error_message(Fn&& fn) {
  try {
    fn();
  } catch (const meganeura::Error& e) {
    return e.what();
  }
  return "(no meganeura::Error thrown)";
}

}  // namespace

TEST(Tokenizer, ReproducesEveryGoldenEncoding) {
  const auto golden = nlohmann::json::parse(read_text(kFixtureDir / "encodings.json"));
  ASSERT_GE(golden.size(), 10u);
  for (const auto& entry : golden) {
    const std::string text = entry["text"];
    const std::vector<int32_t> expected = entry["ids"];
    EXPECT_EQ(fixture().encode(text), expected) << "encoding " << nlohmann::json(text).dump();
    EXPECT_EQ(fixture().decode(expected), entry["decoded"].get<std::string>()) << "decoding " << nlohmann::json(text).dump();
  }
}

TEST(Tokenizer, MergesInStringFormEncodeTheSame) {
  nlohmann::json config = fixture_tokenizer_json();
  nlohmann::json string_merges = nlohmann::json::array();
  for (const auto& merge : config["model"]["merges"]) string_merges.push_back(merge[0].get<std::string>() + " " + merge[1].get<std::string>());
  config["model"]["merges"] = string_merges;
  const Tokenizer legacy = Tokenizer::from_json(config.dump());
  for (const auto& entry : nlohmann::json::parse(read_text(kFixtureDir / "encodings.json")))
    EXPECT_EQ(legacy.encode(entry["text"].get<std::string>()), entry["ids"].get<std::vector<int32_t>>());
}

TEST(Tokenizer, SpecialTokensInsideTextAreMatchedWhole) {
  const Tokenizer& t = fixture();
  ASSERT_EQ(t.token_to_id("<|im_end|>"), 2);
  EXPECT_EQ(t.encode("question?<|im_end|>answer"), concat({t.encode("question?"), {2}, t.encode("answer")}));
  EXPECT_EQ(t.encode("<|im_start|><|im_end|><|endoftext|>"), (std::vector<int32_t>{1, 2, 0}));
  // A near miss is ordinary text.
  const auto near_miss = t.encode("<|im_end|");
  EXPECT_EQ(std::count(near_miss.begin(), near_miss.end(), 2), 0);
  EXPECT_EQ(t.decode(near_miss), "<|im_end|");
}

TEST(Tokenizer, SpecialTokensCanBeEncodedAsText) {
  const Tokenizer& t = fixture();
  const std::string text = "user says <|im_end|> here";
  const auto as_text = t.encode(text, /*match_special_tokens=*/false);
  EXPECT_EQ(std::count(as_text.begin(), as_text.end(), 2), 0);
  EXPECT_EQ(t.decode(as_text), text);
  // The same ids as a tokenizer that has no added tokens at all.
  nlohmann::json config = fixture_tokenizer_json();
  config["added_tokens"] = nlohmann::json::array();
  EXPECT_EQ(as_text, Tokenizer::from_json(config.dump()).encode(text));
}

TEST(Tokenizer, DecodeCanSkipSpecialTokens) {
  const Tokenizer& t = fixture();
  const auto ids = t.encode("<|im_start|>assistant\nSure.<|im_end|>\n");
  EXPECT_EQ(t.decode(ids, /*skip_special_tokens=*/true), "assistant\nSure.\n");
  EXPECT_EQ(t.decode(ids), "<|im_start|>assistant\nSure.<|im_end|>\n");
  EXPECT_TRUE(t.is_special(1));
  EXPECT_FALSE(t.is_special(42));
}

TEST(Tokenizer, EmptyInput) {
  EXPECT_TRUE(fixture().encode("").empty());
  EXPECT_EQ(fixture().decode(std::vector<int32_t>{}), "");
}

TEST(Tokenizer, UnicodeRoundTrips) {
  const Tokenizer& t = fixture();
  for (const std::string text : {"café naïve résumé", "日本語のテキスト", "🤖🚀 emoji 👍🏽", "Ελληνικά и русский", "a\u00A0b\u2003c"}) {
    const auto ids = t.encode(text);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(t.decode(ids), text);
  }
  std::mt19937 rng(1234);
  for (int round = 0; round < 50; ++round) {
    const std::string text = random_text(rng, 1 + round * 3);
    EXPECT_EQ(t.decode(t.encode(text)), text) << "round " << round;
  }
}

TEST(Tokenizer, DigitsAreSplitOneByOne) {
  const Tokenizer& t = fixture();
  std::vector<int32_t> digit_ids;
  for (char d = '0'; d <= '9'; ++d) {
    const auto id = t.token_to_id(std::string(1, d));
    ASSERT_TRUE(id.has_value());
    digit_ids.push_back(*id);
  }
  EXPECT_EQ(t.encode("0123456789"), digit_ids);
  // Digits break words too: "x2024y" is x, 2, 0, 2, 4, y.
  EXPECT_EQ(t.encode("x2024y"), concat({t.encode("x"), {digit_ids[2], digit_ids[0], digit_ids[2], digit_ids[4]}, t.encode("y")}));
  // Other scripts' digits are numbers too (Arabic-Indic 1 and 2 are separate pieces).
  EXPECT_EQ(t.encode("\u0661\u0662"), concat({t.encode("\u0661"), t.encode("\u0662")}));
}

TEST(Tokenizer, DecodeReplacesBrokenUtf8) {
  const Tokenizer& t = fixture();
  const auto ids = t.encode("é");  // two byte-level tokens, one per UTF-8 byte
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(t.decode(std::vector<int32_t>{ids[0]}), "\xEF\xBF\xBD");
  EXPECT_EQ(t.decode(std::vector<int32_t>{ids[1], ids[0], ids[1]}), "\xEF\xBF\xBD" "é");
}

TEST(Tokenizer, AddedTokenOptions) {
  nlohmann::json config = fixture_tokenizer_json();
  auto add = [&](const std::string& content, int id, bool lstrip, bool rstrip, bool single_word) {
    config["added_tokens"].push_back({{"id", id}, {"content", content}, {"single_word", single_word}, {"lstrip", lstrip},
                                      {"rstrip", rstrip}, {"normalized", false}, {"special", false}});
  };
  add("<L>", 512, true, false, false);
  add("<R>", 513, false, true, false);
  add("<W>", 514, false, false, true);
  add("<LONG>", 515, false, false, false);
  add("<LONGER>", 516, false, false, false);
  add(" zz", 517, false, false, false);
  const Tokenizer t = Tokenizer::from_json(config.dump());
  EXPECT_EQ(t.vocab_size(), 518);
  EXPECT_EQ(t.encode("a  <L>b"), concat({t.encode("a"), {512}, t.encode("b")}));
  EXPECT_EQ(t.encode("a<R> \tb"), concat({t.encode("a"), {513}, t.encode("b")}));
  // An added token starting inside the whitespace that rstrip swallowed still matches.
  EXPECT_EQ(t.encode("<R> zz"), (std::vector<int32_t>{513, 517}));
  EXPECT_EQ(t.encode("a <W> b"), concat({t.encode("a "), {514}, t.encode(" b")}));
  const auto inside_word = t.encode("a<W>b");
  EXPECT_EQ(std::count(inside_word.begin(), inside_word.end(), 514), 0) << "single_word inside a word";
  EXPECT_EQ(t.decode(inside_word), "a<W>b");
  EXPECT_EQ(t.encode("x<LONGER>"), concat({t.encode("x"), {516}}));  // the longest token at a position wins
  EXPECT_FALSE(t.is_special(512));
  EXPECT_EQ(t.decode(std::vector<int32_t>{512, 516}), "<L><LONGER>");
}

TEST(Tokenizer, AddedTokenIdsAreAssignedAsOnLoadingInHuggingFace) {
  nlohmann::json config = fixture_tokenizer_json();
  std::string model_token;  // some multi-character token of the model vocabulary
  for (const auto& [token, id] : config["model"]["vocab"].items())
    if (token.size() >= 3 && token[0] != '<' && id.get<int>() > 300) model_token = token;
  ASSERT_FALSE(model_token.empty());
  const int32_t model_id = config["model"]["vocab"][model_token];
  auto add = [&](const std::string& content, int file_id) {
    config["added_tokens"].push_back({{"id", file_id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                                      {"rstrip", false}, {"normalized", false}, {"special", true}});
  };
  add("<first>", 700);    // new: the next id after the model vocabulary, whatever the file says
  add(model_token, 701);  // already in the model: keeps the model's id
  add("<second>", 702);
  const Tokenizer t = Tokenizer::from_json(config.dump());
  EXPECT_EQ(t.token_to_id("<first>"), 512);
  EXPECT_EQ(t.token_to_id(model_token), model_id);
  EXPECT_EQ(t.token_to_id("<second>"), 513);
  EXPECT_EQ(t.vocab_size(), 514);
  EXPECT_EQ(t.encode("<second><first>"), (std::vector<int32_t>{513, 512}));
}

TEST(Tokenizer, ChatTemplateOfSmolLM2) {
  TempDir dir;
  dir.write("tokenizer.json", read_text(kFixtureDir / "tokenizer.json"));
  const std::string smollm2_template =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
      "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
      "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
      "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  dir.write("tokenizer_config.json",
            nlohmann::json{{"chat_template", smollm2_template}, {"eos_token", "<|im_end|>"}, {"bos_token", "<|im_start|>"}}.dump());
  const Tokenizer t = Tokenizer::load(dir.path);
  EXPECT_EQ(t.chat_template(), smollm2_template);
  EXPECT_EQ(t.eos_token_id(), 2);
  EXPECT_EQ(t.bos_token_id(), 1);

  const std::vector<meganeura::ChatMessage> chat = {{"user", "Hi there"}, {"assistant", "Hello!"}, {"user", "2+2?"}};
  EXPECT_EQ(t.apply_chat_template(chat, true),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
            "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
  const std::vector<meganeura::ChatMessage> with_system = {{"system", "Be brief."}, {"user", "Hi"}};
  const std::string prompt = t.apply_chat_template(with_system, false);
  EXPECT_EQ(prompt, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
  const auto ids = t.encode(prompt);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 2);
}

TEST(Tokenizer, ChatTemplateWhitespaceControlAndExpressions) {
  nlohmann::json config;
  config["chat_template"] =
      "{%- set ns = namespace(count=0) %}\n"
      "{%- for message in messages %}\n"
      "    {%- if message.role == 'user' %}{% set ns.count = ns.count + 1 %}{% endif %}\n"
      "    {{- message.role | upper ~ ': ' ~ message['content'] | trim }}\n"
      "{% endfor -%}\n"
      "{{ 'users=' ~ ns.count }}{{ ' last=' + messages[-1].content if messages | length > 1 else '' }}\n"
      "{%- if messages[5] is not defined and 'sys' not in messages[0].role %} ok{% endif %}";
  const Tokenizer t = Tokenizer::from_json(read_text(kFixtureDir / "tokenizer.json"), config.dump());
  const std::vector<meganeura::ChatMessage> chat = {{"user", "  a  "}, {"assistant", "b"}, {"user", "c"}};
  EXPECT_EQ(t.apply_chat_template(chat, false), "USER: a\nASSISTANT: b\nUSER: c\nusers=2 last=c ok");
}

TEST(Tokenizer, ChatTemplateBlocksOnTheirOwnLines) {
  // transformers renders with trim_blocks and lstrip_blocks: indented block tags on their own lines
  // leave no trace; strings index and slice by character.
  nlohmann::json config;
  config["chat_template"] =
      "{% for m in messages if m.role != 'tool' %}\n"
      "  {% if m.role == 'system' %}\n"
      "[SYS] {{ m.content }}\n"
      "  {% else %}\n"
      "[{{ loop.index }}/{{ loop.length }}] {{ m.role }}: {{ m.content[:3] }}|{{ m.content[-2:] }}|{{ m.content | length }}\n"
      "  {% endif %}\n"
      "{% endfor %}\n"
      "{% if add_generation_prompt %}{{ '[' ~ (messages | length + 1) ~ ']' }}{% endif %}";
  const Tokenizer t = Tokenizer::from_json(read_text(kFixtureDir / "tokenizer.json"), config.dump());
  const std::vector<meganeura::ChatMessage> chat = {{"system", "S"}, {"tool", "ignored"}, {"user", "ünïcödé"}};
  EXPECT_EQ(t.apply_chat_template(chat, true), "[SYS] S\n[2/2] user: ünï|dé|7\n[4]");
}

TEST(Tokenizer, ChatTemplateWithRoleChecks) {
  // The shape of Gemma's and Llama 2's templates: roles must alternate, checked in the template.
  nlohmann::json config;
  config["chat_template"] =
      "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
      "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
      "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
      "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
      "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";
  config["bos_token"] = "<|endoftext|>";
  const Tokenizer t = Tokenizer::from_json(read_text(kFixtureDir / "tokenizer.json"), config.dump());
  const std::vector<meganeura::ChatMessage> chat = {{"user", " Hi \n"}, {"assistant", "Hello"}};
  EXPECT_EQ(t.apply_chat_template(chat, true),
            "<|endoftext|><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n<start_of_turn>model\n");
  const std::vector<meganeura::ChatMessage> twice = {{"user", "a"}, {"user", "b"}};
  EXPECT_NE(error_message([&] { t.apply_chat_template(twice, true); }).find("roles must alternate"), std::string::npos);
}

TEST(Tokenizer, ChatTemplateErrors) {
  const std::string tokenizer_json = read_text(kFixtureDir / "tokenizer.json");
  const std::vector<meganeura::ChatMessage> chat = {{"user", "hi"}};
  EXPECT_NE(error_message([&] { fixture().apply_chat_template(chat, true); }).find("no chat template"), std::string::npos);
  const Tokenizer macro = Tokenizer::from_json(tokenizer_json, R"({"chat_template": "{% macro f() %}x{% endmacro %}"})");
  EXPECT_NE(error_message([&] { macro.apply_chat_template(chat, true); }).find("macro"), std::string::npos);
  const Tokenizer raising = Tokenizer::from_json(
      tokenizer_json, R"({"chat_template": "{% if messages[0].role != 'system' %}{{ raise_exception('need a system message') }}{% endif %}"})");
  EXPECT_NE(error_message([&] { raising.apply_chat_template(chat, true); }).find("need a system message"), std::string::npos);
}

TEST(Tokenizer, Errors) {
  EXPECT_NE(error_message([] { Tokenizer::load("/nonexistent/model/folder"); }).find("does not exist"), std::string::npos);
  EXPECT_NE(error_message([] { Tokenizer::from_json("{\"model\": {"); }).find("not valid JSON"), std::string::npos);

  nlohmann::json word_piece = fixture_tokenizer_json();
  word_piece["model"]["type"] = "WordPiece";
  EXPECT_NE(error_message([&] { Tokenizer::from_json(word_piece.dump()); }).find("model type \"WordPiece\""), std::string::npos);

  nlohmann::json bad_merge = fixture_tokenizer_json();
  bad_merge["model"]["merges"].push_back({"zz_missing", "a"});
  EXPECT_NE(error_message([&] { Tokenizer::from_json(bad_merge.dump()); }).find("zz_missing"), std::string::npos);

  nlohmann::json normalizer = fixture_tokenizer_json();
  normalizer["normalizer"] = {{"type", "NFC"}};
  EXPECT_NE(error_message([&] { Tokenizer::from_json(normalizer.dump()); }).find("NFC"), std::string::npos);

  nlohmann::json wrong_type = fixture_tokenizer_json();
  wrong_type["decoder"] = "ByteLevel";  // must be an object
  EXPECT_NE(error_message([&] { Tokenizer::from_json(wrong_type.dump()); }).find("unexpected type"), std::string::npos);

  nlohmann::json pre = fixture_tokenizer_json();
  pre["pre_tokenizer"] = {{"type", "Metaspace"}};
  EXPECT_NE(error_message([&] { Tokenizer::from_json(pre.dump()); }).find("Metaspace"), std::string::npos);

  EXPECT_NE(error_message([] { fixture().encode("bad \xC3( utf8"); }).find("not valid UTF-8"), std::string::npos);
  EXPECT_NE(error_message([] { fixture().decode(std::vector<int32_t>{3, 99999}); }).find("99999"), std::string::npos);
  EXPECT_NE(error_message([] { fixture().id_to_token(-1); }).find("-1"), std::string::npos);
}

TEST(Tokenizer, SplitPreTokenizerBehaviours) {
  // Split on "-" in each behaviour, then byte-level without the regex, so pieces show the split.
  auto pieces_of = [](const std::string& behavior, bool invert) {
    nlohmann::json config = fixture_tokenizer_json();
    config["pre_tokenizer"] = {{"type", "Sequence"},
                               {"pretokenizers",
                                {{{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}},
                                 {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
    config["model"]["merges"] = nlohmann::json::array();  // one id per byte: pieces are visible as ids
    const Tokenizer t = Tokenizer::from_json(config.dump());
    return t.decode(t.encode("a-b--c"));
  };
  // Without merges every piece decodes to itself; what differs is which bytes survive.
  EXPECT_EQ(pieces_of("Removed", false), "abc");
  EXPECT_EQ(pieces_of("Isolated", false), "a-b--c");
  EXPECT_EQ(pieces_of("Removed", true), "---");
}

TEST(Tokenizer, LongTextIsFastAndExact) {
  std::mt19937 rng(7);
  std::string text;
  const std::vector<std::string> words = {"the ", "meaning ", "of ", "life ", "is ", "42", ", ", "naïve ", "日本 ", "\n"};
  std::uniform_int_distribution<size_t> pick(0, words.size() - 1);
  while (text.size() < 200000) text += words[pick(rng)];
  const auto start = std::chrono::steady_clock::now();
  const auto ids = fixture().encode(text);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(fixture().decode(ids), text);
  std::printf("encoded %zu bytes into %zu tokens in %.3f s\n", text.size(), ids.size(), seconds);
}

namespace {

// Runs a command and returns its stdout; the exit status goes to `status`.
std::string run_command(const std::string& command, int& status) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return out;
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  status = pclose(pipe);
  return out;
}

std::string last_line(const std::string& out) {
  std::string trimmed = out;
  while (!trimmed.empty() && trimmed.back() == '\n') trimmed.pop_back();
  const size_t newline = trimmed.rfind('\n');
  return newline == std::string::npos ? trimmed : trimmed.substr(newline + 1);
}

std::string cli_path() {
  const char* dir = std::getenv("MEGANEURA_BIN_DIR");
  return (dir ? std::filesystem::path(dir) : std::filesystem::path(MEGANEURA_BINARY_DIR) / "bin") / "meganeura";
}

}  // namespace

TEST(TokenizeCommand, PrintsIdsAsJsonOnTheLastLine) {
  if (!std::filesystem::exists(cli_path())) GTEST_SKIP() << cli_path() << " is not built; build the meganeura_cli target";
  const auto golden = nlohmann::json::parse(read_text(kFixtureDir / "encodings.json"));
  for (size_t i : {0u, 4u}) {  // ASCII punctuation, and unicode
    int status = -1;
    const std::string out = run_command(cli_path() + " tokenize --model '" + kFixtureDir.string() + "' '" +
                                            golden[i]["text"].get<std::string>() + "'", status);
    EXPECT_EQ(status, 0);
    EXPECT_EQ(nlohmann::json::parse(last_line(out)), golden[i]["ids"]);
  }
  int status = -1;
  const std::string ids = golden[0]["ids"].dump();
  const std::string out = run_command(cli_path() + " tokenize --decode --model '" + kFixtureDir.string() + "' '" + ids + "'", status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(last_line(out), golden[0]["decoded"].get<std::string>());
}

TEST(TokenizeCommand, ChatWrapsTheTextWithTheTemplate) {
  if (!std::filesystem::exists(cli_path())) GTEST_SKIP() << cli_path() << " is not built; build the meganeura_cli target";
  TempDir dir;
  dir.write("tokenizer.json", read_text(kFixtureDir / "tokenizer.json"));
  dir.write("tokenizer_config.json", nlohmann::json{{"chat_template",
      "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}"
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"}}.dump());
  int status = -1;
  const std::string out = run_command(cli_path() + " tokenize --chat --model '" + dir.path.string() + "' 'hi there'", status);
  EXPECT_EQ(status, 0);
  const Tokenizer t = Tokenizer::load(dir.path);
  EXPECT_EQ(nlohmann::json::parse(last_line(out)), nlohmann::json(t.encode("<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n")));
}

TEST(TokenizeCommand, MissingModelIsAnError) {
  if (!std::filesystem::exists(cli_path())) GTEST_SKIP() << cli_path() << " is not built; build the meganeura_cli target";
  int status = 0;
  run_command(cli_path() + " tokenize --model /nonexistent/folder hello 2>/dev/null", status);
  EXPECT_NE(status, 0);
}
