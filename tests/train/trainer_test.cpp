// The Trainer end to end on a tiny MLP: the loss falls, runs are deterministic, a resumed run equals
// the uninterrupted one, evaluation counts only real rows, progress output, configuration errors.
#include <cmath>
#include <sstream>

#include "meganeura/error.h"
#include "meganeura/reference.h"
#include "meganeura/safetensors.h"
#include "meganeura/train.h"
#include "train/train_test_util.h"

namespace meganeura::train {
namespace {

using train_testing::synthetic_dataset;
using train_testing::TempDir;
using train_testing::tiny_mlp;

TrainConfig quiet(TrainConfig config) {
  config.progress = Progress::off;
  return config;
}

TEST(Trainer, LossFallsAndRunsAreDeterministic) {
  const data::Dataset dataset = synthetic_dataset(64, 3);
  auto run = [&] {
    Session session = build_session(tiny_mlp(8), {.seed = 9});
    Trainer trainer(session, quiet({.optimizer = Adam{.lr = 0.05}}));
    data::DataLoader loader(dataset, {.batch_size = 8, .seed = 4});
    History history = trainer.train(loader, 12);
    data::DataLoader all(dataset, {.batch_size = 8, .shuffle = false});
    return std::make_pair(history, trainer.evaluate(all));
  };
  const auto [history, evaluation] = run();
  ASSERT_EQ(history.epochs.size(), 12u);
  ASSERT_EQ(history.losses.size(), 12u * 8u);
  EXPECT_LT(history.epochs.back().mean_loss, 0.6 * history.epochs.front().mean_loss);
  EXPECT_GT(evaluation.accuracy, 0.75);
  EXPECT_EQ(evaluation.samples, 64);
  for (const EpochInfo& epoch : history.epochs) {
    EXPECT_EQ(epoch.steps, 8);
    EXPECT_EQ(epoch.samples, 64);
    EXPECT_GT(epoch.samples_per_second, 0);
  }
  const auto [again, evaluation_again] = run();
  EXPECT_EQ(again.losses, history.losses);
  EXPECT_EQ(evaluation_again.accuracy, evaluation.accuracy);
}

// Trains `epochs` epochs, or stops after `stop_after` steps and saves a checkpoint.
Session tiny_session(uint64_t seed, double dropout) {
  Session session = build_session(tiny_mlp(4, dropout), {.seed = seed});
  if (dropout > 0) {
    const int32_t dropout_seed = 77;
    session.set_input("dropout_seed", std::span<const int32_t>(&dropout_seed, 1));
  }
  return session;
}

std::vector<float> run_until(const TrainConfig& config, double dropout, const data::Dataset& dataset, int64_t epochs,
                             int64_t stop_after, const std::filesystem::path& checkpoint,
                             std::map<std::string, std::vector<float>>* final_parameters) {
  Session session = tiny_session(21, dropout);
  Trainer trainer(session, quiet(config));
  data::DataLoader loader(dataset, {.batch_size = 4, .pad_last = true, .seed = 8});
  if (stop_after > 0) {
    trainer.on_step([&](const StepInfo& info) {
      if (info.step == stop_after) trainer.request_stop();
    });
  }
  History history = trainer.train(loader, epochs);
  if (stop_after > 0) trainer.save_checkpoint(checkpoint, loader);
  if (final_parameters) {
    for (const std::string& name : session.parameter_names()) (*final_parameters)[name] = session.read_parameter(name);
  }
  return history.losses;
}

void check_resume(const TrainConfig& config, int64_t stop_after, double dropout = 0.0) {
  TempDir dir;
  const data::Dataset dataset = synthetic_dataset(22, 6);  // 6 batches an epoch, the last one padded
  std::map<std::string, std::vector<float>> uninterrupted_parameters;
  const std::vector<float> uninterrupted =
      run_until(config, dropout, dataset, 3, 0, {}, &uninterrupted_parameters);
  const std::vector<float> first =
      run_until(config, dropout, dataset, 3, stop_after, dir / "ckpt.safetensors", nullptr);
  ASSERT_EQ(static_cast<int64_t>(first.size()), stop_after);

  // A fresh session with other initial weights and a fresh loader: everything comes from the file.
  Session session = tiny_session(999, dropout);
  Trainer trainer(session, quiet(config));
  data::DataLoader loader(dataset, {.batch_size = 4, .pad_last = true, .seed = 8});
  trainer.load_checkpoint(dir / "ckpt.safetensors", loader);
  EXPECT_EQ(trainer.step(), stop_after);
  const History rest = trainer.train(loader, 3);

  std::vector<float> resumed = first;
  resumed.insert(resumed.end(), rest.losses.begin(), rest.losses.end());
  EXPECT_EQ(resumed, uninterrupted);  // bit for bit
  for (const auto& [name, values] : uninterrupted_parameters) {
    EXPECT_EQ(session.read_parameter(name), values) << name;
  }
}

TEST(Checkpoint, ResumedAdamRunEqualsTheUninterruptedOne) {
  TrainConfig config{.optimizer = Adam{.lr = 0.03}, .schedule = {.warmup_steps = 2, .cosine = true}};
  check_resume(config, 8);  // stops in the middle of the second epoch
}

TEST(Checkpoint, ResumedSgdRunWithAccumulationEqualsTheUninterruptedOne) {
  TrainConfig config{.optimizer = Sgd{.lr = 0.1, .momentum = 0.9}, .clip_global_norm = 1.0};
  config.accumulation_steps = 4;  // 6 batches an epoch: steps of 4 and 2
  check_resume(config, 3);
}

TEST(Checkpoint, ResumedRunDrawsTheSameDropoutMasks) {
  // The trainer feeds the micro-step count to the graph's "step" input and checkpoints it, so the
  // masks after a resume are the ones the uninterrupted run drew.
  TrainConfig config{.optimizer = AdamW{.lr = 0.02}};
  check_resume(config, 5, /*dropout=*/0.3);
}

TEST(Trainer, DropoutStepChangesTheMaskEveryStep) {
  // Same batch twice with lr 0: equal losses would mean the same mask, i.e. a step input left alone.
  const data::Dataset dataset = synthetic_dataset(4, 2);
  Session session = tiny_session(3, 0.5);
  Trainer trainer(session, quiet({.optimizer = Sgd{.lr = 0}}));
  data::DataLoader loader(dataset, {.batch_size = 4, .shuffle = false});
  const History history = trainer.train(loader, 2);
  ASSERT_EQ(history.losses.size(), 2u);
  EXPECT_NE(history.losses[0], history.losses[1]);
}

TEST(Checkpoint, FileHoldsParametersStateAndCounters) {
  TempDir dir;
  const data::Dataset dataset = synthetic_dataset(16, 2);
  Session session = build_session(tiny_mlp(4), {.seed = 1});
  Trainer trainer(session, quiet({.optimizer = AdamW{.lr = 0.01}}));
  data::DataLoader loader(dataset, {.batch_size = 4, .seed = 3});
  trainer.on_step([&](const StepInfo& info) {
    if (info.step == 2) trainer.request_stop();
  });
  trainer.train(loader, 1);
  trainer.save_checkpoint(dir / "c.safetensors", loader);

  const SafeTensorsFile file = SafeTensorsFile::open((dir / "c.safetensors").string());
  EXPECT_EQ(file.metadata().at("step"), "2");
  EXPECT_EQ(file.metadata().at("loader"), (data::LoaderPosition{3, 0, 2}.to_string()));
  EXPECT_EQ(file.tensor("fc1.weight").shape, (std::vector<int64_t>{5, 6}));
  EXPECT_EQ(file.to_f32("fc1.weight"), session.read_parameter("fc1.weight"));
  const auto state = session.read_optimizer_state();
  EXPECT_EQ(file.to_f32("optimizer_state.fc2.bias.v"), state.at("fc2.bias.v"));
  EXPECT_EQ(file.to_f32("optimizer_state.optimizer.scalars"), state.at("optimizer.scalars"));
  // Plain parameter loading reads a checkpoint too.
  Session other = build_session(tiny_mlp(4), {.seed = 2});
  other.load_parameters((dir / "c.safetensors").string());
  EXPECT_EQ(other.read_parameter("fc2.weight"), session.read_parameter("fc2.weight"));
}

TEST(Checkpoint, MismatchesAreClearErrors) {
  TempDir dir;
  const data::Dataset dataset = synthetic_dataset(8, 2);
  Session session = build_session(tiny_mlp(4), {.seed = 1});
  Trainer adam(session, quiet({.optimizer = Adam{}}));
  data::DataLoader loader(dataset, {.batch_size = 4, .seed = 3});
  adam.train(loader, 1);
  adam.save_checkpoint(dir / "adam.safetensors", loader);
  session.save_parameters((dir / "plain.safetensors").string());

  Session fresh = build_session(tiny_mlp(4), {.seed = 1});
  Trainer sgd(fresh, quiet({.optimizer = Sgd{}}));
  try {
    sgd.load_checkpoint(dir / "adam.safetensors", loader);
    FAIL() << "an Adam checkpoint loaded into an SGD trainer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("adam"), std::string::npos) << e.what();
  }
  Trainer adam_again(fresh, quiet({.optimizer = Adam{}}));
  data::DataLoader other_seed(dataset, {.batch_size = 4, .seed = 4});
  EXPECT_THROW(adam_again.load_checkpoint(dir / "adam.safetensors", other_seed), Error);
  try {
    adam_again.load_checkpoint(dir / "plain.safetensors", loader);
    FAIL() << "a plain parameter file loaded as a checkpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a trainer checkpoint"), std::string::npos) << e.what();
  }
}

TEST(Trainer, EvaluateCountsOnlyRealRowsOfAPaddedBatch) {
  const data::Dataset dataset = synthetic_dataset(10, 12);  // batches of 4: 4, 4 and 2 real + 2 padding
  const Graph graph = tiny_mlp(4);
  Session session = build_session(graph, {.seed = 5});
  Trainer trainer(session, quiet({}));
  data::DataLoader loader(dataset, {.batch_size = 4, .shuffle = false, .pad_last = true});
  const Evaluation got = trainer.evaluate(loader);

  reference::Feeds feeds;
  for (const std::string& name : session.parameter_names()) {
    const auto values = session.read_parameter(name);
    feeds[name] = std::vector<double>(values.begin(), values.end());
  }
  double loss = 0;
  int64_t correct = 0;
  for (int64_t first = 0; first < 10; first += 4) {
    feeds["x"].assign(4 * 6, 0.0);
    feeds["labels"].assign(4, 0.0);
    for (int64_t r = 0; r < 4; ++r) {
      const int64_t sample = (first + r) % 10;
      for (int64_t f = 0; f < 6; ++f) feeds["x"][r * 6 + f] = dataset.images[sample * 6 + f];
      feeds["labels"][r] = dataset.labels[sample];
    }
    const auto values = reference::run(graph, feeds);
    const std::vector<double>& logits = values[graph.outputs()[1]];
    for (int64_t r = 0; r < std::min<int64_t>(4, 10 - first); ++r) {
      const double* z = logits.data() + r * 3;
      const int64_t label = dataset.labels[first + r];
      const int64_t best = std::max_element(z, z + 3) - z;
      correct += best == label;
      loss += std::log(std::exp(z[0]) + std::exp(z[1]) + std::exp(z[2])) - z[label];
    }
  }
  EXPECT_EQ(got.samples, 10);
  EXPECT_NEAR(got.loss, loss / 10, 1e-5);
  EXPECT_DOUBLE_EQ(got.accuracy, static_cast<double>(correct) / 10);
}

TEST(Trainer, ProgressLinesAndBar) {
  const data::Dataset dataset = synthetic_dataset(12, 1);
  Session session = build_session(tiny_mlp(4), {.seed = 1});
  std::ostringstream lines;
  TrainConfig config{.optimizer = Adam{}, .log_interval = 2, .progress = Progress::lines, .out = &lines};
  Trainer trainer(session, config);
  data::DataLoader loader(dataset, {.batch_size = 4, .seed = 1});
  trainer.train(loader, 2);
  const std::string text = lines.str();
  EXPECT_NE(text.find("epoch 1/2 step 2/3 loss "), std::string::npos) << text;
  EXPECT_NE(text.find("epoch 2/2 step 3/3 loss "), std::string::npos) << text;
  EXPECT_NE(text.find("samples/s  ETA "), std::string::npos) << text;
  EXPECT_NE(text.find("epoch 2/2 done: mean loss "), std::string::npos) << text;
  EXPECT_EQ(text.find('\r'), std::string::npos);

  std::ostringstream bar;
  config.progress = Progress::bar;
  config.out = &bar;
  Trainer bar_trainer(session, config);
  bar_trainer.train(loader, 3);  // the loader stands at epoch 2: one more epoch
  // The first and last steps of an epoch are always drawn; those between at most ten times a second.
  EXPECT_NE(bar.str().find("\repoch 3/3 [########................] 1/3 loss "), std::string::npos) << bar.str();
  EXPECT_NE(bar.str().find("\repoch 3/3 [########################] 3/3 loss "), std::string::npos) << bar.str();
  EXPECT_NE(bar.str().find("epoch 3/3 done"), std::string::npos) << bar.str();
}

TEST(Trainer, CallbacksSeeEveryStepAndEpoch) {
  const data::Dataset dataset = synthetic_dataset(12, 1);
  Session session = build_session(tiny_mlp(4), {.seed = 1});
  Trainer trainer(session, quiet({.optimizer = Sgd{.lr = 0.1}}));
  std::vector<int64_t> steps, epochs;
  std::vector<float> losses;
  trainer.on_step([&](const StepInfo& info) {
    steps.push_back(info.step);
    losses.push_back(info.loss);
  });
  trainer.on_epoch([&](const EpochInfo& info) { epochs.push_back(info.epoch); });
  data::DataLoader loader(dataset, {.batch_size = 4, .seed = 1});
  const History history = trainer.train(loader, 2);
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(epochs, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(losses, history.losses);
  EXPECT_FLOAT_EQ(history.epochs[1].mean_loss, (losses[3] + losses[4] + losses[5]) / 3);
}

TEST(Trainer, ConfigurationErrors) {
  Session session = build_session(tiny_mlp(4), {.seed = 1});
  EXPECT_THROW(Trainer(session, quiet({.accumulation_steps = 0})), Error);
  EXPECT_THROW(Trainer(session, quiet({.optimizer = Sgd{.lr = -1}})), Error);
  EXPECT_THROW(Trainer(session, quiet({.clip_global_norm = -1})), Error);
  Session inference = build_inference_session(tiny_mlp(4));
  try {
    Trainer trainer(inference, quiet({}));
    FAIL() << "an inference session accepted a trainer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("build_session"), std::string::npos) << e.what();
  }
  // A batch of the wrong size names the shapes.
  const data::Dataset dataset = synthetic_dataset(12, 1);
  Trainer trainer(session, quiet({}));
  data::DataLoader loader(dataset, {.batch_size = 3, .seed = 1});
  try {
    trainer.train(loader, 1);
    FAIL() << "a batch of 3 fed a session built for 4";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has 3 rows"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace meganeura::train
