// Quick start: train the 784-128-10 ReLU MLP on Fashion-MNIST (or MNIST with --data DIR) on any
// Vulkan GPU, lavapipe included, and print the test accuracy as the last line.
//
//   ./run.sh mnist                                # Debian's dataset-fashion-mnist, 5 epochs of Adam
//   build/bin/mnist --optimizer sgd --epochs 3 --save mlp.safetensors
//
// The recipe itself (meganeura::train::train_mnist, src/train/mnist.cpp) is a few public calls:
//   auto mnist = meganeura::data::load_mnist(dir);
//   auto session = meganeura::build_session(meganeura::train::mnist_mlp(batch_size), {.seed = seed});
//   meganeura::train::Trainer trainer(session, {.optimizer = meganeura::train::Adam{.lr = 1e-3}});
//   trainer.train(train_loader, epochs);
//   double accuracy = trainer.evaluate(test_loader).accuracy;
#include <iostream>

#include "meganeura/error.h"
#include "meganeura/train.h"
#include "train/mnist_options.h"

int main(int argc, char** argv) {
  meganeura::train::MnistOptions options;
  CLI::App app{"Train a 784-128-10 MLP on Fashion-MNIST (or MNIST) and report the test accuracy"};
  meganeura::train::add_mnist_options(app, options);
  CLI11_PARSE(app, argc, argv);

  try {
    meganeura::train::train_mnist(options, std::cout);
  } catch (const meganeura::Error& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
