// Sample grids and loss plots drawn straight into pixels: a plot needs a few lines, ticks and
// numbers, which a 5×7 bitmap font and straight-line drawing cover without a plotting library.
#include "models/diffusion_pictures.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "meganeura/error.h"

namespace meganeura::models {
namespace {

struct Rgb {
  uint8_t r, g, b;
};
constexpr Rgb kWhite{255, 255, 255};
constexpr Rgb kBlack{0, 0, 0};
constexpr Rgb kGrid{225, 225, 225};
constexpr Rgb kRaw{175, 175, 175};
constexpr Rgb kAverage{30, 90, 200};
// Between the tiles: the images' own background is black, so a gray gap keeps them apart.
constexpr uint8_t kGapGray = 96;

// 5×7 glyphs for the characters tick labels and axis titles use; '#' is ink.
struct Glyph {
  char character;
  std::array<const char*, 7> rows;
};
constexpr std::array<Glyph, 18> kFont{{
    {'0', {" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "}},
    {'1', {"  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "}},
    {'2', {" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"}},
    {'3', {"#### ", "    #", "    #", " ### ", "    #", "    #", "#### "}},
    {'4', {"   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "}},
    {'5', {"#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "}},
    {'6', {"  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "}},
    {'7', {"#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "}},
    {'8', {" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "}},
    {'9', {" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "}},
    {'.', {"     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "}},
    {'-', {"     ", "     ", "     ", "#####", "     ", "     ", "     "}},
    {'e', {"     ", "     ", " ### ", "#   #", "#####", "#    ", " ### "}},
    {'s', {"     ", "     ", " ####", "#    ", " ### ", "    #", "#### "}},
    {'t', {" #   ", " #   ", "#### ", " #   ", " #   ", " #  #", "  ## "}},
    {'p', {"     ", "     ", "#### ", "#   #", "#### ", "#    ", "#    "}},
    {'l', {" ##  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "}},
    {'o', {"     ", "     ", " ### ", "#   #", "#   #", "#   #", " ### "}},
}};
constexpr int64_t kGlyphWidth = 5;
constexpr int64_t kGlyphHeight = 7;
constexpr int64_t kTextScale = 2;

class Canvas {
 public:
  Canvas(int64_t width, int64_t height) {
    image_.width = width;
    image_.height = height;
    image_.channels = 3;
    image_.pixels.assign(static_cast<size_t>(width * height * 3), 255);
  }

  void put(int64_t x, int64_t y, Rgb color) {
    if (x < 0 || y < 0 || x >= image_.width || y >= image_.height) return;
    image_.at(y, x, 0) = color.r;
    image_.at(y, x, 1) = color.g;
    image_.at(y, x, 2) = color.b;
  }

  // Bresenham's line, `thickness` pixels wide (a square brush).
  void line(int64_t x0, int64_t y0, int64_t x1, int64_t y1, Rgb color, int64_t thickness = 1) {
    const int64_t dx = std::abs(x1 - x0);
    const int64_t dy = -std::abs(y1 - y0);
    const int64_t sx = x0 < x1 ? 1 : -1;
    const int64_t sy = y0 < y1 ? 1 : -1;
    int64_t error = dx + dy;
    for (;;) {
      for (int64_t oy = 0; oy < thickness; ++oy) {
        for (int64_t ox = 0; ox < thickness; ++ox) put(x0 + ox - thickness / 2, y0 + oy - thickness / 2, color);
      }
      if (x0 == x1 && y0 == y1) break;
      const int64_t doubled = 2 * error;
      if (doubled >= dy) error += dy, x0 += sx;
      if (doubled <= dx) error += dx, y0 += sy;
    }
  }

  static int64_t text_width(const std::string& text) {
    return static_cast<int64_t>(text.size()) * (kGlyphWidth + 1) * kTextScale - kTextScale;
  }
  static int64_t text_height() { return kGlyphHeight * kTextScale; }

  // Top-left corner at (x, y); characters the font lacks are left blank.
  void text(int64_t x, int64_t y, const std::string& text, Rgb color) {
    for (char c : text) {
      const auto glyph = std::find_if(kFont.begin(), kFont.end(), [c](const Glyph& g) { return g.character == c; });
      if (glyph != kFont.end()) {
        for (int64_t row = 0; row < kGlyphHeight; ++row) {
          for (int64_t column = 0; column < kGlyphWidth; ++column) {
            if (glyph->rows[row][column] != '#') continue;
            for (int64_t sy = 0; sy < kTextScale; ++sy) {
              for (int64_t sx = 0; sx < kTextScale; ++sx) {
                put(x + column * kTextScale + sx, y + row * kTextScale + sy, color);
              }
            }
          }
        }
      }
      x += (kGlyphWidth + 1) * kTextScale;
    }
  }

  Image take() { return std::move(image_); }

 private:
  Image image_;
};

// "0.05", "2", "1e-05": the shortest form %g gives.
std::string short_number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", value);
  return buffer;
}

// A 1-2-5 step that gives at most `max_ticks` ticks over [0, span].
double nice_step(double span, int64_t max_ticks) {
  const double raw = span / static_cast<double>(std::max<int64_t>(max_ticks, 1));
  const double decade = std::pow(10.0, std::floor(std::log10(std::max(raw, 1e-300))));
  for (double multiple : {1.0, 2.0, 5.0, 10.0}) {
    if (multiple * decade >= raw) return multiple * decade;
  }
  return 10.0 * decade;
}

}  // namespace

Image sample_grid(std::span<const float> images, int64_t rows, int64_t columns, int64_t height, int64_t width,
                  int64_t gap, int64_t scale) {
  if (rows < 1 || columns < 1 || height < 1 || width < 1 || gap < 0 || scale < 1) {
    throw Error("sample_grid: rows, columns, height, width and scale must be positive and the gap not negative, got " +
                std::to_string(rows) + "x" + std::to_string(columns) + " tiles of " + std::to_string(height) + "x" +
                std::to_string(width) + ", gap " + std::to_string(gap) + ", scale " + std::to_string(scale));
  }
  const int64_t tile_values = height * width;
  if (static_cast<int64_t>(images.size()) != rows * columns * tile_values) {
    throw Error("sample_grid: " + std::to_string(rows * columns) + " images of " + std::to_string(height) + "x" +
                std::to_string(width) + " need " + std::to_string(rows * columns * tile_values) + " values, got " +
                std::to_string(images.size()));
  }
  Image grid;
  grid.width = columns * width * scale + (columns + 1) * gap;
  grid.height = rows * height * scale + (rows + 1) * gap;
  grid.channels = 1;
  grid.pixels.assign(static_cast<size_t>(grid.width * grid.height), kGapGray);
  for (int64_t index = 0; index < rows * columns; ++index) {
    const int64_t top = gap + (index / columns) * (height * scale + gap);
    const int64_t left = gap + (index % columns) * (width * scale + gap);
    for (int64_t y = 0; y < height * scale; ++y) {
      for (int64_t x = 0; x < width * scale; ++x) {
        const float sample = images[index * tile_values + (y / scale) * width + x / scale];
        const double value = std::clamp(static_cast<double>(sample), -1.0, 1.0);
        grid.at(top + y, left + x, 0) = static_cast<uint8_t>(std::lround((value + 1.0) * 127.5));
      }
    }
  }
  return grid;
}

Image loss_plot(std::span<const float> losses, int64_t width, int64_t height) {
  if (losses.empty()) throw Error("loss_plot: no losses to plot (train for at least one step)");
  for (size_t i = 0; i < losses.size(); ++i) {
    if (!(losses[i] > 0) || !std::isfinite(losses[i])) {
      throw Error("loss_plot: the loss at step " + std::to_string(i + 1) + " is " + std::to_string(losses[i]) +
                  "; a log-scale plot needs positive finite values");
    }
  }
  constexpr int64_t kLeft = 80, kRight = 20, kTop = 36, kBottom = 56;
  if (width < kLeft + kRight + 100 || height < kTop + kBottom + 100) {
    throw Error("loss_plot: " + std::to_string(width) + "x" + std::to_string(height) +
                " pixels leave no room for the axes; use at least 200x176");
  }
  const int64_t count = static_cast<int64_t>(losses.size());

  // Moving average over ~1% of the run, so the trend reads through the batch-to-batch noise.
  const int64_t window = std::max<int64_t>(1, count / 100);
  std::vector<double> average(static_cast<size_t>(count));
  double running = 0;
  for (int64_t i = 0; i < count; ++i) {
    running += losses[i];
    if (i >= window) running -= losses[i - window];
    average[i] = running / static_cast<double>(std::min(i + 1, window));
  }

  const auto [low_it, high_it] = std::minmax_element(losses.begin(), losses.end());
  double log_low = std::floor(std::log10(static_cast<double>(*low_it)));
  double log_high = std::ceil(std::log10(static_cast<double>(*high_it)));
  if (log_high <= log_low) log_high = log_low + 1;

  const int64_t plot_width = width - kLeft - kRight;
  const int64_t plot_height = height - kTop - kBottom;
  const double x_span = static_cast<double>(std::max<int64_t>(count, 2));
  auto to_x = [&](double step) { return kLeft + std::lround((step - 1) / (x_span - 1) * (plot_width - 1)); };
  auto to_y = [&](double loss) {
    const double fraction = (std::log10(loss) - log_low) / (log_high - log_low);
    return kTop + plot_height - 1 - std::lround(fraction * (plot_height - 1));
  };

  Canvas canvas(width, height);
  // Horizontal grid lines at 1, 2 and 5 times each power of ten; labels where they do not crowd.
  const bool label_minor = log_high - log_low <= 2;
  for (double decade = log_low; decade < log_high + 0.5; decade += 1) {
    for (double multiple : {1.0, 2.0, 5.0}) {
      const double value = multiple * std::pow(10.0, decade);
      if (std::log10(value) > log_high + 1e-9) continue;
      const int64_t y = to_y(value);
      canvas.line(kLeft, y, kLeft + plot_width - 1, y, kGrid);
      canvas.line(kLeft - 5, y, kLeft, y, kBlack);
      if (multiple == 1.0 || label_minor) {
        const std::string label = short_number(value);
        canvas.text(kLeft - 8 - Canvas::text_width(label), y - Canvas::text_height() / 2, label, kBlack);
      }
    }
  }
  // Vertical ticks at a 1-2-5 step of optimizer steps.
  const double step = std::max(1.0, nice_step(x_span, 8));
  for (double tick = step; tick <= static_cast<double>(count) + 1e-9; tick += step) {
    const int64_t x = to_x(tick);
    canvas.line(x, kTop, x, kTop + plot_height - 1, kGrid);
    canvas.line(x, kTop + plot_height, x, kTop + plot_height + 5, kBlack);
    const std::string label = short_number(tick);
    canvas.text(x - Canvas::text_width(label) / 2, kTop + plot_height + 9, label, kBlack);
  }

  for (int64_t i = 1; i < count; ++i) {
    canvas.line(to_x(static_cast<double>(i)), to_y(losses[i - 1]), to_x(static_cast<double>(i + 1)), to_y(losses[i]),
                kRaw);
  }
  for (int64_t i = 1; i < count; ++i) {
    canvas.line(to_x(static_cast<double>(i)), to_y(average[i - 1]), to_x(static_cast<double>(i + 1)), to_y(average[i]),
                kAverage, 2);
  }
  if (count == 1) canvas.line(to_x(1) - 2, to_y(losses[0]), to_x(1) + 2, to_y(losses[0]), kAverage, 2);

  // Axes on top of the curves, then their titles.
  canvas.line(kLeft, kTop, kLeft, kTop + plot_height, kBlack);
  canvas.line(kLeft, kTop + plot_height, kLeft + plot_width - 1, kTop + plot_height, kBlack);
  canvas.text(kLeft + plot_width / 2 - Canvas::text_width("step") / 2, height - Canvas::text_height() - 6, "step",
              kBlack);
  canvas.text(6, 6, "loss", kBlack);
  return canvas.take();
}

}  // namespace meganeura::models
