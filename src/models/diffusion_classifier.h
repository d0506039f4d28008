// The objective check of a diffusion run: the quick start's Fashion-MNIST MLP (train::mnist_mlp)
// labels generated images, and the share labelled as the requested class measures how well the
// class conditioning worked (chance: 10%).
//
//   meganeura::models::train_classifier(mnist.train, 5, 1, "classifier.safetensors", std::cout);
//   meganeura::models::SampleClassifier classifier("classifier.safetensors", 100);
//   std::vector<int32_t> labels = classifier.classify(meganeura::models::classifier_inputs(samples, 100));
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <span>
#include <vector>

#include "meganeura/data.h"
#include "meganeura/session.h"

namespace meganeura::models {

// Trains the 784-128-10 MLP with Adam (1e-3, batch 100) for `epochs` on `images` (28×28, labels
// 0..9) and saves its parameters to `path`.
void train_classifier(const data::Dataset& images, int64_t epochs, uint64_t seed, const std::filesystem::path& path,
                      std::ostream& out);

// Generated 32×32 images in [−1, 1] → the classifier's inputs: the 28×28 centre (the padding
// cropped away) in [0, 1], as the data loader scales pixels.
std::vector<float> classifier_inputs(std::span<const float> samples, int64_t count);

class SampleClassifier {
 public:
  // The MLP's parameters from a safetensors file (train_classifier's, or `train-mnist --save`'s).
  SampleClassifier(const std::filesystem::path& parameters, int64_t batch_size);
  // images [n, 784] in [0, 1], any n (the last batch is padded) → the argmax class of each.
  std::vector<int32_t> classify(std::span<const float> images);

 private:
  int64_t batch_size_;
  Session session_;
};

}  // namespace meganeura::models
