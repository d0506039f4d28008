// Shared pieces of the trainer tests: a learnable synthetic dataset, a tiny MLP, a temp folder.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>

#include "meganeura/data.h"
#include "support/temp_dir.h"
#include "meganeura/graph.h"
#include "meganeura/nn.h"
#include "meganeura/session.h"

namespace meganeura::train_testing {

constexpr int64_t kFeatures = 6;
constexpr int64_t kClasses = 3;

// Random features in [0, 1); the label is the argmax of a fixed random projection, so a small MLP
// can learn it.
inline data::Dataset synthetic_dataset(int64_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> projection(kFeatures * kClasses);
  for (float& w : projection) w = normal(rng);
  data::Dataset dataset;
  dataset.size = size;
  dataset.features = kFeatures;
  dataset.num_classes = kClasses;
  dataset.image_shape = {kFeatures};
  for (int64_t i = 0; i < size; ++i) {
    float best = -1e30f;
    int32_t label = 0;
    std::vector<float> row(kFeatures);
    for (float& v : row) v = uniform(rng);
    for (int32_t c = 0; c < kClasses; ++c) {
      float score = 0;
      for (int64_t f = 0; f < kFeatures; ++f) score += row[f] * projection[c * kFeatures + f];
      if (score > best) best = score, label = c;
    }
    dataset.images.insert(dataset.images.end(), row.begin(), row.end());
    dataset.labels.push_back(label);
  }
  return dataset;
}

// A random batch of 4 for tiny_mlp(4): features in [-1, 1), labels among the classes.
inline void feed_random_batch(Session& session, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> x(4 * kFeatures);
  for (float& v : x) v = uniform(rng);
  std::vector<int32_t> labels(4);
  for (int32_t& l : labels) l = static_cast<int32_t>(rng() % kClasses);
  session.set_input("x", std::span<const float>(x));
  session.set_input("labels", std::span<const int32_t>(labels));
}

// x [batch, 6] → relu(fc1, 5) → fc2 → logits [batch, 3]; outputs loss and logits. With dropout > 0
// the hidden layer goes through dropout(seed = input "dropout_seed", step = input "step").
inline Graph tiny_mlp(int64_t batch, double dropout = 0.0) {
  Graph g;
  Tensor x = g.input("x", {batch, kFeatures});
  Tensor labels = g.input("labels", {batch}, DType::i32);
  nn::Linear fc1(g, "fc1", kFeatures, 5, true);
  nn::Linear fc2(g, "fc2", 5, kClasses, true);
  Tensor hidden = g.relu(fc1.forward(g, x));
  if (dropout > 0) {
    hidden = g.dropout(hidden, g.input("dropout_seed", {}, DType::i32), g.input("step", {}, DType::i32), dropout);
  }
  Tensor logits = fc2.forward(g, hidden);
  g.set_outputs({g.cross_entropy_loss(logits, labels), logits});
  return g;
}

using ::TempDir;  // tests/support/temp_dir.h

}  // namespace meganeura::train_testing
