// Reference: conv2d and its gradients, pooling, upsampling (all NCHW).
#include <limits>

#include "reference/kernels.h"

namespace meganeura::reference {

namespace {

struct ConvGeometry {
  int64_t N, Cin, H, W, Cout, kh, kw, Ho, Wo, groups;
  int64_t sh, sw, ph, pw, dh, dw;
};

// The one loop nest all three conv ops share: visits every (output, weight) pair that meets a real
// (unpadded) input element, with flat indices into x, w and y.
template <typename Visit>
void for_each_tap(const ConvGeometry& g, Visit visit) {
  const int64_t cin_per = g.Cin / g.groups, cout_per = g.Cout / g.groups;
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t co = 0; co < g.Cout; ++co) {
      const int64_t group = co / cout_per;
      for (int64_t oh = 0; oh < g.Ho; ++oh)
        for (int64_t ow = 0; ow < g.Wo; ++ow) {
          const int64_t y_at = ((n * g.Cout + co) * g.Ho + oh) * g.Wo + ow;
          for (int64_t ci = 0; ci < cin_per; ++ci)
            for (int64_t r = 0; r < g.kh; ++r) {
              const int64_t h = oh * g.sh - g.ph + r * g.dh;
              if (h < 0 || h >= g.H) continue;
              for (int64_t s = 0; s < g.kw; ++s) {
                const int64_t w = ow * g.sw - g.pw + s * g.dw;
                if (w < 0 || w >= g.W) continue;
                const int64_t x_at = ((n * g.Cin + group * cin_per + ci) * g.H + h) * g.W + w;
                const int64_t w_at = ((co * cin_per + ci) * g.kh + r) * g.kw + s;
                visit(static_cast<size_t>(x_at), static_cast<size_t>(w_at), static_cast<size_t>(y_at));
              }
            }
        }
    }
}

ConvGeometry geometry(const Node& node, const Shape& x, const Shape& w, const Shape& y) {
  const auto& i = node.attrs.ints;
  return {x[0], x[1], x[2], x[3], w[0], w[2], w[3], y[2], y[3], node.attrs.groups, i[0], i[1], i[2], i[3], i[4], i[5]};
}

struct PoolGeometry {
  int64_t N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo;
};

PoolGeometry pool_geometry(const Node& node, const Shape& x, const Shape& y) {
  const auto& i = node.attrs.ints;
  return {x[0], x[1], x[2], x[3], i[0], i[1], i[2], i[3], i[4], i[5], y[2], y[3]};
}

// Visits each pooling window with the flat indices of its in-bounds input elements.
template <typename Visit>
void for_each_window(const PoolGeometry& g, Visit visit) {
  std::vector<size_t> taps;
  for (int64_t nc = 0; nc < g.N * g.C; ++nc)
    for (int64_t oh = 0; oh < g.Ho; ++oh)
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        taps.clear();
        for (int64_t r = 0; r < g.kh; ++r)
          for (int64_t s = 0; s < g.kw; ++s) {
            const int64_t h = oh * g.sh - g.ph + r, w = ow * g.sw - g.pw + s;
            if (h >= 0 && h < g.H && w >= 0 && w < g.W) taps.push_back(static_cast<size_t>((nc * g.H + h) * g.W + w));
          }
        visit(static_cast<size_t>((nc * g.Ho + oh) * g.Wo + ow), taps);
      }
}

}  // namespace

std::vector<double> eval_conv(const Node& node, const Args& in) {
  std::vector<double> out(static_cast<size_t>(num_elements(node.shape)), 0.0);
  switch (node.op) {
    case Op::conv2d: {
      const auto g = geometry(node, in[0].shape, in[1].shape, node.shape);
      for_each_tap(g, [&](size_t x, size_t w, size_t y) { out[y] += in[0].v[x] * in[1].v[w]; });
      return out;
    }
    case Op::conv2d_grad_input: {  // in: dy, w → dx
      const auto g = geometry(node, node.shape, in[1].shape, in[0].shape);
      for_each_tap(g, [&](size_t x, size_t w, size_t y) { out[x] += in[0].v[y] * in[1].v[w]; });
      return out;
    }
    case Op::conv2d_grad_weight: {  // in: x, dy → dw
      const auto g = geometry(node, in[0].shape, node.shape, in[1].shape);
      for_each_tap(g, [&](size_t x, size_t w, size_t y) { out[w] += in[0].v[x] * in[1].v[y]; });
      return out;
    }
    case Op::max_pool2d:
    case Op::max_pool2d_grad: {
      const auto g = pool_geometry(node, in[0].shape, node.op == Op::max_pool2d ? node.shape : in[1].shape);
      for_each_window(g, [&](size_t y, const std::vector<size_t>& taps) {
        size_t best = taps.empty() ? 0 : taps[0];
        for (size_t t : taps)
          if (in[0].v[t] > in[0].v[best]) best = t;  // first maximum wins ties
        if (node.op == Op::max_pool2d)
          out[y] = taps.empty() ? -std::numeric_limits<double>::infinity() : in[0].v[best];
        else if (!taps.empty())
          out[best] += in[1].v[y];
      });
      return out;
    }
    case Op::avg_pool2d:
    case Op::avg_pool2d_grad: {
      const bool forward = node.op == Op::avg_pool2d;
      const auto g = pool_geometry(node, forward ? in[0].shape : node.shape, forward ? node.shape : in[0].shape);
      const double count = static_cast<double>(g.kh * g.kw);  // padding counts (PyTorch's default)
      for_each_window(g, [&](size_t y, const std::vector<size_t>& taps) {
        for (size_t t : taps) {
          if (forward)
            out[y] += in[0].v[t] / count;
          else
            out[t] += in[0].v[y] / count;
        }
      });
      return out;
    }
    case Op::upsample_nearest2x:
    case Op::upsample_nearest2x_grad: {
      const bool forward = node.op == Op::upsample_nearest2x;
      const Shape& big = forward ? node.shape : in[0].shape;
      const int64_t NC = big[0] * big[1], H2 = big[2], W2 = big[3];
      for (int64_t nc = 0; nc < NC; ++nc)
        for (int64_t h = 0; h < H2; ++h)
          for (int64_t w = 0; w < W2; ++w) {
            const auto large = static_cast<size_t>((nc * H2 + h) * W2 + w);
            const auto small = static_cast<size_t>((nc * (H2 / 2) + h / 2) * (W2 / 2) + w / 2);
            if (forward)
              out[large] = in[0].v[small];
            else
              out[small] += in[0].v[large];
          }
      return out;
    }
    case Op::global_avg_pool: {
      const int64_t plane = in[0].shape[2] * in[0].shape[3];
      for (size_t nc = 0; nc < out.size(); ++nc) {
        double total = 0;
        for (int64_t k = 0; k < plane; ++k) total += in[0].v[nc * static_cast<size_t>(plane) + static_cast<size_t>(k)];
        out[nc] = total / static_cast<double>(plane);
      }
      return out;
    }
    default: break;
  }
  throw Error(std::string("reference: ") + op_name(node.op) + " is not a conv op");
}

}  // namespace meganeura::reference
