// MNIST-layout folders and image/label pairing.
#include <gtest/gtest.h>

#include <random>

#include "meganeura/data.h"
#include "meganeura/error.h"
#include "support/temp_dir.h"

namespace md = meganeura::data;

namespace {

struct Split {
  md::IdxArray images;
  md::IdxArray labels;
};

Split random_split(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  Split split;
  split.images.dims = {count, 4, 3};
  split.images.bytes.resize(static_cast<size_t>(count * 12));
  for (auto& pixel : split.images.bytes) pixel = static_cast<uint8_t>(rng());
  split.labels.dims = {count};
  split.labels.bytes.resize(static_cast<size_t>(count));
  for (auto& label : split.labels.bytes) label = static_cast<uint8_t>(rng() % 10);
  split.labels.bytes[0] = 9;  // so that num_classes is known: 10
  return split;
}

void expect_matches(const md::Dataset& dataset, const Split& split) {
  ASSERT_EQ(dataset.size, split.labels.dims[0]);
  EXPECT_EQ(dataset.image_shape, (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(dataset.features, 12);
  EXPECT_EQ(dataset.num_classes, 10);
  ASSERT_EQ(dataset.images.size(), split.images.bytes.size());
  for (size_t i = 0; i < dataset.images.size(); ++i) {
    ASSERT_FLOAT_EQ(dataset.images[i], split.images.bytes[i] / 255.0f) << "pixel " << i;
  }
  for (size_t i = 0; i < dataset.labels.size(); ++i) ASSERT_EQ(dataset.labels[i], split.labels.bytes[i]);
}

}  // namespace

TEST(Dataset, LoadMnistFindsPlainAndGzipFiles) {
  TempDir dir;
  const Split train = random_split(20, 1), test = random_split(7, 2);
  md::write_idx(dir / "train-images-idx3-ubyte", train.images, false);
  md::write_idx(dir / "train-labels-idx1-ubyte.gz", train.labels, true);
  md::write_idx(dir / "t10k-images-idx3-ubyte.gz", test.images, true);
  md::write_idx(dir / "t10k-labels-idx1-ubyte", test.labels, false);
  const md::MnistData data = md::load_mnist(dir.path());
  expect_matches(data.train, train);
  expect_matches(data.test, test);
}

TEST(Dataset, LoadMnistNamesTheMissingFile) {
  TempDir dir;
  const Split train = random_split(5, 3);
  md::write_idx(dir / "train-images-idx3-ubyte.gz", train.images, true);
  md::write_idx(dir / "train-labels-idx1-ubyte.gz", train.labels, true);
  try {
    md::load_mnist(dir.path());
    FAIL() << "expected an error for the missing test split";
  } catch (const meganeura::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("missing t10k-images-idx3-ubyte(.gz), t10k-labels-idx1-ubyte(.gz)"), std::string::npos) << message;
    EXPECT_EQ(message.find("train-"), std::string::npos) << message;
  }
}

TEST(Dataset, MismatchedSampleCountsAreAnError) {
  TempDir dir;
  const Split a = random_split(6, 4), b = random_split(5, 5);
  md::write_idx(dir / "images", a.images);
  md::write_idx(dir / "labels", b.labels);
  try {
    md::load_idx_dataset(dir / "images", dir / "labels");
    FAIL() << "expected an error";
  } catch (const meganeura::Error& e) {
    EXPECT_NE(std::string(e.what()).find("6 images but 5 labels"), std::string::npos) << e.what();
  }
}

TEST(Dataset, SwappedImageAndLabelFilesAreAnError) {
  TempDir dir;
  const Split split = random_split(6, 6);
  md::write_idx(dir / "images", split.images);
  md::write_idx(dir / "labels", split.labels);
  EXPECT_THROW(md::load_idx_dataset(dir / "labels", dir / "images"), meganeura::Error);
}

TEST(Dataset, HeadKeepsTheFirstSamples) {
  TempDir dir;
  const Split split = random_split(9, 7);
  md::write_idx(dir / "images", split.images);
  md::write_idx(dir / "labels", split.labels);
  const md::Dataset full = md::load_idx_dataset(dir / "images", dir / "labels");
  const md::Dataset head = full.head(4);
  EXPECT_EQ(head.size, 4);
  EXPECT_EQ(head.num_classes, full.num_classes);
  EXPECT_EQ(head.images, std::vector<float>(full.images.begin(), full.images.begin() + 48));
  EXPECT_EQ(head.labels, std::vector<int32_t>(full.labels.begin(), full.labels.begin() + 4));
  EXPECT_THROW(full.head(10), meganeura::Error);
}
