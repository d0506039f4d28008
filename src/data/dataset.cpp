// Labelled image datasets from IDX files, and the MNIST file layout.
#include <algorithm>

#include "meganeura/data.h"
#include "meganeura/error.h"
#include "meganeura/trace.h"

namespace meganeura::data {

Dataset Dataset::head(int64_t count) const {
  if (count < 0 || count > size) {
    throw Error("Dataset::head(" + std::to_string(count) + "): the dataset has " + std::to_string(size) +
                " samples; ask for 0 to " + std::to_string(size));
  }
  Dataset out;
  out.images.assign(images.begin(), images.begin() + count * features);
  out.labels.assign(labels.begin(), labels.begin() + count);
  out.image_shape = image_shape;
  out.size = count;
  out.features = features;
  out.num_classes = num_classes;
  return out;
}

Dataset load_idx_dataset(const std::filesystem::path& images, const std::filesystem::path& labels) {
  const IdxArray image_array = read_idx(images);
  const IdxArray label_array = read_idx(labels);
  if (image_array.type != IdxType::u8 || image_array.dims.size() < 2) {
    throw Error("IDX image file '" + images.string() + "': expected unsigned bytes with at least 2 dimensions " +
                "[samples, ...], got type code " + std::to_string(static_cast<int>(image_array.type)) + " and shape " +
                format_shape(image_array.dims) + "; is this a label file?");
  }
  if (label_array.type != IdxType::u8 || label_array.dims.size() != 1) {
    throw Error("IDX label file '" + labels.string() + "': expected unsigned bytes with 1 dimension [samples], got " +
                "type code " + std::to_string(static_cast<int>(label_array.type)) + " and shape " +
                format_shape(label_array.dims) + "; is this an image file?");
  }
  if (image_array.dims[0] != label_array.dims[0]) {
    throw Error("IDX files '" + images.string() + "' and '" + labels.string() + "' disagree: " +
                std::to_string(image_array.dims[0]) + " images but " + std::to_string(label_array.dims[0]) +
                " labels; they must come from the same split");
  }

  Dataset dataset;
  dataset.size = image_array.dims[0];
  dataset.image_shape.assign(image_array.dims.begin() + 1, image_array.dims.end());
  dataset.features = image_array.element_count() / dataset.size;
  dataset.images.resize(image_array.bytes.size());
  std::transform(image_array.bytes.begin(), image_array.bytes.end(), dataset.images.begin(),
                 [](uint8_t pixel) { return static_cast<float>(pixel) / 255.0f; });
  dataset.labels.assign(label_array.bytes.begin(), label_array.bytes.end());
  const auto largest = std::max_element(dataset.labels.begin(), dataset.labels.end());
  dataset.num_classes = largest == dataset.labels.end() ? 0 : *largest + 1;
  return dataset;
}

MnistData load_mnist(const std::filesystem::path& dir) {
  trace::Scope scope("load_mnist", dir.string());
  if (!std::filesystem::is_directory(dir)) {
    throw Error("load_mnist('" + dir.string() + "'): not a directory; pass the folder that holds " +
                "train-images-idx3-ubyte(.gz) and the other MNIST files");
  }
  // Each file may be plain or gzip; every missing one is named at once.
  const char* names[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                         "t10k-labels-idx1-ubyte"};
  std::filesystem::path paths[4];
  std::string missing;
  for (int i = 0; i < 4; ++i) {
    for (const auto& candidate : {dir / names[i], dir / (std::string(names[i]) + ".gz")}) {
      if (paths[i].empty() && std::filesystem::exists(candidate)) paths[i] = candidate;
    }
    if (paths[i].empty()) missing += std::string(missing.empty() ? "" : ", ") + names[i] + "(.gz)";
  }
  if (!missing.empty()) {
    throw Error("load_mnist('" + dir.string() + "'): missing " + missing + "; point it at a folder with the four " +
                "MNIST files (Debian's dataset-fashion-mnist installs them in /usr/share/datasets/fashion-mnist)");
  }
  MnistData data;
  data.train = load_idx_dataset(paths[0], paths[1]);
  data.test = load_idx_dataset(paths[2], paths[3]);
  // Both splits one-hot encode to the same width even if one lacks the highest class.
  const int64_t classes = std::max(data.train.num_classes, data.test.num_classes);
  data.train.num_classes = data.test.num_classes = classes;
  return data;
}

}  // namespace meganeura::data
