// Reference: losses and the cross-entropy gradient.
#include <cmath>
#include <limits>

#include "reference/kernels.h"

namespace meganeura::reference {

namespace {

// Cross entropy over rows of logits [N, C]: per-row softmax, the rows that count and their targets.
struct CrossEntropy {
  int64_t N, C;
  std::vector<double> log_probs;  // [N, C]
  std::vector<double> target;     // [N, C] probabilities (one-hot for class labels, 0 for ignored rows)
  double counted = 0;             // rows in the mean
};

CrossEntropy cross_entropy(const Node& node, const Args& in) {
  CrossEntropy ce{in[0].shape[0], in[0].shape[1], {}, {}, 0};
  const auto N = static_cast<size_t>(ce.N), C = static_cast<size_t>(ce.C);
  ce.log_probs.resize(N * C);
  ce.target.assign(N * C, 0.0);
  const bool class_labels = in[1].dtype == DType::i32;
  for (size_t n = 0; n < N; ++n) {
    double top = -std::numeric_limits<double>::infinity();
    for (size_t c = 0; c < C; ++c) top = std::max(top, in[0].v[n * C + c]);
    double total = 0;
    for (size_t c = 0; c < C; ++c) total += std::exp(in[0].v[n * C + c] - top);
    for (size_t c = 0; c < C; ++c) ce.log_probs[n * C + c] = in[0].v[n * C + c] - top - std::log(total);
    if (!class_labels) {
      for (size_t c = 0; c < C; ++c) ce.target[n * C + c] = in[1].v[n * C + c];
      ce.counted += 1;
      continue;
    }
    const auto label = static_cast<int64_t>(in[1].v[n]);
    if (label == node.attrs.ignore_index) continue;
    if (label < 0 || label >= ce.C)
      throw Error(std::string(op_name(node.op)) + ": label " + std::to_string(label) + " in row " + std::to_string(n) +
                  " is outside [0, " + std::to_string(ce.C) + ") and is not ignore_index " +
                  std::to_string(node.attrs.ignore_index));
    ce.target[n * C + static_cast<size_t>(label)] = 1.0;
    ce.counted += 1;
  }
  return ce;
}

}  // namespace

std::vector<double> eval_loss(const Node& node, const Args& in) {
  switch (node.op) {
    case Op::cross_entropy_loss: {
      const CrossEntropy ce = cross_entropy(node, in);
      if (ce.counted == 0) return {0.0};  // every row ignored: no signal, not NaN
      double total = 0;
      for (size_t i = 0; i < ce.target.size(); ++i)
        if (ce.target[i] != 0.0) total -= ce.target[i] * ce.log_probs[i];
      return {total / ce.counted};
    }
    case Op::cross_entropy_grad: {
      // d/dz of −Σ_c t_c·log_softmax(z)_c is softmax(z)·Σ_c t_c − t.
      const CrossEntropy ce = cross_entropy(node, in);
      std::vector<double> out(ce.target.size(), 0.0);
      if (ce.counted == 0) return out;
      const double scale = in[2].v[0] / ce.counted;
      const auto C = static_cast<size_t>(ce.C);
      for (size_t n = 0; n < static_cast<size_t>(ce.N); ++n) {
        double mass = 0;
        for (size_t c = 0; c < C; ++c) mass += ce.target[n * C + c];
        for (size_t c = 0; c < C; ++c)
          out[n * C + c] = scale * (std::exp(ce.log_probs[n * C + c]) * mass - ce.target[n * C + c]);
      }
      return out;
    }
    case Op::mse_loss: {
      double total = 0;
      for (size_t i = 0; i < in[0].v.size(); ++i) total += (in[0].v[i] - in[1].v[i]) * (in[0].v[i] - in[1].v[i]);
      return {total / static_cast<double>(in[0].v.size())};
    }
    case Op::bce_with_logits: {
      // max(x, 0) − x·t + log(1 + e^{−|x|}): never overflows.
      double total = 0;
      for (size_t i = 0; i < in[0].v.size(); ++i) {
        const double x = in[0].v[i], t = in[1].v[i];
        total += std::max(x, 0.0) - x * t + std::log1p(std::exp(-std::fabs(x)));
      }
      return {total / static_cast<double>(in[0].v.size())};
    }
    default: break;
  }
  throw Error(std::string("reference: ") + op_name(node.op) + " is not a loss");
}

}  // namespace meganeura::reference
