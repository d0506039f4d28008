// meganeura/models/smolvlm2_processor.h — SmolVLM2's image preprocessing and prompt layout, as
// transformers' SmolVLMImageProcessor and SmolVLMProcessor do them, with every setting read from
// the model's preprocessor_config.json and processor_config.json.
//
//   auto processor = meganeura::models::SmolVlmProcessor::from_directory("path/to/SmolVLM2-256M");
//   meganeura::Image photo = meganeura::read_image("cat.jpg");
//   meganeura::models::ProcessedImages pixels = processor.preprocess(photo);
//   // pixels.values: f32 [pixels.tiles, 3, H, W], the tiles row by row, then the whole image.
//   std::string prompt = processor.chat_prompt("What is in this picture?", /*with_image=*/true);
//   // "<|im_start|>User:<image>What is in this picture?<end_of_utterance>\nAssistant:"
//   std::string text = processor.expand_prompt(prompt, pixels.rows, pixels.cols);
//   // each "<image>" becomes <fake_token_around_image><row_1_col_1><image>×image_seq_len ... <global-img> ...
//
// Steps (each switched by its config field), as transformers 5 orders them: convert to RGB as
// Pillow's convert("RGB") does (gray repeated, alpha dropped, palettes expanded); resize so the
// longest edge is size.longest_edge (aspect kept, the other side rounded up to even); split: resize
// up to multiples of max_image_size.longest_edge, cut into rows × cols tiles, then add the whole
// image resized to one tile; no split: one square tile; rescale; normalise; pad. Resizing is
// Pillow's, bit for bit (see meganeura/image.h). (transformers 4 converted after resizing, resized
// gray with nearest and put alpha over white; its numbers differ for gray and transparent images.)
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "meganeura/image.h"

namespace meganeura::models {

struct SmolVlmProcessorConfig {
  bool do_convert_rgb = true;
  bool do_resize = true;
  int64_t longest_edge = 4 * 364;  // size.longest_edge
  ResampleFilter resample = ResampleFilter::lanczos;
  bool do_image_splitting = true;
  int64_t max_image_size = 364;  // max_image_size.longest_edge: the side of every tile
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<double, 3> image_mean = {0.5, 0.5, 0.5};
  std::array<double, 3> image_std = {0.5, 0.5, 0.5};
  bool do_pad = true;
  // processor_config.json: tokens per tile, (image_size / patch_size)² / scale_factor².
  int64_t image_seq_len = 169;
  std::string image_token = "<image>";
  std::string fake_image_token = "<fake_token_around_image>";
  std::string global_image_token = "<global-img>";
  std::string end_of_utterance_token = "<end_of_utterance>";

  // preprocessor_config.json text, and processor_config.json text (may be empty: image_seq_len
  // keeps its default). Unknown values of known fields are Errors naming the field and `label`.
  static SmolVlmProcessorConfig from_json(std::string_view preprocessor_json, std::string_view processor_json = {},
                                          const std::string& label = "preprocessor_config.json");
};

struct ProcessedImages {
  int64_t tiles = 0;  // rows·cols + 1 when split, else 1
  int64_t height = 0;
  int64_t width = 0;
  std::vector<float> values;  // [tiles, 3, height, width]
  // [tiles, height, width], 1 for image pixels and 0 for padding; empty without do_pad.
  std::vector<uint8_t> pixel_attention_mask;
  int64_t rows = 0;  // 0 and 0 when the image was not split
  int64_t cols = 0;

  std::vector<int64_t> shape() const { return {tiles, 3, height, width}; }
};

class SmolVlmProcessor {
 public:
  explicit SmolVlmProcessor(SmolVlmProcessorConfig config);

  // Reads preprocessor_config.json and, when present, processor_config.json from `dir`.
  static SmolVlmProcessor from_directory(const std::string& dir);
  static SmolVlmProcessor from_json(std::string_view preprocessor_json, std::string_view processor_json = {});

  const SmolVlmProcessorConfig& config() const { return config_; }

  // Any decoded image (1 to 4 channels) → normalised tiles.
  ProcessedImages preprocess(const Image& image) const;

  // The text that stands for one image split into rows × cols tiles (0 × 0: not split).
  std::string image_prompt(int64_t rows, int64_t cols) const;
  // Replaces the one image token in `text` by image_prompt(rows, cols); Error when `text` holds
  // no image token or more than one.
  std::string expand_prompt(const std::string& text, int64_t rows, int64_t cols) const;
  // The same for several images, in order of their tokens; grids[i] = {rows, cols}.
  std::string expand_prompt(const std::string& text, const std::vector<std::array<int64_t, 2>>& grids) const;

  // One user turn and the assistant's cue in SmolVLM2's chat template, the image (when given)
  // before the text.
  std::string chat_prompt(const std::string& user_text, bool with_image) const;

 private:
  SmolVlmProcessorConfig config_;
};

// The output size of resizing so the longest edge becomes `longest_edge` (transformers' rule: the
// other side truncated, then rounded up to even, at least 1, then capped at 4096). {height, width}.
std::array<int64_t, 2> smolvlm_resize_size(int64_t height, int64_t width, int64_t longest_edge);

}  // namespace meganeura::models
