// Reference: softmax family, layer/RMS/group norms and rotary embeddings, forward and backward;
// the top-k / top-p sampling filter.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "reference/kernels.h"

namespace meganeura::reference {

namespace {

// Calls visit(indices) for every line of `shape` along `axis`, with the line's flat indices.
template <typename Visit>
void for_each_line(const Shape& shape, size_t axis, Visit visit) {
  const int64_t outer = span(shape, 0, axis), dim = shape[axis], inner = span(shape, axis + 1, shape.size());
  std::vector<size_t> line(static_cast<size_t>(dim));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < inner; ++k) {
      for (int64_t d = 0; d < dim; ++d) line[static_cast<size_t>(d)] = static_cast<size_t>((o * dim + d) * inner + k);
      visit(line);
    }
}

std::vector<double> softmax_family(const Node& node, const Args& in) {
  std::vector<double> out(in[0].v.size());
  const auto& x = in[0].v;
  for_each_line(in[0].shape, static_cast<size_t>(node.attrs.axis), [&](const std::vector<size_t>& line) {
    switch (node.op) {
      case Op::softmax:
      case Op::log_softmax: {
        double top = -std::numeric_limits<double>::infinity();
        for (size_t i : line) top = std::max(top, x[i]);
        double total = 0;
        for (size_t i : line) total += std::exp(x[i] - top);
        for (size_t i : line)
          out[i] = node.op == Op::softmax ? std::exp(x[i] - top) / total : x[i] - top - std::log(total);
        break;
      }
      case Op::softmax_grad: {  // y·(dy − Σ dy·y)
        double dot = 0;
        for (size_t i : line) dot += in[1].v[i] * x[i];
        for (size_t i : line) out[i] = x[i] * (in[1].v[i] - dot);
        break;
      }
      default: {  // log_softmax_grad: dy − e^y·Σ dy
        double total = 0;
        for (size_t i : line) total += in[1].v[i];
        for (size_t i : line) out[i] = in[1].v[i] - std::exp(x[i]) * total;
        break;
      }
    }
  });
  return out;
}

// Normalisation over groups of elements. `members(group)` lists a group's flat indices and
// `channel(index)` the index into weight/bias.
std::vector<double> normalize(const Node& node, const Args& in, const std::vector<std::vector<size_t>>& groups,
                              const std::vector<size_t>& channel) {
  const auto& x = in[0].v;
  const auto& w = in[1].v;
  const double eps = node.attrs.eps;
  const bool rms = node.op == Op::rms_norm || node.op == Op::rms_norm_grad;
  const bool backward = node.op == Op::rms_norm_grad || node.op == Op::layer_norm_grad || node.op == Op::group_norm_grad;
  std::vector<double> out(x.size());
  for (const auto& members : groups) {
    const auto n = static_cast<double>(members.size());
    double mean = 0;
    if (!rms) {
      for (size_t i : members) mean += x[i];
      mean /= n;
    }
    double second = 0;  // variance (layer/group) or mean square (rms)
    for (size_t i : members) second += (x[i] - mean) * (x[i] - mean);
    second /= n;
    const double inv = 1.0 / std::sqrt(second + eps);
    if (!backward) {
      for (size_t i : members) {
        out[i] = (x[i] - mean) * inv * w[channel[i]];
        if (!rms) out[i] += in[2].v[channel[i]];
      }
      continue;
    }
    // With g = dy·w and x̂ = (x − mean)·inv: dx = inv·(g − mean(g)·[not rms] − x̂·mean(g·x̂)).
    const auto& dy = in[2].v;
    double mean_g = 0, mean_gx = 0;
    for (size_t i : members) {
      const double g = dy[i] * w[channel[i]];
      mean_g += g;
      mean_gx += g * (x[i] - mean) * inv;
    }
    mean_g /= n;
    mean_gx /= n;
    for (size_t i : members) {
      const double g = dy[i] * w[channel[i]];
      out[i] = inv * (g - (rms ? 0.0 : mean_g) - (x[i] - mean) * inv * mean_gx);
    }
  }
  return out;
}

std::vector<double> rope(const Node& node, const Args& in) {
  const Shape& shape = in[0].shape;
  const size_t r = shape.size();
  const int64_t S = shape[r - 2], D = shape[r - 1], half = D / 2, rows = span(shape, 0, r - 2);
  const int64_t offset = index_scalar(in[1]);
  const double sign = node.op == Op::rope ? 1.0 : -1.0;  // the backward rotates by −angle
  std::vector<double> out(in[0].v.size());
  for (int64_t row = 0; row < rows; ++row)
    for (int64_t s = 0; s < S; ++s) {
      const auto base = static_cast<size_t>((row * S + s) * D);
      for (int64_t i = 0; i < half; ++i) {
        const double inv_freq = std::pow(node.attrs.theta, -2.0 * static_cast<double>(i) / static_cast<double>(D));
        const double angle = static_cast<double>(offset + s) * inv_freq;
        const double c = std::cos(angle), sn = sign * std::sin(angle);
        const double x1 = in[0].v[base + static_cast<size_t>(i)], x2 = in[0].v[base + static_cast<size_t>(i + half)];
        out[base + static_cast<size_t>(i)] = x1 * c - x2 * sn;
        out[base + static_cast<size_t>(i + half)] = x2 * c + x1 * sn;
      }
    }
  return out;
}

// Top-k then top-p over each row of the last dim; ties at a threshold are all kept.
std::vector<double> top_k_top_p_mask(const Args& in) {
  constexpr double kMasked = -1e30;
  const auto& x = in[0].v;
  const size_t V = static_cast<size_t>(in[0].shape.back()), rows = x.size() / V;
  const int64_t k = index_scalar(in[1]);
  const double p = in[2].v.at(0);
  std::vector<double> out(x.size(), kMasked);
  for (size_t row = 0; row < rows; ++row) {
    const auto first = x.begin() + static_cast<std::ptrdiff_t>(row * V);
    std::vector<double> sorted(first, first + static_cast<std::ptrdiff_t>(V));
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    const double kth = k > 0 && static_cast<size_t>(k) < V ? sorted[static_cast<size_t>(k - 1)] : sorted.back();
    // prefix[j]: the mass of the j largest values (all survivors when they are >= kth).
    std::vector<double> prefix(V + 1, 0.0);
    for (size_t j = 0; j < V; ++j)
      prefix[j + 1] = prefix[j] + (sorted[j] >= kth ? std::exp(sorted[j] - sorted[0]) : 0.0);
    for (size_t i = 0; i < V; ++i) {
      const double v = x[row * V + i];
      if (v < kth) continue;
      const auto larger = std::partition_point(sorted.begin(), sorted.end(), [&](double w) { return w > v; });
      const double above = prefix[static_cast<size_t>(larger - sorted.begin())];
      if (p >= 1 || above < p * prefix[V]) out[row * V + i] = 0;
    }
  }
  return out;
}

}  // namespace

std::vector<double> eval_nn(const Node& node, const Args& in) {
  switch (node.op) {
    case Op::softmax:
    case Op::log_softmax:
    case Op::softmax_grad:
    case Op::log_softmax_grad:
      return softmax_family(node, in);
    case Op::layer_norm:
    case Op::layer_norm_grad:
    case Op::rms_norm:
    case Op::rms_norm_grad: {
      const Shape& shape = in[0].shape;
      const int64_t D = shape.back(), rows = span(shape, 0, shape.size() - 1);
      std::vector<std::vector<size_t>> groups(static_cast<size_t>(rows));
      std::vector<size_t> channel(in[0].v.size());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t d = 0; d < D; ++d) {
          const auto i = static_cast<size_t>(r * D + d);
          groups[static_cast<size_t>(r)].push_back(i);
          channel[i] = static_cast<size_t>(d);
        }
      return normalize(node, in, groups, channel);
    }
    case Op::group_norm:
    case Op::group_norm_grad: {
      const Shape& shape = in[0].shape;
      const int64_t N = shape[0], C = shape[1], G = node.attrs.groups, plane = span(shape, 2, shape.size());
      std::vector<std::vector<size_t>> groups(static_cast<size_t>(N * G));
      std::vector<size_t> channel(in[0].v.size());
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t k = 0; k < plane; ++k) {
            const auto i = static_cast<size_t>((n * C + c) * plane + k);
            groups[static_cast<size_t>(n * G + c / (C / G))].push_back(i);
            channel[i] = static_cast<size_t>(c);
          }
      return normalize(node, in, groups, channel);
    }
    case Op::rope:
    case Op::rope_grad:
      return rope(node, in);
    case Op::top_k_top_p_mask:
      return top_k_top_p_mask(in);
    default: break;
  }
  throw Error(std::string("reference: ") + op_name(node.op) + " is not an nn op");
}

}  // namespace meganeura::reference
