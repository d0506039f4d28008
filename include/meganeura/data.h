// meganeura/data.h — datasets in the IDX format (MNIST, Fashion-MNIST) and a seeded batch loader.
//
//   auto mnist = meganeura::data::load_mnist("/usr/share/datasets/fashion-mnist");
//   meganeura::data::DataLoader loader(mnist.train, {.batch_size = 32, .seed = 7});
//   meganeura::data::Batch batch;
//   while (loader.next(batch)) {          // one epoch; the next call starts the following one
//     session.set_input("x", batch.images);  // [batch.size, 784] floats in [0, 1]
//     session.set_input("y", batch.one_hot); // with {.labels = LabelFormat::one_hot}
//   }
//   auto position = loader.position();    // save with a checkpoint ...
//   loader.restore(position);             // ... and continue exactly where it stopped
//
// The loader keeps a reference to its Dataset, which must outlive it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace meganeura::data {

// Element types an IDX file can hold (the third byte of its magic number).
enum class IdxType : uint8_t {
  u8 = 0x08,
  i8 = 0x09,
  i16 = 0x0B,
  i32 = 0x0C,
  f32 = 0x0D,
  f64 = 0x0E,
};

// The contents of one IDX file: its shape and its elements, converted to host byte order.
struct IdxArray {
  IdxType type = IdxType::u8;
  std::vector<int64_t> dims;
  std::vector<uint8_t> bytes;  // dims' product elements of `type`, host byte order

  int64_t element_count() const;
};

// Reads a plain or gzip-compressed IDX file (compression is detected from the content). Throws
// meganeura::Error naming the file and the problem for a missing file, a bad magic number, an unknown
// element type, a zero or negative dimension, or a size that disagrees with the header.
IdxArray read_idx(const std::filesystem::path& path);

// Writes `array` as an IDX file, gzip-compressed when `gzip` is true.
void write_idx(const std::filesystem::path& path, const IdxArray& array, bool gzip = false);

// A labelled image dataset held in memory.
struct Dataset {
  std::vector<float> images;          // [size, features], row-major, pixel / 255 in [0, 1]
  std::vector<int32_t> labels;        // [size]
  std::vector<int64_t> image_shape;   // one image's dims, e.g. {28, 28}
  int64_t size = 0;                   // number of samples
  int64_t features = 0;               // product of image_shape
  int64_t num_classes = 0;            // largest label + 1

  // The first `count` samples (for quick experiments and tests).
  Dataset head(int64_t count) const;
};

// Builds a Dataset from an IDX image file (unsigned bytes, at least 2 dims) and an IDX label file
// (unsigned bytes, 1 dim) with the same number of samples.
Dataset load_idx_dataset(const std::filesystem::path& images, const std::filesystem::path& labels);

struct MnistData {
  Dataset train;
  Dataset test;
};

// Loads train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
// t10k-labels-idx1-ubyte from `dir`, each plain or with a .gz suffix. Works for MNIST and
// Fashion-MNIST (Debian: dataset-fashion-mnist, in /usr/share/datasets/fashion-mnist).
MnistData load_mnist(const std::filesystem::path& dir);

// Where Debian's dataset-fashion-mnist package installs Fashion-MNIST.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

enum class LabelFormat {
  index,    // Batch::labels only
  one_hot,  // Batch::labels and Batch::one_hot
};

struct LoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  bool drop_last = false;  // skip the final partial batch of an epoch
  // Fill the final partial batch up to batch_size with samples from the start of the epoch's order,
  // for sessions whose shapes are fixed; Batch::valid counts the real samples.
  bool pad_last = false;
  uint64_t seed = 0;
  LabelFormat labels = LabelFormat::index;
};

struct Batch {
  std::vector<float> images;    // [size, features]
  std::vector<int32_t> labels;  // [size]
  std::vector<float> one_hot;   // [size, num_classes], filled with LabelFormat::one_hot
  int64_t size = 0;   // rows in this batch
  int64_t valid = 0;  // leading rows that are real samples (less than size only with pad_last)
  int64_t features = 0;
  int64_t num_classes = 0;
  int64_t epoch = 0;  // the epoch and index of this batch within it
  int64_t index = 0;
};

// Where a loader stands: the next batch it returns is batch `batch` of epoch `epoch`. The order of
// an epoch is a pure function of (seed, epoch), so these three numbers are the whole generator state.
struct LoaderPosition {
  uint64_t seed = 0;
  int64_t epoch = 0;
  int64_t batch = 0;

  // "seed=7 epoch=2 batch=113": a form for checkpoint metadata.
  std::string to_string() const;
  static LoaderPosition parse(std::string_view text);
  bool operator==(const LoaderPosition&) const = default;
};

class DataLoader {
 public:
  DataLoader(const Dataset& dataset, LoaderOptions options);

  // Fills `batch` with the next batch of the current epoch and returns true; at the end of an epoch
  // returns false and moves on to the next epoch, whose order is reshuffled.
  bool next(Batch& batch);

  int64_t batches_per_epoch() const;
  const LoaderOptions& options() const { return options_; }
  const Dataset& dataset() const { return *dataset_; }

  // The sample indices of `epoch` in the order the loader visits them.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  LoaderPosition position() const;
  // Continues from `position`; throws meganeura::Error if it was saved with another seed or lies
  // beyond the end of an epoch.
  void restore(const LoaderPosition& position);

 private:
  void fill(Batch& batch, int64_t first, int64_t count, int64_t valid) const;

  const Dataset* dataset_;
  LoaderOptions options_;
  int64_t epoch_ = 0;
  int64_t batch_ = 0;
  std::vector<int64_t> order_;  // order of epoch_
};

}  // namespace meganeura::data
