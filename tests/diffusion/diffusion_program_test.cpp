// The diffusion program's command line: its options are listed, and bad values stop it with a
// message naming the option before any data is loaded.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "support/temp_dir.h"

namespace {

struct Result {
  int status = -1;
  std::string output;
};

Result run_diffusion(const std::string& arguments) {
  const char* bin = std::getenv("MEGANEURA_BIN_DIR");
  const std::string command = std::string(bin ? bin : MEGANEURA_BINARY_DIR "/bin") + "/diffusion " + arguments + " 2>&1";
  Result result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> chunk{};
  size_t got = 0;
  while ((got = fread(chunk.data(), 1, chunk.size(), pipe)) > 0) result.output.append(chunk.data(), got);
  const int status = pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

TEST(DiffusionProgram, HelpListsTheOptions) {
  const Result result = run_diffusion("--help");
  ASSERT_EQ(result.status, 0) << result.output;
  for (const char* option : {"--data", "--out", "--steps", "--batch-size", "--lr", "--sampling-steps", "--guidance",
                             "--seed", "--classifier", "--train-seconds", "--channels", "--unet"}) {
    EXPECT_NE(result.output.find(option), std::string::npos) << option << "\n" << result.output;
  }
}

TEST(DiffusionProgram, BadOptionsAreRejectedByName) {
  for (auto [arguments, mention] : std::initializer_list<std::pair<const char*, const char*>>{
           {"--steps 0", "--steps"},
           {"--batch-size x", "--batch-size"},
           {"--beta-schedule quadratic", "--beta-schedule"},
           {"--guidance -2", "--guidance"},
           {"--data /nonexistent/meganeura-fashion", "--data"},
           {"--channels 8 16 --norm-groups 3", "--channels"},
           {"--sampling-steps 5000", "--sampling-steps"}}) {
    const Result result = run_diffusion(std::string(arguments) + " --out /nonexistent-dir/never-created");
    EXPECT_NE(result.status, 0) << arguments << "\n" << result.output;
    EXPECT_NE(result.output.find(mention), std::string::npos) << arguments << "\n" << result.output;
    EXPECT_EQ(result.output.find("loading"), std::string::npos) << arguments << "\n" << result.output;
  }
}

TEST(DiffusionProgram, MissingDataFilesAreAClearError) {
  TempDir dir;
  const Result result = run_diffusion("--data " + dir.path().string() + " --out " + (dir / "out").string());
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("error: "), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("train-images-idx3-ubyte"), std::string::npos) << result.output;
}

}  // namespace
