// The `meganeura inspect` subcommand, run as a separate process like a user would.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

namespace {

struct Run {
  int exit_code = -1;
  bool signalled = false;
  std::string output;
};

std::string cli_path() {
  const char* dir = std::getenv("MEGANEURA_BIN_DIR");
  return std::string(dir ? dir : MEGANEURA_BINARY_DIR "/bin") + "/meganeura";
}

Run run_inspect(const std::string& file) {
  Run run;
  const std::string command = "'" + cli_path() + "' inspect '" + file + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return run;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) run.output.append(buffer, n);
  const int status = ::pclose(pipe);
  run.signalled = WIFSIGNALED(status);
  if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  return run;
}

#define REQUIRE_CLI()                                                                          \
  if (!std::filesystem::exists(cli_path())) GTEST_SKIP() << "build the meganeura_cli target first"

}  // namespace

TEST(InspectCommand, ListsTensorsAndMetadata) {
  REQUIRE_CLI();
  const auto run = run_inspect(std::string(MEGANEURA_TEST_DATA_DIR) + "/fixtures/smollm2-tiny-bf16/model.safetensors");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("20 tensors, 213632 bytes"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("format: pt"), std::string::npos) << run.output;
  EXPECT_TRUE(std::regex_search(run.output, std::regex(R"(model\.embed_tokens\.weight +BF16 +\[512, 64\] +65536\n)")))
      << run.output;
  EXPECT_NE(run.output.find("model.norm.weight"), std::string::npos) << run.output;
}

TEST(InspectCommand, MalformedFilesExitWithStatusOneAndTheReason) {
  REQUIRE_CLI();
  const std::string folder = std::string(MEGANEURA_TEST_DATA_DIR) + "/malformed/";
  std::ifstream list(folder + "expected.tsv");
  std::string line;
  int checked = 0;
  while (std::getline(list, line)) {
    const auto tab = line.find('\t');
    const auto run = run_inspect(folder + line.substr(0, tab));
    EXPECT_FALSE(run.signalled) << line;
    EXPECT_EQ(run.exit_code, 1) << line << "\n" << run.output;
    EXPECT_NE(run.output.find("error: "), std::string::npos) << run.output;
    EXPECT_NE(run.output.find(line.substr(tab + 1)), std::string::npos) << run.output;
    ++checked;
  }
  EXPECT_GE(checked, 20);
}
