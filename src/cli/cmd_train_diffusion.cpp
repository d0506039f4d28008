// `meganeura train-diffusion`: the diffusion example (examples/diffusion.cpp) as a subcommand, same
// options.
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "models/diffusion_options.h"

namespace {
void setup_train_diffusion(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "train-diffusion", "Train a class-conditional DDPM (SD UNet) on Fashion-MNIST, sample with DDIM, check the samples");
  auto options = std::make_shared<meganeura::models::DiffusionOptions>();
  meganeura::models::add_diffusion_options(*sub, *options);
  sub->callback([options] { meganeura::models::train_diffusion(*options, std::cout); });
}
const bool registered = meganeura::cli::register_command("train-diffusion", setup_train_diffusion);
}  // namespace
