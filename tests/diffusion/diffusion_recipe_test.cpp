// The diffusion recipe end to end on a tiny UNet and synthetic 28×28 images (no download): a few
// training steps, a two-step DDIM sampling with guidance, the pictures and the classifier check.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <sstream>

#include "meganeura/error.h"
#include "meganeura/image.h"
#include "meganeura/models/diffusion.h"
#include "meganeura/session.h"
#include "support/temp_dir.h"

namespace meganeura::models {
namespace {

// Class c is a bright horizontal band at rows 2c+3 .. 2c+5 over faint noise: learnable by the MLP.
data::Dataset banded_images(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> faint(0.0f, 0.2f);
  data::Dataset dataset;
  dataset.size = count;
  dataset.features = 784;
  dataset.image_shape = {28, 28};
  dataset.num_classes = 10;
  for (int64_t i = 0; i < count; ++i) {
    const int32_t label = static_cast<int32_t>(i % 10);
    for (int64_t y = 0; y < 28; ++y) {
      for (int64_t x = 0; x < 28; ++x) {
        const bool band = y >= 2 * label + 3 && y <= 2 * label + 5;
        dataset.images.push_back(band ? 0.8f + faint(rng) : faint(rng));
      }
    }
    dataset.labels.push_back(label);
  }
  return dataset;
}

DiffusionOptions tiny_options(const std::filesystem::path& out) {
  DiffusionOptions options;
  options.out = out;
  options.steps = 2;
  options.batch_size = 2;
  options.warmup_steps = 1;
  options.train_seconds = 0;
  options.block_out_channels = {8, 16};
  options.norm_num_groups = 4;
  options.cross_attention_dim = 8;
  options.attention_heads = 2;
  options.sampling_steps = 2;
  options.guidance_scale = 2.0;  // the guided sampler (batch of class and "no class" rows)
  options.samples_per_class = 1;
  options.classifier_epochs = 3;
  options.log_interval = 1;
  return options;
}

TEST(DiffusionRecipe, TrainsSamplesDrawsAndChecks) {
  TempDir dir;
  const data::MnistData mnist{banded_images(200, 1), banded_images(100, 2)};
  std::ostringstream log;
  const DiffusionResult result = train_diffusion(tiny_options(dir.path()), mnist, log);

  ASSERT_EQ(result.steps, 2);
  ASSERT_EQ(result.losses.size(), 2u);
  for (float loss : result.losses) {
    EXPECT_TRUE(std::isfinite(loss));
    EXPECT_GT(loss, 0.05f);  // an untrained UNet predicts the noise poorly
    EXPECT_LT(loss, 20.0f);
  }
  // The classifier learns the bands; the untrained diffusion model's samples are a guess.
  EXPECT_GT(result.classifier_test_accuracy, 0.9) << log.str();
  ASSERT_EQ(result.sample_classes, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  ASSERT_EQ(result.predicted_classes.size(), 10u);
  for (int32_t label : result.predicted_classes) EXPECT_TRUE(label >= 0 && label < 10);
  EXPECT_GE(result.sample_accuracy, 0.0);
  EXPECT_LE(result.sample_accuracy, 1.0);

  const Image grid = read_image(result.samples_png.string());
  EXPECT_EQ(grid.width, 1 * 64 + 2 * 2);  // 32×32 samples drawn twice as large
  EXPECT_EQ(grid.height, 10 * 64 + 11 * 2);
  const Image plot = read_image(result.loss_png.string());
  EXPECT_EQ(plot.channels, 3);
  EXPECT_TRUE(std::filesystem::exists(result.parameters));
  EXPECT_TRUE(std::filesystem::exists(dir / "classifier.safetensors"));
  for (const char* line : {"step 2/2", "sampled 10 images", "sample accuracy: "}) {
    EXPECT_NE(log.str().find(line), std::string::npos) << line << "\n" << log.str();
  }

  // A second run samples from the saved parameters with the saved classifier, training nothing.
  DiffusionOptions again = tiny_options(dir / "again");
  again.unet = result.parameters;
  again.classifier = dir / "classifier.safetensors";
  again.guidance_scale = 1.0;
  again.sampling_steps = 1;
  std::ostringstream again_log;
  const DiffusionResult resampled = train_diffusion(again, mnist, again_log);
  EXPECT_EQ(resampled.steps, 0);
  EXPECT_TRUE(resampled.losses.empty());
  EXPECT_TRUE(resampled.loss_png.empty());
  EXPECT_FALSE(std::filesystem::exists(dir / "again" / "classifier.safetensors"));
  EXPECT_EQ(read_image(resampled.samples_png.string()).height, grid.height);
  EXPECT_NE(again_log.str().find("no training"), std::string::npos) << again_log.str();
  EXPECT_EQ(resampled.classifier_test_accuracy, result.classifier_test_accuracy);

  // The saved parameters hold the UNet under diffusers' names and the class table.
  Session reloaded = build_inference_session(diffusion_sampling_graph(diffusion_unet_config(tiny_options(dir.path())), 2));
  reloaded.load_parameters(result.parameters.string());
  EXPECT_EQ(reloaded.read_parameter("class_context.weight").size(), 11u * 8u);
}

TEST(DiffusionRecipe, GraphsNameTheirInputsAndParameters) {
  const UNetConfig config = diffusion_unet_config(tiny_options("unused"));
  EXPECT_EQ(config.in_channels, 1);
  EXPECT_EQ(config.down_block_types, (std::vector<std::string>{"DownBlock2D", "CrossAttnDownBlock2D"}));
  EXPECT_EQ(config.up_block_types, (std::vector<std::string>{"CrossAttnUpBlock2D", "UpBlock2D"}));
  const Graph training = diffusion_training_graph(config, 3);
  for (const char* name : {"noisy", "timesteps", "classes", "noise", "class_context.weight", "conv_in.weight",
                           "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"}) {
    EXPECT_TRUE(training.contains(name)) << name;
  }
  EXPECT_EQ(training.node(training.find("class_context.weight")).shape, (Shape{11, 8}));
  EXPECT_EQ(training.node(training.outputs()[0]).shape, Shape{});
  const Graph sampling = diffusion_sampling_graph(config, 6);
  EXPECT_FALSE(sampling.contains("noise"));
  EXPECT_EQ(sampling.node(sampling.outputs()[0]).shape, (Shape{6, 1, 32, 32}));
}

TEST(DiffusionRecipe, RejectsOptionsThatMakeNoSense) {
  const DiffusionOptions good = tiny_options("out");
  EXPECT_NO_THROW(validate(good));
  auto rejected = [&](auto change, const std::string& mention) {
    DiffusionOptions options = good;
    change(options);
    try {
      validate(options);
      ADD_FAILURE() << "accepted; expected an error naming " << mention;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(mention), std::string::npos) << e.what();
    }
  };
  rejected([](DiffusionOptions& o) { o.steps = 0; }, "--steps");
  rejected([](DiffusionOptions& o) { o.lr = 0; }, "--lr");
  rejected([](DiffusionOptions& o) { o.sampling_steps = 1001; }, "--sampling-steps");
  rejected([](DiffusionOptions& o) { o.uncond_probability = 0; }, "--uncond-probability");
  rejected([](DiffusionOptions& o) { o.block_out_channels = {}; }, "--channels");
  rejected([](DiffusionOptions& o) { o.norm_num_groups = 3; }, "--channels");
  rejected([](DiffusionOptions& o) { o.train_seconds = -1; }, "--train-seconds");

  // Data that is not 28×28 with labels 0..9 is refused before any training.
  TempDir dir;
  data::MnistData wrong{banded_images(20, 1), banded_images(20, 2)};
  wrong.train.labels[3] = 12;
  std::ostringstream log;
  EXPECT_THROW(train_diffusion(tiny_options(dir.path()), wrong, log), Error);
}

}  // namespace
}  // namespace meganeura::models
