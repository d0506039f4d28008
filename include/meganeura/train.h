// meganeura/train.h — a training loop over a Session: optimizer and learning-rate schedule, history,
// evaluation, progress output and resumable checkpoints.
//
//   auto mnist = meganeura::data::load_mnist(meganeura::data::kFashionMnistDir);
//   meganeura::Graph graph = meganeura::train::mnist_mlp(100);  // outputs: loss, logits
//   meganeura::Session session = meganeura::build_session(graph, {.seed = 1});
//
//   meganeura::train::TrainConfig config;
//   config.optimizer = meganeura::train::Adam{.lr = 1e-3};
//   config.schedule = {.warmup_steps = 100, .cosine = true};
//   meganeura::train::Trainer trainer(session, config);   // installs the optimizer
//
//   meganeura::data::DataLoader train_loader(mnist.train, {.batch_size = 100, .drop_last = true, .seed = 1});
//   meganeura::train::History history = trainer.train(train_loader, 5);   // until 5 epochs are done
//   trainer.save_checkpoint("run.safetensors", train_loader);             // resume with load_checkpoint
//
//   meganeura::data::DataLoader test_loader(mnist.test, {.batch_size = 100, .shuffle = false, .pad_last = true});
//   meganeura::train::Evaluation result = trainer.evaluate(test_loader);  // loss and accuracy
//
// The session's inputs have fixed shapes, so every batch must have the session's batch size: train
// with drop_last (or a dataset the batch size divides) and evaluate with pad_last; evaluation counts
// only the real rows of a padded batch (Batch::valid).
//
// Gradient accumulation (accumulation_steps = k > 1) is exact: k micro-batches each run forward and
// backward only (Session::compute_gradients), their gradients are averaged on the host, written back
// (Session::set_gradient) and one update runs (Session::apply_update). For a mean loss this is the
// gradient of the mean over all k·batch samples, so clipping and Adam's moments see exactly what one
// step on the large batch would see.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <string>
#include <variant>
#include <vector>

#include "meganeura/data.h"
#include "meganeura/graph.h"
#include "meganeura/session.h"

namespace meganeura::train {

// Optimizers (mapped onto OptimizerSpec). Weight decay of Sgd is L2 (added to the gradient); AdamW's
// is decoupled (subtracted from the weights, scaled by the learning rate).
struct Sgd {
  double lr = 0.01;
  double momentum = 0.0;
  double weight_decay = 0.0;
};
struct Adam {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};
struct AdamW {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};
using Optimizer = std::variant<Sgd, Adam, AdamW>;

// Learning rate at optimizer step t (0-based), with base rate `lr` and `total` steps in the run:
//   warm-up (t < warmup_steps):  lr · (t + 1) / warmup_steps
//   then, with cosine:           min + (lr − min) · ½(1 + cos(π · s / S)), s = t − warmup_steps,
//                                S = decay_steps (0: the rest of the run), min = lr · min_lr_ratio;
//                                the rate stays at min once s ≥ S
//   else:                        lr (constant)
struct Schedule {
  int64_t warmup_steps = 0;
  bool cosine = false;
  int64_t decay_steps = 0;
  double min_lr_ratio = 0.0;
};
double learning_rate_at(const Schedule& schedule, double lr, int64_t step, int64_t total_steps);

// Where the trainer feeds batches and finds the logits.
struct IoNames {
  std::string images = "x";        // f32 input [batch, features]
  std::string labels = "labels";   // i32 input [batch], or f32 [batch, classes] with one_hot_labels
  bool one_hot_labels = false;
  size_t logits_output = 1;        // index of the output [batch, classes] evaluate() reads
  // Optional i32 input set to the micro-step count before every forward pass (the `step` of a
  // dropout), so masks differ per step and a resumed run draws the same ones. Ignored when the
  // graph has no input of that name.
  std::string step = "step";
};

enum class Progress {
  automatic,  // a bar when the stream is std::cout on a terminal, else plain lines
  bar,
  lines,
  off,
};

// Data-parallel training (meganeura/distributed.h implements this over MPI): every replica runs the
// same Trainer, feeds its own rows of each batch and, before every update, replaces its gradients
// with their mean over all replicas. The loader's batch size is then the combined batch
// (world_size · the session's batch) and every replica walks the same order, so a run equals one
// process training on the combined batch, and checkpoints and schedules stay in step everywhere.
class GradientReducer {
 public:
  virtual ~GradientReducer() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Makes every replica's parameters equal to replica 0's; the Trainer calls it once, at the start.
  virtual void broadcast_parameters(Session& session) = 0;
  // Starts replacing `values` with their mean over the replicas; the reduction runs while the caller
  // reads the next gradients back from the GPU. `values` must stay alive and untouched until
  // finish_average(). Every replica starts the same sizes in the same order.
  virtual void start_average(std::vector<double>& values) = 0;
  // Waits until every started average is done; throws Error when a replica has failed instead of
  // waiting for ever.
  virtual void finish_average() = 0;
};

struct TrainConfig {
  Optimizer optimizer = Adam{};
  Schedule schedule = {};
  double clip_global_norm = 0.0;  // > 0: gradients scaled so their global L2 norm is at most this
  int64_t accumulation_steps = 1;  // micro-batches per optimizer step
  int64_t log_interval = 50;       // optimizer steps between progress lines (bar: redraws)
  Progress progress = Progress::automatic;
  std::ostream* out = nullptr;     // progress output; nullptr: std::cout
  IoNames io = {};
  // Total optimizer steps the schedule spans; 0: worked out by train() from its epochs and loader.
  int64_t total_steps = 0;
  // Data-parallel training when set (must outlive the trainer); nullptr: this process alone.
  GradientReducer* reducer = nullptr;
};

// The OptimizerSpec a config installs (learning rate from the optimizer, clipping from the config).
OptimizerSpec optimizer_spec(const TrainConfig& config);

struct StepInfo {
  int64_t step = 0;        // optimizer steps completed, this one included
  int64_t epoch = 0;       // 0-based
  int64_t batch = 0;       // index of the last micro-batch within the epoch
  int64_t batches_per_epoch = 0;
  float loss = 0;          // mean over the step's micro-batches
  double learning_rate = 0;
  double samples_per_second = 0;  // since the epoch started
  double eta_seconds = 0;         // until train() finishes, at this epoch's pace
};

struct EpochInfo {
  int64_t epoch = 0;
  double mean_loss = 0;
  int64_t steps = 0;
  int64_t samples = 0;
  double seconds = 0;
  double samples_per_second = 0;
};

struct History {
  std::vector<float> losses;        // one per optimizer step
  std::vector<EpochInfo> epochs;    // one per epoch finished (or stopped) in this call
};

struct Evaluation {
  double loss = 0;       // mean cross-entropy over the real samples, from the logits
  double accuracy = 0;   // fraction of real samples whose argmax logit is the label
  int64_t samples = 0;
};

class Trainer {
 public:
  // Installs the optimizer in the session (Session::set_optimizer). The session must outlive the
  // trainer; throws Error for a config that makes no sense (negative rates, accumulation < 1, ...).
  Trainer(Session& session, TrainConfig config);

  // Trains until the loader has finished `epochs` epochs in all (counting from epoch 0, so a resumed
  // run given the same number finishes the same run), or until request_stop().
  History train(data::DataLoader& loader, int64_t epochs);
  // One pass over the loader's current epoch, forward only.
  Evaluation evaluate(data::DataLoader& loader);

  // Called after every optimizer step and every epoch. A callback may call request_stop(): training
  // then ends after the current optimizer step, where a checkpoint resumes exactly.
  void on_step(std::function<void(const StepInfo&)> callback);
  void on_epoch(std::function<void(const EpochInfo&)> callback);
  void request_stop() { stop_requested_ = true; }

  // Parameters, optimizer state (moments, step count, beta powers), the schedule step and the
  // loader's position (its shuffling is a pure function of seed and epoch, so that is the whole
  // generator state) in one safetensors file; the metadata holds the counters.
  void save_checkpoint(const std::filesystem::path& path, const data::DataLoader& loader) const;
  // Restores all of the above into the session, this trainer and `loader`; throws Error naming the
  // file and the problem when it does not match the model or optimizer.
  void load_checkpoint(const std::filesystem::path& path, data::DataLoader& loader);

  int64_t step() const { return step_; }  // optimizer steps taken (the schedule's position)
  double current_learning_rate() const;
  const TrainConfig& config() const { return config_; }

 private:
  void feed(const data::Batch& batch);
  bool optimizer_step(data::DataLoader& loader, data::Batch& batch, float& loss, int64_t& samples);

  Session* session_;
  TrainConfig config_;
  std::vector<std::string> trainable_;  // parameters with gradients
  bool has_step_input_ = false;
  int64_t step_ = 0;
  int64_t micro_step_ = 0;
  int64_t total_steps_ = 0;
  bool stop_requested_ = false;
  std::vector<std::function<void(const StepInfo&)>> step_callbacks_;
  std::vector<std::function<void(const EpochInfo&)>> epoch_callbacks_;
};

// ---- the MNIST quick start (examples/mnist.cpp and `meganeura train-mnist`) ---------------------

// The 784-128-10 ReLU MLP for a fixed batch: inputs "x" [batch, 784] and "labels" [batch] (i32),
// outputs the mean cross-entropy loss and "logits" [batch, 10].
Graph mnist_mlp(int64_t batch_size);

struct MnistOptions {
  std::filesystem::path data = data::kFashionMnistDir;  // IDX files, plain or .gz
  int64_t epochs = 5;
  int64_t batch_size = 100;
  double lr = 0;                   // 0: 1e-3 for adam, 0.05 for sgd
  std::string optimizer = "adam";  // "sgd" (momentum 0.9) or "adam"
  uint64_t seed = 1;
  std::filesystem::path save = {}; // parameters (safetensors) after training; empty: not saved
  // Data-parallel training (mpirun): batch_size is then per rank, and only rank 0 prints and saves.
  GradientReducer* reducer = nullptr;
};

// Throws Error naming the option and the accepted values.
void validate(const MnistOptions& options);

// Loads the data, trains with progress on `out`, evaluates the test set and returns its accuracy.
double train_mnist(const MnistOptions& options, std::ostream& out);

}  // namespace meganeura::train
