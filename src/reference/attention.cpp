// Reference: scaled dot-product attention (causal/full, grouped-query heads, additive mask,
// position offset for KV caches) and its three gradients.
#include <cmath>
#include <limits>

#include "reference/kernels.h"

namespace meganeura::reference {

namespace {

struct Problem {
  int64_t B, Hq, Hkv, S, Skv, D, Dv;
  double scale;
  const Arg *q, *k, *v, *dout = nullptr, *mask = nullptr;
  bool causal;
  bool has_offset = false;
  int64_t offset = 0;
};

Problem describe(const Node& node, const Args& in, size_t fixed) {
  Problem p{};
  p.q = &in[0];
  p.k = &in[1];
  p.v = &in[2];
  p.B = in[0].shape[0], p.Hq = in[0].shape[1], p.S = in[0].shape[2], p.D = in[0].shape[3];
  p.Hkv = in[1].shape[1], p.Skv = in[1].shape[2], p.Dv = in[2].shape[3];
  p.scale = node.attrs.scale != 0.0 ? node.attrs.scale : 1.0 / std::sqrt(static_cast<double>(p.D));
  p.causal = node.attrs.causal;
  if (fixed == 5) p.dout = &in[4];
  for (size_t j = fixed; j < in.size(); ++j) {
    if (in[j].dtype == DType::i32) {
      p.has_offset = true;
      p.offset = index_scalar(in[j]);
    } else {
      p.mask = &in[j];
    }
  }
  return p;
}

// Softmax probabilities of one query row over the keys; masked keys get 0. A row with no visible
// key is all zeros (its output is 0).
std::vector<double> probabilities(const Problem& p, int64_t b, int64_t h, int64_t i) {
  const int64_t kv_head = h / (p.Hq / p.Hkv);
  const int64_t position = p.has_offset ? p.offset + i : p.Skv - p.S + i;
  const int64_t visible_end = p.has_offset ? p.offset + p.S : p.Skv;  // unwritten cache slots are hidden
  std::vector<double> scores(static_cast<size_t>(p.Skv), -std::numeric_limits<double>::infinity());
  const Shape score_shape{p.B, p.Hq, p.S, p.Skv};
  double top = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < p.Skv; ++j) {
    if (j >= visible_end || (p.causal && j > position)) continue;
    double dot = 0;
    for (int64_t d = 0; d < p.D; ++d)
      dot += p.q->v[static_cast<size_t>(((b * p.Hq + h) * p.S + i) * p.D + d)] *
             p.k->v[static_cast<size_t>(((b * p.Hkv + kv_head) * p.Skv + j) * p.D + d)];
    double s = dot * p.scale;
    if (p.mask) s += p.mask->v[static_cast<size_t>(broadcast_offset(p.mask->shape, score_shape, {b, h, i, j}))];
    scores[static_cast<size_t>(j)] = s;
    top = std::max(top, s);
  }
  if (top == -std::numeric_limits<double>::infinity()) return std::vector<double>(static_cast<size_t>(p.Skv), 0.0);
  double total = 0;
  for (double& s : scores) total += (s = std::exp(s - top));
  for (double& s : scores) s /= total;
  return scores;
}

}  // namespace

std::vector<double> eval_attention(const Node& node, const Args& in) {
  const Problem p = describe(node, in, node.op == Op::attention ? 3 : 5);
  const int64_t group = p.Hq / p.Hkv;
  auto q_at = [&](int64_t b, int64_t h, int64_t i, int64_t d) {
    return static_cast<size_t>(((b * p.Hq + h) * p.S + i) * p.D + d);
  };
  auto k_at = [&](int64_t b, int64_t h, int64_t j, int64_t d) {
    return static_cast<size_t>(((b * p.Hkv + h) * p.Skv + j) * p.D + d);
  };
  auto v_at = [&](int64_t b, int64_t h, int64_t j, int64_t d) {
    return static_cast<size_t>(((b * p.Hkv + h) * p.Skv + j) * p.Dv + d);
  };
  auto o_at = [&](int64_t b, int64_t h, int64_t i, int64_t d) {
    return static_cast<size_t>(((b * p.Hq + h) * p.S + i) * p.Dv + d);
  };
  std::vector<double> out(static_cast<size_t>(num_elements(node.shape)), 0.0);
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.Hq; ++h) {
      const int64_t kh = h / group;
      for (int64_t i = 0; i < p.S; ++i) {
        const std::vector<double> prob = probabilities(p, b, h, i);
        if (node.op == Op::attention) {
          for (int64_t j = 0; j < p.Skv; ++j)
            for (int64_t d = 0; d < p.Dv; ++d) out[o_at(b, h, i, d)] += prob[static_cast<size_t>(j)] * p.v->v[v_at(b, kh, j, d)];
          continue;
        }
        // dP_ij = dout_i · v_j; dS_ij = P_ij (dP_ij − Σ_j P_ij dP_ij).
        std::vector<double> dprob(static_cast<size_t>(p.Skv), 0.0);
        double weighted = 0;
        for (int64_t j = 0; j < p.Skv; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < p.Dv; ++d) dot += p.dout->v[o_at(b, h, i, d)] * p.v->v[v_at(b, kh, j, d)];
          dprob[static_cast<size_t>(j)] = dot;
          weighted += prob[static_cast<size_t>(j)] * dot;
        }
        for (int64_t j = 0; j < p.Skv; ++j) {
          const double pj = prob[static_cast<size_t>(j)];
          if (pj == 0.0) continue;
          const double ds = pj * (dprob[static_cast<size_t>(j)] - weighted) * p.scale;
          switch (node.op) {
            case Op::attention_grad_q:
              for (int64_t d = 0; d < p.D; ++d) out[q_at(b, h, i, d)] += ds * p.k->v[k_at(b, kh, j, d)];
              break;
            case Op::attention_grad_k:
              for (int64_t d = 0; d < p.D; ++d) out[k_at(b, kh, j, d)] += ds * p.q->v[q_at(b, h, i, d)];
              break;
            default:
              for (int64_t d = 0; d < p.Dv; ++d) out[v_at(b, kh, j, d)] += pj * p.dout->v[o_at(b, h, i, d)];
          }
        }
      }
    }
  return out;
}

}  // namespace meganeura::reference
