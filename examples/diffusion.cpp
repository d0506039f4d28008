// Class-conditional diffusion: a small Stable Diffusion UNet learns Fashion-MNIST as a DDPM (noise
// prediction, class through cross-attention), samples a grid with DDIM and classifier-free guidance,
// and the quick start's classifier checks that each row shows the class it was asked for.
//
//   build/bin/diffusion --out diffusion-out           # Debian's dataset-fashion-mnist
//   build/bin/diffusion --data DIR --steps 2000 --guidance 2
//
// The recipe (meganeura::models::train_diffusion, src/models/diffusion_train.cpp) prints its
// progress and timing and, last, the share of samples labelled as the requested class.
#include <iostream>

#include "meganeura/error.h"
#include "models/diffusion_options.h"

int main(int argc, char** argv) {
  meganeura::models::DiffusionOptions options;
  CLI::App app{"Train a class-conditional DDPM on Fashion-MNIST, sample a grid and check it with a classifier"};
  meganeura::models::add_diffusion_options(app, options);
  CLI11_PARSE(app, argc, argv);

  try {
    meganeura::models::train_diffusion(options, std::cout);
  } catch (const meganeura::Error& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
