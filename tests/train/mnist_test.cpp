// The quick start: its option checks, its errors for missing data, and the mnist program's argument
// errors (it must exit non-zero with a message naming the option, before loading anything).
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "meganeura/error.h"
#include "meganeura/train.h"
#include "train/train_test_util.h"

namespace meganeura::train {
namespace {

struct Result {
  int status = -1;
  std::string output;
};

Result run_mnist(const std::string& arguments) {
  const char* bin = std::getenv("MEGANEURA_BIN_DIR");
  const std::string dir = bin ? bin : MEGANEURA_BINARY_DIR "/bin";
  const std::string command = dir + "/mnist " + arguments + " 2>&1";
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

void expect_rejected(const std::string& arguments, const std::string& mention) {
  const Result result = run_mnist(arguments);
  EXPECT_NE(result.status, 0) << arguments << "\n" << result.output;
  EXPECT_NE(result.output.find(mention), std::string::npos) << arguments << "\n" << result.output;
  EXPECT_EQ(result.output.find("test accuracy"), std::string::npos) << arguments;
}

TEST(MnistExample, ArgumentErrors) {
  expect_rejected("--epochs 0", "--epochs");
  expect_rejected("--epochs many", "--epochs");
  expect_rejected("--batch-size -3", "--batch-size");
  expect_rejected("--optimizer rmsprop", "--optimizer");
  expect_rejected("--lr 0", "--lr");
  expect_rejected("--data /nonexistent/meganeura-mnist", "--data");
  expect_rejected("--no-such-option", "no-such-option");
}

TEST(MnistExample, HelpListsTheOptions) {
  const Result result = run_mnist("--help");
  EXPECT_EQ(result.status, 0) << result.output;
  for (const char* option : {"--data", "--epochs", "--batch-size", "--lr", "--optimizer", "--seed", "--save"}) {
    EXPECT_NE(result.output.find(option), std::string::npos) << option << "\n" << result.output;
  }
}

TEST(MnistExample, FolderWithoutTheFilesIsAClearError) {
  train_testing::TempDir dir;
  const Result result = run_mnist("--data " + dir.path().string());
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("error: "), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("train-images-idx3-ubyte"), std::string::npos) << result.output;
}

TEST(MnistOptions, Validate) {
  EXPECT_NO_THROW(validate({}));
  EXPECT_THROW(validate({.epochs = 0}), Error);
  EXPECT_THROW(validate({.batch_size = 0}), Error);
  EXPECT_THROW(validate({.lr = -0.1}), Error);
  EXPECT_THROW(validate({.optimizer = "lamb"}), Error);
  std::ostringstream out;
  EXPECT_THROW(train_mnist({.epochs = -1}, out), Error);
  EXPECT_TRUE(out.str().empty());  // rejected before anything is loaded
}

TEST(MnistOptions, TheMlpHasTheQuickStartShape) {
  const Graph graph = mnist_mlp(16);
  EXPECT_EQ(graph.node(graph.find("x")).shape, (Shape{16, 784}));
  EXPECT_EQ(graph.node(graph.find("fc1.weight")).shape, (Shape{128, 784}));
  EXPECT_EQ(graph.node(graph.find("fc2.weight")).shape, (Shape{10, 128}));
  ASSERT_EQ(graph.outputs().size(), 2u);
  EXPECT_EQ(graph.node(graph.outputs()[1]).shape, (Shape{16, 10}));
}

}  // namespace
}  // namespace meganeura::train
