// SmolVLM2 in a short program: load a checkpoint (a folder or a Hub repository), run the vision
// encoder and the text model over a prompt holding image tokens, and continue it greedily on the GPU.
// The image comes already preprocessed (safetensors "pixel_values" [..., 3, size, size], as the
// Hugging Face processor makes it); the prompt as ids with the image tokens in place.
//
//   smolvlm2 --model DIR --pixel-values pixels.safetensors --ids 1,2,3,3,3,3,5 --max-tokens 20
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "meganeura/error.h"
#include "meganeura/models/smolvlm2.h"
#include "meganeura/safetensors.h"
#include "meganeura/tokenizer.h"

int main(int argc, char** argv) {
  std::string model;
  std::string pixel_values;
  std::vector<int32_t> ids;
  int64_t max_tokens = 20;
  CLI::App app("SmolVLM2: answer about an image, given as preprocessed pixel values and a prompt of ids");
  app.add_option("--model", model, "Model folder or Hugging Face repository id")->required();
  app.add_option("--pixel-values", pixel_values, "Safetensors file holding 'pixel_values'")->required();
  app.add_option("--ids", ids, "Prompt ids with the image tokens, such as 1,3,3,3,3,7")->delimiter(',')->required();
  app.add_option("--max-tokens", max_tokens, "Tokens to generate")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  namespace models = meganeura::models;
  try {
    const auto checkpoint = models::SmolVlmCheckpoint::open_or_download(model);
    const auto& vision = checkpoint.config().vision;
    const auto file = meganeura::SafeTensorsFile::open(pixel_values);
    const int64_t per_image = vision.num_channels * vision.image_size * vision.image_size;
    int64_t images = file.tensor("pixel_values").element_count() / per_image;
    // Batch padding (all-zero images) never reaches the vision encoder.
    const std::vector<float> pixels = models::drop_padding_images(file.to_f32("pixel_values"), images, per_image);

    models::VlmGenerator generator(checkpoint, static_cast<int64_t>(ids.size()) + max_tokens);
    models::SamplingOptions sampling;
    sampling.max_new_tokens = max_tokens;
    const std::vector<int32_t> generated = generator.generate(ids, pixels, images, sampling);

    if (std::filesystem::exists(std::filesystem::path(checkpoint.directory()) / "tokenizer.json")) {
      std::cout << meganeura::Tokenizer::load(checkpoint.directory()).decode(generated) << "\n";
    } else {
      for (int32_t id : generated) std::cout << id << " ";
      std::cout << "\n";
    }
    const auto& stats = generator.last_stats();
    std::cout << "time to first token: " << stats.prefill_seconds * 1e3 << " ms ("
              << images << " image(s), " << stats.prompt_tokens << " prompt tokens)\n";
    if (stats.new_tokens > 1)
      std::cout << "decode: " << static_cast<double>(stats.new_tokens - 1) / stats.decode_seconds << " tokens/s\n";
  } catch (const meganeura::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
