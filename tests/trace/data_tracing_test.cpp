// Data loading shows up in traces: file reads nested in load_mnist, one slice per batch.
#include <gtest/gtest.h>

#include <random>

#include "support/temp_dir.h"
#include "meganeura/data.h"
#include "meganeura/trace.h"
#include "trace_decoder.h"

namespace md = meganeura::data;

TEST(DataTracing, LoadingAndBatchingAreSlices) {
  TempDir dir;
  std::mt19937 rng(3);
  for (const char* split : {"train", "t10k"}) {
    md::IdxArray images{.type = md::IdxType::u8, .dims = {12, 2, 2}, .bytes = std::vector<uint8_t>(48)};
    md::IdxArray labels{.type = md::IdxType::u8, .dims = {12}, .bytes = std::vector<uint8_t>(12)};
    for (auto& b : images.bytes) b = static_cast<uint8_t>(rng());
    for (auto& b : labels.bytes) b = static_cast<uint8_t>(rng() % 3);
    md::write_idx(dir / (std::string(split) + "-images-idx3-ubyte.gz"), images, true);
    md::write_idx(dir / (std::string(split) + "-labels-idx1-ubyte"), labels);
  }
  meganeura::trace::start((dir / "data.pftrace").string());
  const md::MnistData data = md::load_mnist(dir.path());
  md::DataLoader loader(data.train, {.batch_size = 5});
  md::Batch batch;
  while (loader.next(batch)) {
  }
  meganeura::trace::stop();

  const auto slices = rebuild_slices(decode_trace(dir / "data.pftrace"));
  int reads = 0, batches = 0;
  for (const auto& slice : slices) {
    if (slice.name == "read_idx") {
      ++reads;
      ASSERT_GE(slice.parent, 0);
      EXPECT_EQ(slices[slice.parent].name, "load_mnist");
      EXPECT_NE(slice.label.find("-idx"), std::string::npos) << slice.label;
    }
    if (slice.name == "next batch") ++batches;
  }
  EXPECT_EQ(reads, 4);
  EXPECT_EQ(batches, 3);  // 12 samples in batches of 5; the call that ends the epoch returns no batch
}
