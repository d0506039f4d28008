// Batches over a Dataset in a seeded order that depends only on (seed, epoch), so the loader's whole
// state is three integers and a resumed run sees the same batches as an uninterrupted one.
#include <algorithm>
#include <charconv>
#include <numeric>

#include "data/shuffle.h"
#include "meganeura/data.h"
#include "meganeura/error.h"
#include "meganeura/trace.h"

namespace meganeura::data {

DataLoader::DataLoader(const Dataset& dataset, LoaderOptions options) : dataset_(&dataset), options_(options) {
  if (options_.batch_size <= 0) {
    throw Error("DataLoader: batch_size must be positive, got " + std::to_string(options_.batch_size));
  }
  if (dataset.size <= 0) throw Error("DataLoader: the dataset is empty; load samples before batching them");
  if (static_cast<int64_t>(dataset.images.size()) != dataset.size * dataset.features ||
      static_cast<int64_t>(dataset.labels.size()) != dataset.size) {
    throw Error("DataLoader: the dataset is inconsistent: size " + std::to_string(dataset.size) + " and features " +
                std::to_string(dataset.features) + " but " + std::to_string(dataset.images.size()) + " image values and " +
                std::to_string(dataset.labels.size()) + " labels");
  }
  if (options_.drop_last && options_.pad_last) {
    throw Error("DataLoader: drop_last and pad_last both set; choose one way to treat the final partial batch");
  }
  if (options_.drop_last && options_.batch_size > dataset.size) {
    throw Error("DataLoader: batch_size " + std::to_string(options_.batch_size) + " exceeds the " +
                std::to_string(dataset.size) + " samples and drop_last is set, so an epoch would be empty; " +
                "use a smaller batch or turn drop_last off");
  }
  if (options_.labels == LabelFormat::one_hot) {
    for (int32_t label : dataset.labels) {
      if (label < 0 || label >= dataset.num_classes) {
        throw Error("DataLoader: label " + std::to_string(label) + " is outside [0, " +
                    std::to_string(dataset.num_classes) + "); set Dataset::num_classes to cover every label");
      }
    }
  }
  order_ = epoch_order(0);
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t full = dataset_->size / options_.batch_size;
  return (options_.drop_last || dataset_->size % options_.batch_size == 0) ? full : full + 1;
}

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const {
  if (options_.shuffle) return shuffled_order(dataset_->size, options_.seed, static_cast<uint64_t>(epoch));
  std::vector<int64_t> order(static_cast<size_t>(dataset_->size));
  std::iota(order.begin(), order.end(), int64_t{0});
  return order;
}

bool DataLoader::next(Batch& batch) {
  if (batch_ >= batches_per_epoch()) {
    ++epoch_;
    batch_ = 0;
    order_ = epoch_order(epoch_);
    return false;
  }
  trace::Scope scope("next batch");
  const int64_t first = batch_ * options_.batch_size;
  const int64_t valid = std::min(options_.batch_size, dataset_->size - first);
  fill(batch, first, options_.pad_last ? options_.batch_size : valid, valid);
  batch.epoch = epoch_;
  batch.index = batch_;
  ++batch_;
  return true;
}

void DataLoader::fill(Batch& batch, int64_t first, int64_t count, int64_t valid) const {
  const Dataset& data = *dataset_;
  batch.size = count;
  batch.valid = valid;
  batch.features = data.features;
  batch.num_classes = data.num_classes;
  batch.images.resize(static_cast<size_t>(count * data.features));
  batch.labels.resize(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    // Rows past the end of the epoch (pad_last) wrap around to its first samples.
    const int64_t sample = order_[static_cast<size_t>((first + i) % data.size)];
    std::copy_n(data.images.begin() + sample * data.features, data.features,
                batch.images.begin() + i * data.features);
    batch.labels[static_cast<size_t>(i)] = data.labels[static_cast<size_t>(sample)];
  }
  if (options_.labels == LabelFormat::one_hot) {
    batch.one_hot.assign(static_cast<size_t>(count * data.num_classes), 0.0f);
    for (int64_t i = 0; i < count; ++i) batch.one_hot[static_cast<size_t>(i * data.num_classes + batch.labels[i])] = 1.0f;
  } else {
    batch.one_hot.clear();
  }
}

LoaderPosition DataLoader::position() const { return {options_.seed, epoch_, batch_}; }

void DataLoader::restore(const LoaderPosition& position) {
  if (position.seed != options_.seed) {
    throw Error("DataLoader::restore: the position was saved by a loader seeded with " + std::to_string(position.seed) +
                " but this one uses seed " + std::to_string(options_.seed) + "; construct it with the same seed");
  }
  if (position.epoch < 0 || position.batch < 0 || position.batch > batches_per_epoch()) {
    throw Error("DataLoader::restore: position '" + position.to_string() + "' is outside an epoch of " +
                std::to_string(batches_per_epoch()) + " batches; was it saved with another batch size or dataset?");
  }
  if (position.epoch != epoch_) order_ = epoch_order(position.epoch);
  epoch_ = position.epoch;
  batch_ = position.batch;
}

std::string LoaderPosition::to_string() const {
  return "seed=" + std::to_string(seed) + " epoch=" + std::to_string(epoch) + " batch=" + std::to_string(batch);
}

namespace {

template <typename T>
T parse_field(std::string_view text, std::string_view& rest, std::string_view key) {
  const auto fail = [&] {
    return Error("LoaderPosition::parse('" + std::string(text) + "'): expected \"seed=N epoch=N batch=N\", could not read " +
                 std::string(key));
  };
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (rest.substr(0, key.size()) != key || rest.size() <= key.size() || rest[key.size()] != '=') throw fail();
  rest.remove_prefix(key.size() + 1);
  T value{};
  const auto [end, error] = std::from_chars(rest.data(), rest.data() + rest.size(), value);
  if (error != std::errc()) throw fail();
  rest.remove_prefix(static_cast<size_t>(end - rest.data()));
  return value;
}

}  // namespace

LoaderPosition LoaderPosition::parse(std::string_view text) {
  std::string_view rest = text;
  LoaderPosition position;
  position.seed = parse_field<uint64_t>(text, rest, "seed");
  position.epoch = parse_field<int64_t>(text, rest, "epoch");
  position.batch = parse_field<int64_t>(text, rest, "batch");
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (!rest.empty()) {
    throw Error("LoaderPosition::parse('" + std::string(text) + "'): unexpected text '" + std::string(rest) +
                "' after the batch number");
  }
  return position;
}

}  // namespace meganeura::data
