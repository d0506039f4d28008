// Trainer: the loop that feeds batches, drives the schedule, accumulates gradients and reports.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>

#include "meganeura/error.h"
#include "meganeura/train.h"
#include "train/progress.h"

namespace meganeura::train {

namespace {

double base_learning_rate(const Optimizer& optimizer) {
  return std::visit([](const auto& o) { return o.lr; }, optimizer);
}

void check_config(const TrainConfig& config) {
  const double lr = base_learning_rate(config.optimizer);
  if (!(lr >= 0)) throw Error("Trainer: the learning rate must be a number >= 0, got " + std::to_string(lr));
  if (config.clip_global_norm < 0) throw Error("Trainer: clip_global_norm must be >= 0 (0 turns clipping off)");
  if (config.accumulation_steps < 1) {
    throw Error("Trainer: accumulation_steps must be at least 1, got " + std::to_string(config.accumulation_steps));
  }
  if (config.log_interval < 1) throw Error("Trainer: log_interval must be at least 1");
  if (config.schedule.warmup_steps < 0 || config.schedule.decay_steps < 0 || config.total_steps < 0) {
    throw Error("Trainer: warmup_steps, decay_steps and total_steps must not be negative");
  }
  if (config.schedule.min_lr_ratio < 0 || config.schedule.min_lr_ratio > 1) {
    throw Error("Trainer: schedule.min_lr_ratio must lie in [0, 1]");
  }
}

// This replica's rows of a combined batch (data-parallel training): rows [rank·b, (rank+1)·b).
data::Batch shard_of(const data::Batch& batch, int rank, int world_size) {
  if (batch.size % world_size != 0) {
    throw Error("Trainer: a batch of " + std::to_string(batch.size) + " rows does not split evenly over " +
                std::to_string(world_size) + " replicas; give the loader world_size x the session's batch size "
                "and drop_last");
  }
  const int64_t rows = batch.size / world_size;
  const int64_t first = rows * rank;
  data::Batch shard;
  shard.size = rows;
  shard.valid = std::clamp<int64_t>(batch.valid - first, 0, rows);
  shard.features = batch.features;
  shard.num_classes = batch.num_classes;
  shard.epoch = batch.epoch;
  shard.index = batch.index;
  const auto slice = [&](const auto& all, int64_t width, auto& out) {
    out.assign(all.begin() + first * width, all.begin() + (first + rows) * width);
  };
  slice(batch.images, batch.features, shard.images);
  slice(batch.labels, 1, shard.labels);
  if (!batch.one_hot.empty()) slice(batch.one_hot, batch.num_classes, shard.one_hot);
  return shard;
}

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

Trainer::Trainer(Session& session, TrainConfig config) : session_(&session), config_(std::move(config)) {
  check_config(config_);
  if (!session.is_training()) {
    throw Error("Trainer: the session was built for inference; build it with build_session to train");
  }
  session.set_optimizer(optimizer_spec(config_));
  const std::vector<std::string> inputs = session.input_names();
  has_step_input_ = std::find(inputs.begin(), inputs.end(), config_.io.step) != inputs.end();
  if (config_.accumulation_steps > 1 || config_.reducer) {
    // Parameters without a gradient (trainable = false) are simply not updated.
    for (const std::string& name : session.parameter_names()) {
      try {
        session.read_gradient(name);
        trainable_.push_back(name);
      } catch (const Error&) {
      }
    }
  }
  if (config_.reducer) config_.reducer->broadcast_parameters(session);
}

void Trainer::on_step(std::function<void(const StepInfo&)> callback) { step_callbacks_.push_back(std::move(callback)); }
void Trainer::on_epoch(std::function<void(const EpochInfo&)> callback) {
  epoch_callbacks_.push_back(std::move(callback));
}

double Trainer::current_learning_rate() const {
  return learning_rate_at(config_.schedule, base_learning_rate(config_.optimizer), step_, total_steps_);
}

void Trainer::feed(const data::Batch& batch) {
  const IoNames& io = config_.io;
  try {
    session_->set_input(io.images, std::span<const float>(batch.images));
  } catch (const Error& e) {
    throw Error("Trainer: batch " + std::to_string(batch.index) + " of epoch " + std::to_string(batch.epoch) +
                " has " + std::to_string(batch.size) + " rows of " + std::to_string(batch.features) + " features: " +
                e.what() + ". The session's shapes are fixed: give the loader the session's batch size and "
                "drop_last or pad_last");
  }
  if (io.one_hot_labels) {
    if (batch.one_hot.empty()) {
      throw Error("Trainer: io.one_hot_labels is set but the loader gives index labels; create it with "
                  "LoaderOptions::labels = LabelFormat::one_hot");
    }
    session_->set_input(io.labels, std::span<const float>(batch.one_hot));
  } else {
    session_->set_input(io.labels, std::span<const int32_t>(batch.labels));
  }
  if (has_step_input_) {
    const int32_t step = static_cast<int32_t>(micro_step_);
    session_->set_input(io.step, std::span<const int32_t>(&step, 1));
  }
}

// One optimizer step over up to accumulation_steps micro-batches of the current epoch; false when
// the epoch has none left.
bool Trainer::optimizer_step(data::DataLoader& loader, data::Batch& batch, float& loss, int64_t& samples) {
  const int64_t batches = loader.batches_per_epoch();
  if (loader.position().batch >= batches) return false;
  session_->set_learning_rate(current_learning_rate());
  samples = 0;
  GradientReducer* reducer = config_.reducer;
  if (config_.accumulation_steps == 1 && !reducer) {
    loader.next(batch);
    feed(batch);
    session_->step();
    ++micro_step_;
    samples = batch.valid;
    loss = session_->read_loss();
    return true;
  }
  // Sum the micro-batch gradients in double on the host; their mean is what one big batch would give.
  std::vector<std::vector<double>> sums(trainable_.size());
  double loss_sum = 0;
  int64_t micro = 0;
  for (; micro < config_.accumulation_steps && loader.position().batch < batches; ++micro) {
    loader.next(batch);
    feed(reducer ? shard_of(batch, reducer->rank(), reducer->world_size()) : batch);
    session_->compute_gradients();
    ++micro_step_;
    samples += batch.valid;
    loss_sum += session_->read_loss();
    // After the last micro-batch each summed gradient goes to the reducer at once, so averaging it
    // over the replicas overlaps reading back the next one.
    const bool last = micro + 1 == config_.accumulation_steps || loader.position().batch >= batches;
    for (size_t p = 0; p < trainable_.size(); ++p) {
      const std::vector<float> gradient = session_->read_gradient(trainable_[p]);
      sums[p].resize(gradient.size(), 0.0);
      for (size_t i = 0; i < gradient.size(); ++i) sums[p][i] += gradient[i];
      if (reducer && last) reducer->start_average(sums[p]);
    }
  }
  if (reducer) {
    // Every replica's gradient is the mean over its rows; their mean is the combined batch's.
    std::vector<double> loss_mean{loss_sum};
    reducer->start_average(loss_mean);
    reducer->finish_average();
    loss_sum = loss_mean[0];
  }
  for (size_t p = 0; p < trainable_.size(); ++p) {
    std::vector<float> mean(sums[p].size());
    for (size_t i = 0; i < mean.size(); ++i) mean[i] = static_cast<float>(sums[p][i] / static_cast<double>(micro));
    session_->set_gradient(trainable_[p], mean);
  }
  session_->apply_update();
  loss = static_cast<float>(loss_sum / static_cast<double>(micro));
  return true;
}

History Trainer::train(data::DataLoader& loader, int64_t epochs) {
  if (epochs < 0) throw Error("Trainer::train: epochs must not be negative, got " + std::to_string(epochs));
  stop_requested_ = false;
  const int64_t k = config_.accumulation_steps;
  const int64_t batches = loader.batches_per_epoch();
  const int64_t steps_per_epoch = (batches + k - 1) / k;
  total_steps_ = config_.total_steps > 0 ? config_.total_steps : epochs * steps_per_epoch;
  ProgressPrinter progress(config_.progress, config_.out ? *config_.out : std::cout, epochs, steps_per_epoch,
                           config_.log_interval);

  History history;
  data::Batch batch;
  while (!stop_requested_ && loader.position().epoch < epochs) {
    EpochInfo epoch{.epoch = loader.position().epoch};
    const Clock::time_point start = Clock::now();
    double loss_sum = 0;
    for (;;) {
      const double learning_rate = current_learning_rate();
      float loss = 0;
      int64_t samples = 0;
      if (!optimizer_step(loader, batch, loss, samples)) break;
      ++step_;
      history.losses.push_back(loss);
      loss_sum += loss;
      ++epoch.steps;
      epoch.samples += samples;

      const double seconds = seconds_since(start);
      const int64_t done_in_epoch = (loader.position().batch + k - 1) / k;
      const int64_t remaining = (epochs - epoch.epoch - 1) * steps_per_epoch + (steps_per_epoch - done_in_epoch);
      StepInfo info{.step = step_,
                    .epoch = epoch.epoch,
                    .batch = batch.index,
                    .batches_per_epoch = batches,
                    .loss = loss,
                    .learning_rate = learning_rate,
                    .samples_per_second = seconds > 0 ? static_cast<double>(epoch.samples) / seconds : 0,
                    .eta_seconds = seconds / static_cast<double>(epoch.steps) * static_cast<double>(remaining)};
      progress.step(info, done_in_epoch);
      for (const auto& callback : step_callbacks_) callback(info);
      if (stop_requested_ || loader.position().batch >= batches) break;
    }
    const bool finished = loader.position().batch >= batches;
    if (finished) loader.next(batch);  // returns false and moves the loader to the next epoch
    epoch.seconds = seconds_since(start);
    epoch.mean_loss = epoch.steps > 0 ? loss_sum / static_cast<double>(epoch.steps) : 0;
    epoch.samples_per_second = epoch.seconds > 0 ? static_cast<double>(epoch.samples) / epoch.seconds : 0;
    if (epoch.steps > 0 || finished) history.epochs.push_back(epoch);
    if (finished) {
      progress.epoch(epoch);
      for (const auto& callback : epoch_callbacks_) callback(epoch);
    }
  }
  return history;
}

Evaluation Trainer::evaluate(data::DataLoader& loader) {
  Evaluation result;
  double loss_sum = 0;
  int64_t correct = 0;
  data::Batch batch;
  while (loader.next(batch)) {
    feed(batch);
    session_->run();
    const std::vector<float> logits = session_->read_output(config_.io.logits_output);
    if (batch.size == 0 || logits.size() % static_cast<size_t>(batch.size) != 0) {
      throw Error("Trainer::evaluate: output " + std::to_string(config_.io.logits_output) + " has " +
                  std::to_string(logits.size()) + " values, not [" + std::to_string(batch.size) +
                  ", classes] logits; set IoNames::logits_output to the logits' output index");
    }
    const size_t classes = logits.size() / static_cast<size_t>(batch.size);
    // Only the real rows count: pad_last repeats samples from the start of the epoch.
    for (int64_t row = 0; row < batch.valid; ++row) {
      const float* z = logits.data() + static_cast<size_t>(row) * classes;
      const auto label = static_cast<size_t>(batch.labels[static_cast<size_t>(row)]);
      if (label >= classes) {
        throw Error("Trainer::evaluate: label " + std::to_string(label) + " is out of range for " +
                    std::to_string(classes) + " logits");
      }
      const size_t best = static_cast<size_t>(std::max_element(z, z + classes) - z);
      correct += best == label;
      const double top = z[best];
      double sum = 0;
      for (size_t c = 0; c < classes; ++c) sum += std::exp(static_cast<double>(z[c]) - top);
      loss_sum += top + std::log(sum) - z[label];
    }
    result.samples += batch.valid;
  }
  if (result.samples == 0) {
    throw Error("Trainer::evaluate: the loader gave no samples (is it positioned at the end of an epoch?)");
  }
  result.loss = loss_sum / static_cast<double>(result.samples);
  result.accuracy = static_cast<double>(correct) / static_cast<double>(result.samples);
  return result;
}

}  // namespace meganeura::train
