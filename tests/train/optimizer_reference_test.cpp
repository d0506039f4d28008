// The Trainer's updates against a host reference in double precision over several steps: gradients
// from the reference interpreter, then the schedule, accumulation, clipping and the optimizer maths
// written out here (momentum, Adam bias correction, AdamW decoupled decay).
#include <cmath>
#include <map>

#include "meganeura/autodiff.h"
#include "meganeura/reference.h"
#include "meganeura/train.h"
#include "train/train_test_util.h"

namespace meganeura::train {
namespace {

using train_testing::synthetic_dataset;
using train_testing::tiny_mlp;
using Tensors = std::map<std::string, std::vector<double>>;

double relative_error(const std::vector<float>& got, const std::vector<double>& want) {
  EXPECT_EQ(got.size(), want.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return norm == 0 ? std::sqrt(diff) : std::sqrt(diff / norm);
}

// One optimizer's state and update, as the textbooks write them.
struct HostOptimizer {
  Optimizer optimizer;
  double clip = 0;
  Tensors m = {}, v = {};
  int64_t t = 0;

  void update(Tensors& params, Tensors grads, double lr) {
    ++t;
    if (clip > 0) {
      double total = 0;
      for (const auto& [name, g] : grads) for (double x : g) total += x * x;
      const double scale = std::min(1.0, clip / (std::sqrt(total) + 1e-6));
      for (auto& [name, g] : grads) for (double& x : g) x *= scale;
    }
    for (auto& [name, p] : params) {
      const std::vector<double>& g = grads.at(name);
      m[name].resize(p.size(), 0.0);
      v[name].resize(p.size(), 0.0);
      for (size_t i = 0; i < p.size(); ++i) {
        if (const auto* sgd = std::get_if<Sgd>(&optimizer)) {
          const double d = g[i] + sgd->weight_decay * p[i];
          m[name][i] = sgd->momentum * m[name][i] + d;
          p[i] -= lr * (sgd->momentum != 0 ? m[name][i] : d);
          continue;
        }
        double beta1, beta2, eps;
        if (const auto* adam = std::get_if<Adam>(&optimizer)) {
          beta1 = adam->beta1, beta2 = adam->beta2, eps = adam->eps;
        } else {
          const auto& adamw = std::get<AdamW>(optimizer);
          beta1 = adamw.beta1, beta2 = adamw.beta2, eps = adamw.eps;
          p[i] -= lr * adamw.weight_decay * p[i];  // decoupled: not part of the moments
        }
        m[name][i] = beta1 * m[name][i] + (1 - beta1) * g[i];
        v[name][i] = beta2 * v[name][i] + (1 - beta2) * g[i] * g[i];
        const double m_hat = m[name][i] / (1 - std::pow(beta1, static_cast<double>(t)));
        const double v_hat = v[name][i] / (1 - std::pow(beta2, static_cast<double>(t)));
        p[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
      }
    }
  }
};

double base_lr(const Optimizer& optimizer) { return std::visit([](const auto& o) { return o.lr; }, optimizer); }

// Trains two epochs (odd batch count, so accumulation meets a short last step) and checks every
// step's learning rate, loss and parameters against the host.
void check_against_host(TrainConfig config) {
  const int64_t batch = 4;
  const data::Dataset dataset = synthetic_dataset(20, 11);  // 5 batches per epoch
  const data::LoaderOptions loader_options{.batch_size = batch, .seed = 5};
  const Graph graph = tiny_mlp(batch);
  const GradientGraph backward = differentiate(graph);

  Session session = build_session(graph, {.seed = 3});
  config.progress = Progress::off;
  Trainer trainer(session, config);
  Tensors params;
  for (const std::string& name : session.parameter_names()) {
    const std::vector<float> values = session.read_parameter(name);
    params[name] = std::vector<double>(values.begin(), values.end());
  }
  HostOptimizer host{config.optimizer, config.clip_global_norm};
  data::DataLoader host_loader(dataset, loader_options);
  const int64_t k = config.accumulation_steps;
  const int64_t total = 2 * ((host_loader.batches_per_epoch() + k - 1) / k);

  int64_t checked = 0;
  trainer.on_step([&](const StepInfo& info) {
    const double lr = learning_rate_at(config.schedule, base_lr(config.optimizer), info.step - 1, total);
    EXPECT_NEAR(info.learning_rate, lr, 1e-12) << "step " << info.step;
    // The same micro-batches the trainer took: up to k of what is left in the epoch.
    Tensors grads;
    double loss = 0;
    int64_t micro = 0;
    data::Batch b;
    for (; micro < k && host_loader.position().batch < host_loader.batches_per_epoch(); ++micro) {
      host_loader.next(b);
      reference::Feeds feeds = params;
      feeds["x"] = std::vector<double>(b.images.begin(), b.images.end());
      feeds["labels"] = std::vector<double>(b.labels.begin(), b.labels.end());
      const reference::Values values = reference::run(backward.graph, feeds);
      loss += values[graph.outputs()[0]][0];
      for (const auto& [name, id] : backward.gradients) {
        grads[name].resize(values[id].size(), 0.0);
        for (size_t i = 0; i < values[id].size(); ++i) grads[name][i] += values[id][i];
      }
    }
    if (host_loader.position().batch == host_loader.batches_per_epoch()) host_loader.next(b);
    for (auto& [name, g] : grads) for (double& x : g) x /= static_cast<double>(micro);
    EXPECT_NEAR(info.loss, loss / static_cast<double>(micro), 1e-5 * std::abs(loss)) << "step " << info.step;
    host.update(params, grads, lr);
    for (const auto& [name, want] : params) {
      EXPECT_LE(relative_error(session.read_parameter(name), want), 2e-5) << name << " after step " << info.step;
    }
    ++checked;
  });
  data::DataLoader loader(dataset, loader_options);
  const History history = trainer.train(loader, 2);
  EXPECT_EQ(checked, total);
  EXPECT_EQ(static_cast<int64_t>(history.losses.size()), total);
  ASSERT_EQ(history.epochs.size(), 2u);
}

TEST(TrainerReference, SgdWithMomentumAndWeightDecay) {
  TrainConfig config;
  config.optimizer = Sgd{.lr = 0.2, .momentum = 0.9, .weight_decay = 0.01};
  check_against_host(config);
}

TEST(TrainerReference, AdamBiasCorrection) {
  TrainConfig config;
  config.optimizer = Adam{.lr = 0.02, .beta1 = 0.8, .beta2 = 0.99};
  check_against_host(config);
}

TEST(TrainerReference, AdamWDecoupledDecay) {
  TrainConfig config;
  config.optimizer = AdamW{.lr = 0.02, .weight_decay = 0.5};
  check_against_host(config);
}

TEST(TrainerReference, ClippingByGlobalNorm) {
  TrainConfig config;
  config.optimizer = Sgd{.lr = 0.5, .momentum = 0.5};
  config.clip_global_norm = 0.05;  // far below the gradients' norm: every step is clipped
  check_against_host(config);
}

TEST(TrainerReference, WarmupAndCosineSchedule) {
  TrainConfig config;
  config.optimizer = Adam{.lr = 0.05};
  config.schedule = {.warmup_steps = 3, .cosine = true, .min_lr_ratio = 0.1};
  check_against_host(config);
}

TEST(TrainerReference, GradientAccumulationIsTheMeanOverMicroBatches) {
  TrainConfig config;
  config.optimizer = AdamW{.lr = 0.03, .weight_decay = 0.1};
  config.accumulation_steps = 2;  // 5 batches an epoch: steps of 2, 2 and 1 micro-batches
  config.clip_global_norm = 0.5;
  check_against_host(config);
}

TEST(Schedule, HandValues) {
  const Schedule warmup{.warmup_steps = 4};
  EXPECT_DOUBLE_EQ(learning_rate_at(warmup, 0.1, 0, 100), 0.025);
  EXPECT_DOUBLE_EQ(learning_rate_at(warmup, 0.1, 3, 100), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate_at(warmup, 0.1, 50, 100), 0.1);
  const Schedule cosine{.cosine = true};
  EXPECT_DOUBLE_EQ(learning_rate_at(cosine, 0.1, 0, 10), 0.1);
  EXPECT_NEAR(learning_rate_at(cosine, 0.1, 5, 10), 0.05, 1e-15);
  EXPECT_NEAR(learning_rate_at(cosine, 0.1, 10, 10), 0.0, 1e-15);
  const Schedule both{.warmup_steps = 2, .cosine = true, .decay_steps = 4, .min_lr_ratio = 0.5};
  EXPECT_DOUBLE_EQ(learning_rate_at(both, 0.2, 1, 0), 0.2);
  EXPECT_NEAR(learning_rate_at(both, 0.2, 4, 0), 0.15, 1e-15);  // halfway down to 0.1
  EXPECT_DOUBLE_EQ(learning_rate_at(both, 0.2, 9, 0), 0.1);
  EXPECT_THROW(learning_rate_at(both, 0.2, -1, 0), Error);
}

}  // namespace
}  // namespace meganeura::train
