// Pictures of a diffusion run: a grid of generated gray images and the training-loss curve, both
// rendered into 8-bit pixels for write_png.
//
//   meganeura::Image grid = meganeura::models::sample_grid(samples, 10, 10, 32, 32);  // values in [-1, 1]
//   meganeura::Image plot = meganeura::models::loss_plot(losses);                      // RGB, log-scale loss
//   meganeura::write_png("samples.png", grid);
#pragma once

#include <cstdint>
#include <span>

#include "meganeura/image.h"

namespace meganeura::models {

// `images` holds rows·columns gray images of height×width values in [−1, 1] (clamped), row-major;
// image i goes to grid row i / columns, each pixel drawn as a scale×scale block (small images are
// easier to judge enlarged). Tiles are separated by `gap` gray pixels (96).
Image sample_grid(std::span<const float> images, int64_t rows, int64_t columns, int64_t height, int64_t width,
                  int64_t gap = 2, int64_t scale = 1);

// The loss per optimizer step on a log-scale y axis: the raw values in light gray, their moving
// average in blue, axes with labelled ticks ("step" across, "loss" up). Losses must be positive.
Image loss_plot(std::span<const float> losses, int64_t width = 720, int64_t height = 440);

}  // namespace meganeura::models
