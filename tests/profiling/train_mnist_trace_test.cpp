// `MEGANEURA_TRACE=t.pftrace meganeura train-mnist --epochs 1` writes a complete trace: the session
// build, one slice per training step and GPU slices for the dispatches, on a tiny random dataset.
// With MEGANEURA_PROFILE=1 the program also prints its kernels by GPU time when it ends.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "support/temp_dir.h"
#include "meganeura/data.h"
#include "trace/trace_decoder.h"

namespace {

void write_split(const TempDir& dir, const std::string& split, int64_t count, std::mt19937& rng) {
  namespace md = meganeura::data;
  md::IdxArray images{.type = md::IdxType::u8, .dims = {count, 28, 28},
                      .bytes = std::vector<uint8_t>(static_cast<size_t>(count) * 28 * 28)};
  md::IdxArray labels{.type = md::IdxType::u8, .dims = {count}, .bytes = std::vector<uint8_t>(count)};
  for (auto& b : images.bytes) b = static_cast<uint8_t>(rng());
  for (auto& b : labels.bytes) b = static_cast<uint8_t>(rng() % 10);
  md::write_idx(dir / (split + "-images-idx3-ubyte"), images);
  md::write_idx(dir / (split + "-labels-idx1-ubyte"), labels);
}

TEST(TrainMnistTrace, OneEpochWritesACompleteTrace) {
  TempDir dir;
  std::mt19937 rng(11);
  write_split(dir, "train", 24, rng);
  write_split(dir, "t10k", 8, rng);
  const char* bin = std::getenv("MEGANEURA_BIN_DIR");
  const std::filesystem::path program = std::filesystem::path(bin ? bin : MEGANEURA_BINARY_DIR "/bin") / "meganeura";
  ASSERT_TRUE(std::filesystem::exists(program)) << program << " is missing; build the meganeura_cli target";
  const std::filesystem::path trace = dir / "t.pftrace";
  const std::string command = "MEGANEURA_PROFILE=1 MEGANEURA_TRACE='" + trace.string() + "' '" + program.string() +
                              "' train-mnist --data '" + dir.path().string() +
                              "' --epochs 1 --batch-size 8 > '" + (dir / "out.txt").string() + "' 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << "see the command's output in " << (dir / "out.txt");
  std::ifstream out_file(dir / "out.txt");
  const std::string output((std::istreambuf_iterator<char>(out_file)), std::istreambuf_iterator<char>());
  EXPECT_NE(output.find("GPU time by kernel over 3 training steps"), std::string::npos) << output;
  EXPECT_NE(output.find("share"), std::string::npos) << output;
  EXPECT_NE(output.find("matmul"), std::string::npos) << output;

  const std::vector<Slice> slices = rebuild_slices(decode_trace(trace));
  size_t builds = 0, steps = 0, gpu = 0;
  for (const Slice& slice : slices) {
    const bool on_gpu = std::find(slice.categories.begin(), slice.categories.end(), "gpu") != slice.categories.end();
    if (on_gpu) {
      ++gpu;
      EXPECT_FALSE(slice.name.empty());
      EXPECT_LE(slice.begin, slice.end);
    } else if (slice.name == "build_session") {
      ++builds;
    } else if (slice.name == "step" || slice.name == "compute_gradients") {
      ++steps;
    }
  }
  EXPECT_GE(builds, 1u);
  EXPECT_EQ(steps, 3u) << "24 samples in batches of 8";
  EXPECT_GE(gpu, 3u);
}

}  // namespace
