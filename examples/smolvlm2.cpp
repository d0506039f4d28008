// SmolVLM2 in a short program: load a checkpoint (a folder or a Hub repository), ask about an image,
// and stream the answer as it is generated on the GPU (vision encoder, connector, then the text
// model with its KV cache).
//
//   smolvlm2 --model HuggingFaceTB/SmolVLM2-256M-Video-Instruct --image cat.jpg --prompt "What is this?"
//
// Or with the image already preprocessed (safetensors "pixel_values" [..., 3, size, size], as the
// Hugging Face processor makes it) and the prompt as ids holding the image tokens:
//
//   smolvlm2 --model DIR --pixel-values pixels.safetensors --ids 1,2,3,3,3,3,5
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "meganeura/error.h"
#include "meganeura/image.h"
#include "meganeura/models/smolvlm2.h"
#include "meganeura/models/smolvlm2_processor.h"
#include "meganeura/safetensors.h"
#include "meganeura/tokenizer.h"

int main(int argc, char** argv) {
  std::string model = "HuggingFaceTB/SmolVLM2-256M-Video-Instruct";
  std::string image, prompt = "Can you describe this image?", pixel_values;
  std::vector<int32_t> ids;
  int64_t max_tokens = 64;
  CLI::App app("SmolVLM2: answer a question about an image");
  app.add_option("--model", model, "Model folder or Hugging Face repository id")->capture_default_str();
  auto* image_option = app.add_option("--image", image, "PNG or JPEG file to ask about");
  app.add_option("--prompt", prompt, "The question")->capture_default_str();
  auto* pixels_option = app.add_option("--pixel-values", pixel_values, "Safetensors file holding 'pixel_values'");
  app.add_option("--ids", ids, "Prompt ids with the image tokens, with --pixel-values")->delimiter(',');
  app.add_option("--max-tokens", max_tokens, "Tokens to generate at most")->capture_default_str();
  image_option->excludes(pixels_option);
  CLI11_PARSE(app, argc, argv);

  namespace models = meganeura::models;
  try {
    if (image.empty() == pixel_values.empty()) throw meganeura::Error("give --image FILE or --pixel-values FILE with --ids");
    const auto checkpoint = models::SmolVlmCheckpoint::open_or_download(model);
    const std::string& directory = checkpoint.directory();
    std::optional<meganeura::Tokenizer> tokenizer;
    if (std::filesystem::exists(std::filesystem::path(directory) / "tokenizer.json"))
      tokenizer = meganeura::Tokenizer::load(directory);

    std::vector<float> pixels;
    int64_t images = 0;
    if (!image.empty()) {
      if (!tokenizer) throw meganeura::Error("--image needs tokenizer.json beside the model");
      // The processor tiles the image and lays out the chat turn with the image's tokens.
      const auto processor = models::SmolVlmProcessor::from_directory(directory);
      const models::ProcessedImages processed = processor.preprocess(meganeura::read_image(image));
      pixels = processed.values;
      images = processed.tiles;
      ids = tokenizer->encode(processor.expand_prompt(processor.chat_prompt(prompt, true), processed.rows, processed.cols));
    } else {
      const auto& vision = checkpoint.config().vision;
      const auto file = meganeura::SafeTensorsFile::open(pixel_values);
      const int64_t per_image = vision.num_channels * vision.image_size * vision.image_size;
      images = file.tensor("pixel_values").element_count() / per_image;
      // Batch padding (all-zero images) never reaches the vision encoder.
      pixels = models::drop_padding_images(file.to_f32("pixel_values"), images, per_image);
    }

    models::VlmGenerator generator(checkpoint, static_cast<int64_t>(ids.size()) + max_tokens);
    models::SamplingOptions sampling;
    sampling.max_new_tokens = max_tokens;
    std::vector<int32_t> answer;
    sampling.on_token = [&](int32_t id) {
      answer.push_back(id);
      if (!tokenizer) std::cout << id << " " << std::flush;
      return true;
    };
    (void)generator.generate(ids, pixels, images, sampling);
    if (tokenizer) std::cout << tokenizer->decode(answer, /*skip_special_tokens=*/true);
    std::cout << "\n";
    const auto& stats = generator.last_stats();
    std::cout << "time to first token: " << stats.prefill_seconds * 1e3 << " ms (" << images << " tile(s), "
              << stats.prompt_tokens << " prompt tokens)\n";
    if (stats.new_tokens > 1)
      std::cout << "decode: " << static_cast<double>(stats.new_tokens - 1) / stats.decode_seconds << " tokens/s\n";
  } catch (const meganeura::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
