// `meganeura train-mnist`: the quick start (examples/mnist.cpp) as a subcommand, same options.
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "meganeura/distributed.h"
#include "train/mnist_options.h"

namespace {
void setup_train_mnist(CLI::App& app) {
  auto* sub = app.add_subcommand("train-mnist", "Train the 784-128-10 MLP on Fashion-MNIST (or MNIST) and test it");
  auto options = std::make_shared<meganeura::train::MnistOptions>();
  meganeura::train::add_mnist_options(*sub, *options);
  sub->callback([options] {
    // Under mpirun every rank trains its share of each batch (data-parallel, gradients averaged).
    std::unique_ptr<meganeura::distributed::MpiReducer> mpi;
    if (meganeura::distributed::launched_by_mpi()) {
      mpi = std::make_unique<meganeura::distributed::MpiReducer>();
      options->reducer = mpi.get();
    }
    meganeura::train::train_mnist(*options, std::cout);
  });
}
const bool registered = meganeura::cli::register_command("train-mnist", setup_train_mnist);
}  // namespace
