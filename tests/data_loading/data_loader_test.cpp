// DataLoader: seeded order, batching, label formats and resumable positions.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "meganeura/data.h"
#include "meganeura/error.h"

namespace md = meganeura::data;

namespace {

// Random pixels, with the sample's index encoded in its first feature so batches can be traced back.
md::Dataset make_dataset(int64_t size, int64_t features, int64_t classes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  md::Dataset dataset;
  dataset.size = size;
  dataset.features = features;
  dataset.num_classes = classes;
  dataset.image_shape = {features};
  dataset.images.resize(static_cast<size_t>(size * features));
  for (auto& value : dataset.images) value = pixel(rng);
  dataset.labels.resize(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) {
    dataset.images[static_cast<size_t>(i * features)] = static_cast<float>(i);
    dataset.labels[static_cast<size_t>(i)] = static_cast<int32_t>(rng() % classes);
  }
  return dataset;
}

std::vector<int64_t> sample_ids(const md::Batch& batch) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < batch.size; ++i) ids.push_back(static_cast<int64_t>(batch.images[i * batch.features]));
  return ids;
}

// The sample ids of every batch of one epoch.
std::vector<std::vector<int64_t>> one_epoch(md::DataLoader& loader) {
  std::vector<std::vector<int64_t>> batches;
  md::Batch batch;
  while (loader.next(batch)) batches.push_back(sample_ids(batch));
  return batches;
}

}  // namespace

TEST(DataLoader, SameSeedGivesSameOrder) {
  const md::Dataset data = make_dataset(53, 5, 4, 1);
  md::DataLoader a(data, {.batch_size = 8, .seed = 42});
  md::DataLoader b(data, {.batch_size = 8, .seed = 42});
  for (int epoch = 0; epoch < 3; ++epoch) EXPECT_EQ(one_epoch(a), one_epoch(b)) << "epoch " << epoch;
}

TEST(DataLoader, DifferentSeedsGiveDifferentOrders) {
  const md::Dataset data = make_dataset(53, 5, 4, 2);
  md::DataLoader a(data, {.batch_size = 8, .seed = 1});
  md::DataLoader b(data, {.batch_size = 8, .seed = 2});
  EXPECT_NE(one_epoch(a), one_epoch(b));
}

TEST(DataLoader, EachEpochIsReshuffled) {
  const md::Dataset data = make_dataset(53, 5, 4, 3);
  md::DataLoader loader(data, {.batch_size = 8, .seed = 9});
  const auto first = one_epoch(loader);
  const auto second = one_epoch(loader);
  EXPECT_NE(first, second);
  EXPECT_EQ(loader.epoch_order(0), md::DataLoader(data, {.batch_size = 8, .seed = 9}).epoch_order(0));
}

TEST(DataLoader, VisitsEverySampleOncePerEpoch) {
  const md::Dataset data = make_dataset(53, 5, 4, 4);
  md::DataLoader loader(data, {.batch_size = 8, .seed = 5});
  EXPECT_EQ(loader.batches_per_epoch(), 7);
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::vector<int64_t> seen;
    const auto batches = one_epoch(loader);
    ASSERT_EQ(batches.size(), 7u);
    for (size_t b = 0; b < batches.size(); ++b) {
      EXPECT_EQ(batches[b].size(), b + 1 < batches.size() ? 8u : 5u);
      seen.insert(seen.end(), batches[b].begin(), batches[b].end());
    }
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(53);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(seen, all);
  }
}

TEST(DataLoader, BatchesCarryTheSamplesPixelsAndLabels) {
  const md::Dataset data = make_dataset(30, 6, 3, 5);
  md::DataLoader loader(data, {.batch_size = 7, .seed = 11});
  md::Batch batch;
  int64_t index = 0;
  while (loader.next(batch)) {
    EXPECT_EQ(batch.valid, batch.size);
    EXPECT_EQ(batch.epoch, 0);
    EXPECT_EQ(batch.index, index++);
    ASSERT_EQ(batch.images.size(), static_cast<size_t>(batch.size * 6));
    for (int64_t i = 0; i < batch.size; ++i) {
      const auto sample = static_cast<int64_t>(batch.images[i * 6]);
      for (int64_t f = 0; f < 6; ++f) EXPECT_EQ(batch.images[i * 6 + f], data.images[sample * 6 + f]);
      EXPECT_EQ(batch.labels[i], data.labels[sample]);
    }
    EXPECT_TRUE(batch.one_hot.empty());
  }
}

TEST(DataLoader, DropLastSkipsThePartialBatch) {
  const md::Dataset data = make_dataset(53, 5, 4, 6);
  md::DataLoader loader(data, {.batch_size = 8, .drop_last = true, .seed = 3});
  EXPECT_EQ(loader.batches_per_epoch(), 6);
  const auto batches = one_epoch(loader);
  ASSERT_EQ(batches.size(), 6u);
  for (const auto& batch : batches) EXPECT_EQ(batch.size(), 8u);
}

TEST(DataLoader, PadLastFillsTheFinalBatchFromTheEpochStart) {
  const md::Dataset data = make_dataset(10, 3, 2, 12);
  md::DataLoader loader(data, {.batch_size = 4, .pad_last = true, .seed = 5});
  const std::vector<int64_t> order = loader.epoch_order(0);
  const auto batches = one_epoch(loader);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[2], (std::vector<int64_t>{order[8], order[9], order[0], order[1]}));

  md::DataLoader again(data, {.batch_size = 4, .pad_last = true, .seed = 5});
  md::Batch batch;
  std::vector<int64_t> valid;
  while (again.next(batch)) {
    EXPECT_EQ(batch.size, 4);
    valid.push_back(batch.valid);
  }
  EXPECT_EQ(valid, (std::vector<int64_t>{4, 4, 2}));

  // A batch larger than the dataset cycles through it.
  md::DataLoader wide(data, {.batch_size = 25, .pad_last = true, .seed = 5});
  ASSERT_TRUE(wide.next(batch));
  EXPECT_EQ(batch.size, 25);
  EXPECT_EQ(batch.valid, 10);
  const auto ids = sample_ids(batch);
  for (int64_t i = 0; i < 25; ++i) EXPECT_EQ(ids[i], order[i % 10]);
  EXPECT_FALSE(wide.next(batch));
}

TEST(DataLoader, WithoutShuffleVisitsInOrder) {
  const md::Dataset data = make_dataset(10, 2, 2, 7);
  md::DataLoader loader(data, {.batch_size = 4, .shuffle = false});
  EXPECT_EQ(one_epoch(loader), (std::vector<std::vector<int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}}));
  EXPECT_EQ(one_epoch(loader), (std::vector<std::vector<int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}}));
}

TEST(DataLoader, OneHotLabelsMarkTheClass) {
  const md::Dataset data = make_dataset(25, 3, 7, 8);
  md::DataLoader loader(data, {.batch_size = 6, .seed = 4, .labels = md::LabelFormat::one_hot});
  md::Batch batch;
  int64_t rows = 0;
  while (loader.next(batch)) {
    ASSERT_EQ(batch.num_classes, 7);
    ASSERT_EQ(batch.one_hot.size(), static_cast<size_t>(batch.size * 7));
    for (int64_t i = 0; i < batch.size; ++i, ++rows) {
      for (int64_t c = 0; c < 7; ++c) {
        EXPECT_EQ(batch.one_hot[i * 7 + c], c == batch.labels[i] ? 1.0f : 0.0f);
      }
    }
  }
  EXPECT_EQ(rows, 25);
}

TEST(DataLoader, ResumedRunEqualsUninterruptedRun) {
  const md::Dataset data = make_dataset(41, 4, 5, 9);
  const md::LoaderOptions options{.batch_size = 6, .seed = 1234, .labels = md::LabelFormat::one_hot};

  // Uninterrupted: 3 epochs.
  std::vector<std::vector<int64_t>> expected;
  std::vector<std::vector<float>> expected_one_hot;
  {
    md::DataLoader loader(data, options);
    md::Batch batch;
    for (int epoch = 0; epoch < 3; ++epoch) {
      while (loader.next(batch)) {
        expected.push_back(sample_ids(batch));
        expected_one_hot.push_back(batch.one_hot);
      }
    }
  }

  // Interrupted in the middle of epoch 1, the position saved as text, then a new loader resumes.
  std::vector<std::vector<int64_t>> got;
  std::vector<std::vector<float>> got_one_hot;
  std::string saved;
  {
    md::DataLoader loader(data, options);
    md::Batch batch;
    while (loader.next(batch)) got.push_back(sample_ids(batch)), got_one_hot.push_back(batch.one_hot);
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(loader.next(batch));
      got.push_back(sample_ids(batch));
      got_one_hot.push_back(batch.one_hot);
    }
    saved = loader.position().to_string();
  }
  EXPECT_EQ(saved, "seed=1234 epoch=1 batch=3");
  md::DataLoader resumed(data, options);
  resumed.restore(md::LoaderPosition::parse(saved));
  md::Batch batch;
  for (int epochs_left = 2; epochs_left > 0; --epochs_left) {
    while (resumed.next(batch)) got.push_back(sample_ids(batch)), got_one_hot.push_back(batch.one_hot);
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(got_one_hot, expected_one_hot);
  EXPECT_EQ(resumed.position(), (md::LoaderPosition{1234, 3, 0}));
}

TEST(DataLoader, RestoreRejectsForeignPositions) {
  const md::Dataset data = make_dataset(20, 2, 2, 10);
  md::DataLoader loader(data, {.batch_size = 5, .seed = 7});
  EXPECT_THROW(loader.restore({.seed = 8, .epoch = 0, .batch = 0}), meganeura::Error);
  EXPECT_THROW(loader.restore({.seed = 7, .epoch = 0, .batch = 5}), meganeura::Error);
  EXPECT_THROW(md::LoaderPosition::parse("seed=7 epoch=x batch=1"), meganeura::Error);
  EXPECT_THROW(md::LoaderPosition::parse("seed=7 epoch=1"), meganeura::Error);
  EXPECT_THROW(md::LoaderPosition::parse("seed=7 epoch=1 batch=2 extra"), meganeura::Error);
}

TEST(DataLoader, RejectsBadOptions) {
  const md::Dataset data = make_dataset(10, 2, 3, 11);
  EXPECT_THROW(md::DataLoader(data, {.batch_size = 0}), meganeura::Error);
  EXPECT_THROW(md::DataLoader(data, {.batch_size = 11, .drop_last = true}), meganeura::Error);
  EXPECT_THROW(md::DataLoader(data, {.batch_size = 3, .drop_last = true, .pad_last = true}), meganeura::Error);
  md::Dataset wrong = data;
  wrong.num_classes = 1;
  EXPECT_THROW(md::DataLoader(wrong, {.labels = md::LabelFormat::one_hot}), meganeura::Error);
}
