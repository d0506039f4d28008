// The diffusion recipe's command-line options, shared by examples/diffusion.cpp and
// `meganeura train-diffusion`.
//
//   meganeura::models::DiffusionOptions options;
//   CLI::App app{"Class-conditional DDPM on Fashion-MNIST"};
//   meganeura::models::add_diffusion_options(app, options);
//   CLI11_PARSE(app, argc, argv);
//   meganeura::models::train_diffusion(options, std::cout);
//
// Header only, so the models library itself does not depend on CLI11.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "meganeura/models/diffusion.h"

namespace meganeura::models {

inline void add_diffusion_options(CLI::App& app, DiffusionOptions& options) {
  const auto positive = CLI::Range(int64_t{1}, int64_t{1} << 30);
  app.add_option("--data", options.data, "Folder with the Fashion-MNIST (or MNIST) IDX files, plain or .gz")
      ->check(CLI::ExistingDirectory)
      ->capture_default_str();
  app.add_option("--out", options.out, "Folder for samples.png, loss.png and the parameters (created)")
      ->capture_default_str();
  app.add_option("--steps", options.steps, "Optimizer steps")->check(positive)->capture_default_str();
  app.add_option("--batch-size", options.batch_size, "Images per step")->check(positive)->capture_default_str();
  app.add_option("--lr", options.lr, "Peak AdamW learning rate (warm-up, then cosine to 5%)")
      ->check(CLI::Range(1e-9, 10.0))
      ->capture_default_str();
  app.add_option("--weight-decay", options.weight_decay, "AdamW's decoupled weight decay")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--warmup-steps", options.warmup_steps, "Linear learning-rate warm-up")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30))
      ->capture_default_str();
  app.add_option("--train-seconds", options.train_seconds,
                 "Fewer steps if the measured pace would make training last longer than this (0: no limit)")
      ->check(CLI::Range(0.0, 1e7))
      ->capture_default_str();
  app.add_option_function<std::string>(
         "--beta-schedule",
         [&options](const std::string& name) {
           options.beta_schedule = name == "cosine" ? BetaSchedule::cosine : BetaSchedule::linear;
         },
         "Noise schedule: linear or cosine")
      ->check(CLI::IsMember({"linear", "cosine"}))
      ->default_str(options.beta_schedule == BetaSchedule::cosine ? "cosine" : "linear");
  app.add_option("--sampling-steps", options.sampling_steps, "DDIM steps when sampling")
      ->check(positive)
      ->capture_default_str();
  app.add_option("--guidance", options.guidance_scale, "Classifier-free guidance scale (1: none)")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  app.add_option("--uncond-probability", options.uncond_probability,
                 "Share of training images shown with the null class (guidance needs it above 0)")
      ->check(CLI::Range(0.0, 0.99))
      ->capture_default_str();
  app.add_option("--samples-per-class", options.samples_per_class, "Columns of the sample grid")
      ->check(CLI::Range(int64_t{1}, int64_t{1000}))
      ->capture_default_str();
  app.add_option("--seed", options.seed, "Seed for the weights, the batches, the noise and the samples")
      ->capture_default_str();
  app.add_option("--channels", options.block_out_channels, "UNet block widths, one per resolution (e.g. 32 64 64)")
      ->expected(1, 4)
      ->capture_default_str();
  app.add_option("--norm-groups", options.norm_num_groups, "GroupNorm groups")->check(positive)->capture_default_str();
  app.add_option("--context-dim", options.cross_attention_dim, "Width of the class context (cross-attention)")
      ->check(positive)
      ->capture_default_str();
  app.add_option("--heads", options.attention_heads, "Attention heads per transformer block")
      ->check(positive)
      ->capture_default_str();
  app.add_option("--classifier", options.classifier,
                 "The quick start MLP's parameters (train-mnist --save); default: trained here first")
      ->check(CLI::ExistingFile);
  app.add_option("--unet", options.unet,
                 "Parameters of an earlier run (its unet.safetensors): skip training, only sample and check")
      ->check(CLI::ExistingFile);
  app.add_option("--classifier-epochs", options.classifier_epochs, "Epochs for the classifier trained here")
      ->check(positive)
      ->capture_default_str();
  app.add_option("--train-limit", options.train_limit, "Train on only the first N images (0: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30))
      ->capture_default_str();
  app.add_option("--log-interval", options.log_interval, "Steps between progress lines")
      ->check(positive)
      ->capture_default_str();
}

}  // namespace meganeura::models
