// A program outside the project, built against the installed package: one training step of a tiny
// MLP on the GPU (lavapipe in CI), the loss read back.
#include <meganeura/graph.h>
#include <meganeura/session.h>

#include <cmath>
#include <iostream>
#include <vector>

int main() {
  meganeura::Graph g;
  auto x = g.input("x", {4, 8});
  auto labels = g.input("labels", {4}, meganeura::DType::i32);
  auto w = g.parameter("fc.weight", {3, 8}, meganeura::Init::kaiming());
  auto b = g.parameter("fc.bias", {3});
  g.set_outputs({g.cross_entropy_loss(g.matmul(x, w, false, true) + b, labels)});

  auto session = meganeura::build_session(g, {.seed = 1});
  session.set_optimizer(meganeura::OptimizerSpec::sgd(0.1));
  std::vector<float> images(32);
  for (size_t i = 0; i < images.size(); ++i) images[i] = std::sin(float(i));
  const std::vector<int32_t> classes = {0, 1, 2, 1};
  session.set_input("x", images);
  session.set_input("labels", classes);
  session.step();
  const float first = session.read_loss();
  for (int i = 0; i < 20; ++i) session.step();
  const float last = session.read_loss();
  if (!std::isfinite(first) || !(last < first)) {
    std::cerr << "loss did not fall: " << first << " -> " << last << "\n";
    return 1;
  }
  std::cout << "consumer ok: loss " << first << " -> " << last << "\n";
  return 0;
}
