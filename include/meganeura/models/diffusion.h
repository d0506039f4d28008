// meganeura/models/diffusion.h — denoising diffusion: the DDPM noise schedule, deterministic DDIM
// sampling steps, and a class-conditional Fashion-MNIST recipe on the SD UNet (models/sd_unet.h).
//
//   meganeura::models::NoiseSchedule schedule;                  // linear betas 1e-4 .. 0.02, 1000 steps
//   schedule.add_noise(images, noise, timesteps, noisy);         // x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε, per row
//   std::vector<int32_t> ts = schedule.ddim_timesteps(50);       // 980, 960, ..., 0
//   for (size_t i = 0; i < ts.size(); ++i) {
//     ... eps = the model's noise prediction for x at ts[i] ...
//     schedule.ddim_step(x, eps, ts[i], i + 1 < ts.size() ? ts[i + 1] : -1);  // x ← x_{t_prev}
//   }
//
//   // The whole recipe (examples/diffusion.cpp and `meganeura train-diffusion`):
//   meganeura::models::DiffusionOptions options;      // Fashion-MNIST from Debian's package
//   options.out = "diffusion-out";                    // samples.png, loss.png, unet.safetensors
//   auto result = meganeura::models::train_diffusion(options, std::cout);
//   // result.sample_accuracy: how often the quick start's classifier names the requested class
//
// Images are padded from 28×28 to 32×32 and scaled to [−1, 1]. The class conditions the UNet
// through cross-attention: a learned table of 11 rows (10 classes and a "no class" row for
// classifier-free guidance) gives each image a context of one token.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <span>
#include <string>
#include <vector>

#include "meganeura/data.h"
#include "meganeura/graph.h"
#include "meganeura/models/sd_unet.h"

namespace meganeura::models {

enum class BetaSchedule {
  linear,  // betas evenly spaced from beta_start to beta_end (Ho et al. 2020)
  cosine,  // ᾱ_t = f(t)/f(0), f(t) = cos²(((t/T) + 0.008)/1.008 · π/2), betas capped at 0.999
};

// The forward (noising) process of DDPM and the deterministic DDIM reverse step (η = 0), in double
// precision on the host.
class NoiseSchedule {
 public:
  explicit NoiseSchedule(BetaSchedule kind = BetaSchedule::linear, int64_t steps = 1000, double beta_start = 1e-4,
                         double beta_end = 0.02);

  int64_t steps() const { return static_cast<int64_t>(betas_.size()); }
  double beta(int64_t t) const;
  double alpha_cumprod(int64_t t) const;  // ᾱ_t = Π_{s ≤ t} (1 − β_s); t = −1 gives 1 (the clean image)

  // noisy = √ᾱ_t·x0 + √(1−ᾱ_t)·noise, row i of the batch at timesteps[i]. The spans hold
  // timesteps.size() equal rows; noisy may not overlap the others.
  void add_noise(std::span<const float> x0, std::span<const float> noise, std::span<const int32_t> timesteps,
                 std::span<float> noisy) const;

  // `count` timesteps from high to low with step steps()/count: (count−1)·k, ..., k, 0 ("leading"
  // spacing, as diffusers' DDIMScheduler).
  std::vector<int32_t> ddim_timesteps(int64_t count) const;

  // One DDIM step with η = 0 for a batch whose rows all sit at t: with x̂_0 = (x − √(1−ᾱ_t)·ε)/√ᾱ_t,
  // x ← √ᾱ_prev·x̂_0 + √(1−ᾱ_prev)·ε, where ᾱ_prev = alpha_cumprod(t_prev) (t_prev = −1: the last
  // step, to the clean image). clip_x0 > 0 clamps x̂_0 to [−clip_x0, clip_x0] first (the data's
  // range: keeps early, noisy predictions from overshooting), ε is kept as predicted.
  void ddim_step(std::span<float> x, std::span<const float> eps, int64_t t, int64_t t_prev,
                 double clip_x0 = 0) const;

 private:
  std::vector<double> betas_;
  std::vector<double> alphas_cumprod_;
};

// ---- the class-conditional Fashion-MNIST recipe ----------------------------------------------

struct DiffusionOptions {
  std::filesystem::path data = data::kFashionMnistDir;  // the four IDX files, plain or .gz
  std::filesystem::path out = "diffusion-out";           // created if missing
  int64_t steps = 4000;                                  // optimizer steps
  int64_t batch_size = 128;
  double lr = 1e-3;                                      // AdamW, after a linear warm-up, cosine to 5%
  double weight_decay = 0.01;
  int64_t warmup_steps = 200;
  // > 0: after the first steps the pace is measured and the step count reduced, if needed, so that
  // training takes about this long (the learning-rate schedule follows the new count). The default
  // leaves room for the classifier, the session builds and sampling within 8 minutes.
  double train_seconds = 360;
  BetaSchedule beta_schedule = BetaSchedule::linear;
  int64_t diffusion_steps = 1000;
  double uncond_probability = 0.1;  // labels replaced by the "no class" row while training
  int64_t sampling_steps = 50;      // DDIM steps
  // Classifier-free guidance; 1: the conditional prediction only. The default model samples best
  // unguided (bench/RESULTS.md: sample accuracy 0.80 at 1, 0.58 at 1.5, 0.15 at 3).
  double guidance_scale = 1.0;
  int64_t samples_per_class = 10;   // the grid has one row per class and this many columns
  uint64_t seed = 1;
  // The UNet (SD 1.5 blocks): cross-attention blocks at every resolution below the first.
  std::vector<int64_t> block_out_channels = {32, 64, 64};
  int64_t norm_num_groups = 8;
  int64_t cross_attention_dim = 64;
  int64_t attention_heads = 2;  // per cross-attention block (diffusers' attention_head_dim)
  // The check: the quick start's MLP (train::mnist_mlp) from this safetensors file, or (empty)
  // trained here for classifier_epochs on the same data and saved as out/classifier.safetensors.
  std::filesystem::path classifier = {};
  int64_t classifier_epochs = 5;
  // Parameters of an earlier run (its unet.safetensors): training is skipped and only sampling and
  // the check run, e.g. to try another guidance scale.
  std::filesystem::path unet = {};
  int64_t train_limit = 0;  // > 0: only the first train_limit training images (quick runs)
  int64_t log_interval = 100;
};

// Throws Error naming the option and what it accepts.
void validate(const DiffusionOptions& options);

// The recipe's UNet: 1 channel in and out, 32×32, one resnet per block, DownBlock2D first and
// CrossAttnDownBlock2D below it (mirrored on the way up), cross-attention over the class context.
UNetConfig diffusion_unet_config(const DiffusionOptions& options);

inline constexpr int64_t kDiffusionClasses = 10;
inline constexpr int64_t kNullClass = kDiffusionClasses;  // the "no class" row of the class table

// Training graph for a fixed batch: inputs "noisy" [batch, 1, 32, 32], "timesteps" [batch] f32,
// "classes" [batch] i32 (0..9, or kNullClass), "noise" [batch, 1, 32, 32]; output {the MSE between
// the UNet's noise prediction and "noise"}. Parameters: the UNet's under diffusers' names, and
// "class_context.weight" [11, cross_attention_dim].
Graph diffusion_training_graph(const UNetConfig& config, int64_t batch);
// The same model forward only: inputs "noisy", "timesteps", "classes"; output {noise prediction}.
Graph diffusion_sampling_graph(const UNetConfig& config, int64_t batch);

struct DiffusionResult {
  std::vector<float> losses;        // one per optimizer step (none when DiffusionOptions::unet is set)
  int64_t steps = 0;                // optimizer steps taken
  double train_seconds = 0;
  double sampling_seconds = 0;
  double classifier_test_accuracy = 0;  // the classifier on the real test set
  double sample_accuracy = 0;       // generated samples labelled as the class they were asked for
  std::vector<int32_t> sample_classes;     // requested class of each sample (grid order)
  std::vector<int32_t> predicted_classes;  // the classifier's label of each sample
  std::filesystem::path samples_png, loss_png, parameters;  // loss_png empty without training
};

// Loads options.data, then trains, samples, writes the pictures and checks them.
DiffusionResult train_diffusion(const DiffusionOptions& options, std::ostream& out);
// The same on data already in memory (28×28 images with labels 0..9).
DiffusionResult train_diffusion(const DiffusionOptions& options, const data::MnistData& mnist, std::ostream& out);

}  // namespace meganeura::models
