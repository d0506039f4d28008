// The MNIST quick start shared by examples/mnist.cpp and `meganeura train-mnist`: load the data,
// build the MLP, train, evaluate. Read top to bottom, it is the whole recipe.
#include <iomanip>
#include <ostream>

#include "meganeura/error.h"
#include "meganeura/nn.h"
#include "meganeura/train.h"

namespace meganeura::train {

Graph mnist_mlp(int64_t batch_size) {
  Graph graph;
  Tensor x = graph.input("x", {batch_size, 784});
  Tensor labels = graph.input("labels", {batch_size}, DType::i32);
  nn::Linear fc1(graph, "fc1", 784, 128, /*bias=*/true);
  nn::Linear fc2(graph, "fc2", 128, 10, /*bias=*/true);
  Tensor logits = fc2.forward(graph, graph.relu(fc1.forward(graph, x)));
  graph.set_name(logits, "logits");
  graph.set_outputs({graph.cross_entropy_loss(logits, labels), logits});
  return graph;
}

void validate(const MnistOptions& options) {
  if (options.epochs < 1) throw Error("--epochs must be at least 1, got " + std::to_string(options.epochs));
  if (options.batch_size < 1) {
    throw Error("--batch-size must be at least 1, got " + std::to_string(options.batch_size));
  }
  if (options.optimizer != "sgd" && options.optimizer != "adam") {
    throw Error("--optimizer must be sgd or adam, got '" + options.optimizer + "'");
  }
  if (!(options.lr >= 0) || options.lr > 10) {
    throw Error("--lr must lie in (0, 10] (0 picks the optimizer's default), got " + std::to_string(options.lr));
  }
}

double train_mnist(const MnistOptions& options, std::ostream& out_stream) {
  validate(options);
  // With several ranks only rank 0 speaks; the others train silently beside it.
  GradientReducer* reducer = options.reducer;
  const int ranks = reducer ? reducer->world_size() : 1;
  std::ostream silent(nullptr);
  std::ostream& out = reducer && reducer->rank() != 0 ? silent : out_stream;
  out << "loading " << options.data.string() << '\n';
  const data::MnistData mnist = data::load_mnist(options.data);
  if (mnist.train.features != 784) {
    throw Error("--data " + options.data.string() + ": images have " + std::to_string(mnist.train.features) +
                " pixels, the MLP expects 28x28 = 784");
  }

  // The session's shapes are fixed: train on whole batches, evaluate padded ones (only real rows count).
  Session session = build_session(mnist_mlp(options.batch_size), {.seed = options.seed});
  data::DataLoader train_loader(mnist.train,
                                {.batch_size = options.batch_size * ranks, .drop_last = true, .seed = options.seed});
  data::DataLoader test_loader(mnist.test, {.batch_size = options.batch_size, .shuffle = false, .pad_last = true});

  TrainConfig config;
  if (options.optimizer == "sgd") {
    config.optimizer = Sgd{.lr = options.lr > 0 ? options.lr : 0.05, .momentum = 0.9};
  } else {
    config.optimizer = Adam{.lr = options.lr > 0 ? options.lr : 1e-3};
  }
  config.log_interval = 100;
  config.out = &out;
  config.reducer = reducer;
  if (reducer && reducer->rank() != 0) config.progress = Progress::off;
  Trainer trainer(session, config);
  out << "training the 784-128-10 MLP: " << mnist.train.size << " images, " << options.epochs << " epochs, batch "
      << options.batch_size;
  if (ranks > 1) out << " per rank x " << ranks << " ranks";
  out << ", " << options.optimizer << '\n';
  trainer.train(train_loader, options.epochs);

  if (!options.save.empty() && (!reducer || reducer->rank() == 0)) {
    session.save_parameters(options.save.string());
    out << "saved parameters to " << options.save.string() << '\n';
  }
  const Evaluation test = trainer.evaluate(test_loader);
  out << "test loss: " << std::fixed << std::setprecision(4) << test.loss << '\n'
      << "test accuracy: " << test.accuracy << '\n'
      << std::defaultfloat << std::setprecision(6) << std::flush;
  return test.accuracy;
}

}  // namespace meganeura::train
