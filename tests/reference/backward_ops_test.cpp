// The backward ops of the table against central finite differences of their forward ops on the
// reference: for a forward node F and upstream gradient dout, the backward node must equal
// ∂(Σ dout·F)/∂x. Relative error (per tensor) ≤ 1e-6 in double.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "meganeura/reference.h"

using namespace meganeura;
using reference::Feeds;

namespace {

class Fixture {
 public:
  Tensor real(const std::string& name, Shape shape, double low = -1.0, double high = 1.0) {
    Tensor t = g.input(name, shape);
    std::uniform_real_distribution<double> dist(low, high);
    auto& v = feeds[name];
    v.resize(static_cast<size_t>(num_elements(shape)));
    for (double& x : v) x = dist(rng);
    return t;
  }
  Tensor ints(const std::string& name, Shape shape, std::vector<double> values) {
    Tensor t = g.input(name, shape, DType::i32);
    feeds[name] = std::move(values);
    return t;
  }

  // Σ dout·F at the current feeds.
  double objective(const Feeds& f, Tensor forward, const std::string& dout) const {
    const auto values = reference::run(g, f);
    const auto& y = values[static_cast<size_t>(forward.id)];
    const auto& w = f.at(dout);
    double total = 0;
    for (size_t i = 0; i < y.size(); ++i) total += w[w.size() == 1 ? 0 : i] * y[i];
    return total;
  }

  // Relative error ‖analytic − numeric‖ / ‖numeric‖ of backward against ∂(Σ dout·F)/∂wrt.
  double relative_error(Tensor forward, const std::string& dout, const std::string& wrt, Tensor backward) const {
    const auto analytic = reference::run(g, feeds)[static_cast<size_t>(backward.id)];
    const auto& x = feeds.at(wrt);
    EXPECT_EQ(analytic.size(), x.size());
    double diff = 0, norm = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double h = 1e-5 * std::max(1.0, std::fabs(x[i]));
      Feeds plus = feeds, minus = feeds;
      plus[wrt][i] += h;
      minus[wrt][i] -= h;
      const double numeric = (objective(plus, forward, dout) - objective(minus, forward, dout)) / (2 * h);
      diff += (analytic[i] - numeric) * (analytic[i] - numeric);
      norm += numeric * numeric;
    }
    EXPECT_GT(norm, 1e-12) << "numeric gradient is zero: the check would be vacuous";
    return std::sqrt(diff / norm);
  }

  Graph g;
  Feeds feeds;
  std::mt19937_64 rng{42};
};

constexpr double kTolerance = 1e-6;

}  // namespace

TEST(BackwardOps, AttentionGradCausalMaskedGrouped) {
  Fixture f;
  Tensor q = f.real("q", {2, 4, 3, 4}), k = f.real("k", {2, 2, 5, 4}), v = f.real("v", {2, 2, 5, 3});
  Tensor mask = f.real("mask", {1, 1, 3, 5});
  Tensor dout = f.real("dout", {2, 4, 3, 3});
  const AttentionOptions options{.causal = true, .scale = 0.7};
  Tensor out = f.g.attention(q, k, v, options, mask);
  Tensor lse = f.g.attention_lse(q, k, options, mask);
  EXPECT_LT(f.relative_error(out, "dout", "q", f.g.attention_grad_q(q, k, v, out, dout, lse, options, mask)), kTolerance);
  EXPECT_LT(f.relative_error(out, "dout", "k", f.g.attention_grad_k(q, k, v, out, dout, lse, options, mask)), kTolerance);
  EXPECT_LT(f.relative_error(out, "dout", "v", f.g.attention_grad_v(q, k, v, out, dout, lse, options, mask)), kTolerance);
}

TEST(BackwardOps, AttentionGradWithPositionOffset) {
  Fixture f;
  Tensor q = f.real("q", {1, 2, 2, 4}), k = f.real("k", {1, 1, 6, 4}), v = f.real("v", {1, 1, 6, 4});
  Tensor offset = f.ints("offset", {1}, {3});
  Tensor dout = f.real("dout", {1, 2, 2, 4});
  const AttentionOptions options{.causal = true};
  Tensor out = f.g.attention(q, k, v, options, std::nullopt, offset);
  Tensor lse = f.g.attention_lse(q, k, options, std::nullopt, offset);
  EXPECT_LT(
      f.relative_error(out, "dout", "q", f.g.attention_grad_q(q, k, v, out, dout, lse, options, std::nullopt, offset)),
      kTolerance);
  EXPECT_LT(
      f.relative_error(out, "dout", "k", f.g.attention_grad_k(q, k, v, out, dout, lse, options, std::nullopt, offset)),
      kTolerance);
  EXPECT_LT(
      f.relative_error(out, "dout", "v", f.g.attention_grad_v(q, k, v, out, dout, lse, options, std::nullopt, offset)),
      kTolerance);
}

TEST(BackwardOps, Conv2dGradInputAndWeight) {
  Fixture f;
  const Conv2dOptions options{.stride = {2, 1}, .padding = {1, 2}, .dilation = {1, 2}, .groups = 2};
  Tensor x = f.real("x", {2, 4, 5, 6}), w = f.real("w", {6, 2, 3, 2});
  Tensor y = f.g.conv2d(x, w, options);
  Tensor dy = f.real("dy", y.shape());
  EXPECT_LT(f.relative_error(y, "dy", "x", f.g.conv2d_grad_input(dy, w, options, {5, 6})), kTolerance);
  EXPECT_LT(f.relative_error(y, "dy", "w", f.g.conv2d_grad_weight(x, dy, options, {3, 2})), kTolerance);
}

TEST(BackwardOps, PoolingAndUpsamplingGrads) {
  Fixture f;
  const Pool2dOptions pool{.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}};
  Tensor x = f.real("x", {1, 2, 5, 5});
  Tensor mp = f.g.max_pool2d(x, pool), ap = f.g.avg_pool2d(x, pool), up = f.g.upsample_nearest2x(x);
  Tensor dmp = f.real("dmp", mp.shape()), dap = f.real("dap", ap.shape()), dup = f.real("dup", up.shape());
  EXPECT_LT(f.relative_error(mp, "dmp", "x", f.g.max_pool2d_grad(x, dmp, pool)), kTolerance);
  EXPECT_LT(f.relative_error(ap, "dap", "x", f.g.avg_pool2d_grad(dap, pool, {5, 5})), kTolerance);
  EXPECT_LT(f.relative_error(up, "dup", "x", f.g.upsample_nearest2x_grad(dup)), kTolerance);
}

TEST(BackwardOps, SoftmaxAndLogSoftmaxGrads) {
  Fixture f;
  Tensor x = f.real("x", {3, 4, 2});
  Tensor s = f.g.softmax(x, 1), ls = f.g.log_softmax(x, -1);
  Tensor ds = f.real("ds", s.shape()), dls = f.real("dls", ls.shape());
  EXPECT_LT(f.relative_error(s, "ds", "x", f.g.softmax_grad(s, ds, 1)), kTolerance);
  EXPECT_LT(f.relative_error(ls, "dls", "x", f.g.log_softmax_grad(ls, dls, -1)), kTolerance);
}

TEST(BackwardOps, NormGrads) {
  Fixture f;
  Tensor x = f.real("x", {2, 3, 5}), w = f.real("w", {5}), b = f.real("b", {5});
  Tensor gx = f.real("gx", {2, 4, 3, 2}), gw = f.real("gw", {4}), gb = f.real("gb", {4});
  Tensor ln = f.g.layer_norm(x, w, b, 1e-3), rms = f.g.rms_norm(x, w, 1e-3), gn = f.g.group_norm(gx, gw, gb, 2, 1e-3);
  Tensor dln = f.real("dln", ln.shape()), drms = f.real("drms", rms.shape()), dgn = f.real("dgn", gn.shape());
  EXPECT_LT(f.relative_error(ln, "dln", "x", f.g.layer_norm_grad(x, w, dln, 1e-3)), kTolerance);
  EXPECT_LT(f.relative_error(rms, "drms", "x", f.g.rms_norm_grad(x, w, drms, 1e-3)), kTolerance);
  EXPECT_LT(f.relative_error(gn, "dgn", "gx", f.g.group_norm_grad(gx, gw, dgn, 2, 1e-3)), kTolerance);
}

TEST(BackwardOps, RopeGradIsInverseRotation) {
  Fixture f;
  Tensor x = f.real("x", {1, 2, 3, 6});
  Tensor offset = f.ints("offset", {}, {5});
  Tensor y = f.g.rope(x, offset, 100.0);
  Tensor dy = f.real("dy", y.shape());
  EXPECT_LT(f.relative_error(y, "dy", "x", f.g.rope_grad(dy, offset, 100.0)), kTolerance);
}

TEST(BackwardOps, EmbeddingGradIsScatterAddRows) {
  Fixture f;
  Tensor table = f.real("table", {5, 3});
  Tensor ids = f.ints("ids", {2, 3}, {4, 0, 4, 2, 1, 4});
  Tensor y = f.g.embedding(table, ids);
  Tensor dy = f.real("dy", y.shape());
  EXPECT_LT(f.relative_error(y, "dy", "table", f.g.scatter_add_rows(dy, ids, 5)), kTolerance);
}

TEST(BackwardOps, CrossEntropyGradClassAndProbabilityLabels) {
  Fixture f;
  Tensor logits = f.real("logits", {4, 3}, -2.0, 2.0);
  Tensor labels = f.ints("labels", {4}, {2, -100, 0, 1});
  Tensor probs = f.real("probs", {4, 3}, 0.0, 1.0);
  Tensor dloss = f.real("dloss", {}, 0.5, 2.0);
  Tensor ce = f.g.cross_entropy_loss(logits, labels), cep = f.g.cross_entropy_loss(logits, probs);
  EXPECT_LT(f.relative_error(ce, "dloss", "logits", f.g.cross_entropy_grad(logits, labels, dloss)), kTolerance);
  EXPECT_LT(f.relative_error(cep, "dloss", "logits", f.g.cross_entropy_grad(logits, probs, dloss)), kTolerance);
}

TEST(BackwardOps, DropoutGradIsTheSameMask) {
  Fixture f;
  Tensor x = f.real("x", {6, 7});
  Tensor seed = f.ints("seed", {1}, {11}), step = f.ints("step", {1}, {4});
  Tensor y = f.g.dropout(x, seed, step, 0.4);
  Tensor dy = f.real("dy", y.shape());
  EXPECT_LT(f.relative_error(y, "dy", "x", f.g.dropout(dy, seed, step, 0.4)), kTolerance);
}
