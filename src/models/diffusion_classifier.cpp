// The quick start's MLP as a judge of generated images: trained through the Trainer like the quick
// start, then run as an inference session over the samples.
#include "models/diffusion_classifier.h"

#include <algorithm>
#include <ostream>
#include <string>

#include "meganeura/error.h"
#include "meganeura/train.h"

namespace meganeura::models {
namespace {
constexpr int64_t kSide = 28;
constexpr int64_t kPaddedSide = 32;
constexpr int64_t kPad = (kPaddedSide - kSide) / 2;
constexpr int64_t kClasses = 10;
constexpr int64_t kClassifierBatch = 100;
}  // namespace

void train_classifier(const data::Dataset& images, int64_t epochs, uint64_t seed, const std::filesystem::path& path,
                      std::ostream& out) {
  if (images.features != kSide * kSide) {
    throw Error("train_classifier: the MLP reads 28x28 images, got " + std::to_string(images.features) +
                " pixels per image");
  }
  Session session = build_session(train::mnist_mlp(kClassifierBatch), {.seed = seed});
  train::TrainConfig config;
  config.optimizer = train::Adam{.lr = 1e-3};
  config.out = &out;
  config.progress = train::Progress::off;
  train::Trainer trainer(session, config);
  data::DataLoader loader(images, {.batch_size = kClassifierBatch, .drop_last = true, .seed = seed});
  if (loader.batches_per_epoch() == 0) {
    throw Error("train_classifier: " + std::to_string(images.size) + " training images make no batch of " +
                std::to_string(kClassifierBatch));
  }
  trainer.train(loader, epochs);
  session.save_parameters(path.string());
}

std::vector<float> classifier_inputs(std::span<const float> samples, int64_t count) {
  if (count < 1 || static_cast<int64_t>(samples.size()) != count * kPaddedSide * kPaddedSide) {
    throw Error("classifier_inputs: " + std::to_string(count) + " samples of 32x32 need " +
                std::to_string(count * kPaddedSide * kPaddedSide) + " values, got " + std::to_string(samples.size()));
  }
  std::vector<float> images(static_cast<size_t>(count * kSide * kSide));
  for (int64_t n = 0; n < count; ++n) {
    for (int64_t y = 0; y < kSide; ++y) {
      for (int64_t x = 0; x < kSide; ++x) {
        const float value = samples[(n * kPaddedSide + y + kPad) * kPaddedSide + x + kPad];
        images[(n * kSide + y) * kSide + x] = std::clamp((value + 1.0f) * 0.5f, 0.0f, 1.0f);
      }
    }
  }
  return images;
}

SampleClassifier::SampleClassifier(const std::filesystem::path& parameters, int64_t batch_size)
    : batch_size_(batch_size), session_(build_inference_session(train::mnist_mlp(batch_size))) {
  if (!std::filesystem::exists(parameters)) {
    throw Error("classifier parameters " + parameters.string() +
                " not found; train them with `meganeura train-mnist --save FILE` or leave the option out");
  }
  session_.load_parameters(parameters.string());
}

std::vector<int32_t> SampleClassifier::classify(std::span<const float> images) {
  constexpr int64_t kFeatures = kSide * kSide;
  if (images.size() % kFeatures != 0) {
    throw Error("SampleClassifier::classify: " + std::to_string(images.size()) +
                " values are not a whole number of 28x28 images");
  }
  const int64_t count = static_cast<int64_t>(images.size()) / kFeatures;
  std::vector<int32_t> predictions;
  predictions.reserve(static_cast<size_t>(count));
  std::vector<float> batch(static_cast<size_t>(batch_size_ * kFeatures), 0.0f);
  // The graph's loss needs labels; they do not affect the logits read here.
  const std::vector<int32_t> labels(static_cast<size_t>(batch_size_), 0);
  session_.set_input("labels", labels);
  for (int64_t first = 0; first < count; first += batch_size_) {
    const int64_t rows = std::min(batch_size_, count - first);
    std::fill(batch.begin(), batch.end(), 0.0f);
    std::copy_n(images.begin() + first * kFeatures, rows * kFeatures, batch.begin());
    session_.set_input("x", batch);
    session_.run();
    const std::vector<float> logits = session_.read_output(1);
    for (int64_t row = 0; row < rows; ++row) {
      const auto begin = logits.begin() + row * kClasses;
      predictions.push_back(static_cast<int32_t>(std::max_element(begin, begin + kClasses) - begin));
    }
  }
  return predictions;
}

}  // namespace meganeura::models
