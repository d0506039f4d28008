// The quick start's command-line options, shared by examples/mnist.cpp and `meganeura train-mnist`.
//
//   meganeura::train::MnistOptions options;
//   CLI::App app{"Train an MLP on Fashion-MNIST"};
//   meganeura::train::add_mnist_options(app, options);
//   CLI11_PARSE(app, argc, argv);
//   meganeura::train::train_mnist(options, std::cout);
//
// Header only, so the training library itself does not depend on CLI11.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "meganeura/train.h"

namespace meganeura::train {

inline void add_mnist_options(CLI::App& app, MnistOptions& options) {
  app.add_option("--data", options.data, "Folder with the MNIST-format IDX files (plain or .gz)")
      ->check(CLI::ExistingDirectory)
      ->capture_default_str();
  app.add_option("--epochs", options.epochs, "Passes over the training set")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}))
      ->capture_default_str();
  app.add_option("--batch-size", options.batch_size, "Samples per step")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  app.add_option("--lr", options.lr, "Learning rate (default: 1e-3 for adam, 0.05 for sgd)")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            try {
              const double value = std::stod(text);
              if (value > 0 && value <= 10) return {};
            } catch (const std::exception&) {
            }
            return "the learning rate must be a number in (0, 10], got " + text;
          },
          "(0, 10]"));
  app.add_option("--optimizer", options.optimizer, "sgd (momentum 0.9) or adam")
      ->check(CLI::IsMember({"sgd", "adam"}))
      ->capture_default_str();
  app.add_option("--seed", options.seed, "Seed for the initial weights and the shuffling")->capture_default_str();
  app.add_option("--save", options.save, "Write the trained parameters to this safetensors file");
}

}  // namespace meganeura::train
