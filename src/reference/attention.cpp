// Reference: scaled dot-product attention (causal/full, grouped-query heads, additive mask,
// position offset for KV caches), the row log-sum-exp of its scores and its three gradients.
#include <cmath>
#include <limits>

#include "reference/kernels.h"

namespace meganeura::reference {

namespace {

struct Problem {
  int64_t B, Hq, Hkv, S, Skv, D, Dv;
  double scale;
  const Arg *q, *k, *v = nullptr, *out = nullptr, *dout = nullptr, *lse = nullptr, *mask = nullptr;
  bool causal;
  bool has_offset = false;
  int64_t offset = 0;
};

Problem describe(const Node& node, const Args& in, size_t fixed) {
  Problem p{};
  p.q = &in[0];
  p.k = &in[1];
  p.B = in[0].shape[0], p.Hq = in[0].shape[1], p.S = in[0].shape[2], p.D = in[0].shape[3];
  p.Hkv = in[1].shape[1], p.Skv = in[1].shape[2], p.Dv = p.D;
  if (fixed >= 3) {
    p.v = &in[2];
    p.Dv = in[2].shape[3];
  }
  p.scale = node.attrs.scale != 0.0 ? node.attrs.scale : 1.0 / std::sqrt(static_cast<double>(p.D));
  p.causal = node.attrs.causal;
  if (fixed == 6) {
    p.out = &in[3];
    p.dout = &in[4];
    p.lse = &in[5];
  }
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

// Scaled, masked scores of one query row; keys it does not see are -inf.
std::vector<double> scores(const Problem& p, int64_t b, int64_t h, int64_t i) {
  const int64_t kv_head = h / (p.Hq / p.Hkv);
  const int64_t position = p.has_offset ? p.offset + i : p.Skv - p.S + i;
  const int64_t visible_end = p.has_offset ? p.offset + p.S : p.Skv;  // unwritten cache slots are hidden
  std::vector<double> row(static_cast<size_t>(p.Skv), -std::numeric_limits<double>::infinity());
  const Shape score_shape{p.B, p.Hq, p.S, p.Skv};
  for (int64_t j = 0; j < p.Skv; ++j) {
    if (j >= visible_end || (p.causal && j > position)) continue;
    double dot = 0;
    for (int64_t d = 0; d < p.D; ++d)
      dot += p.q->v[static_cast<size_t>(((b * p.Hq + h) * p.S + i) * p.D + d)] *
             p.k->v[static_cast<size_t>(((b * p.Hkv + kv_head) * p.Skv + j) * p.D + d)];
    double s = dot * p.scale;
    if (p.mask) s += p.mask->v[static_cast<size_t>(broadcast_offset(p.mask->shape, score_shape, {b, h, i, j}))];
    row[static_cast<size_t>(j)] = s;
  }
  return row;
}

// log Σ_j exp(s_j); +inf for a row without a visible key, so that exp(s − lse) is 0 everywhere.
double log_sum_exp(const std::vector<double>& row) {
  double top = -std::numeric_limits<double>::infinity();
  for (double s : row) top = std::max(top, s);
  if (top == -std::numeric_limits<double>::infinity()) return std::numeric_limits<double>::infinity();
  double total = 0;
  for (double s : row) total += std::exp(s - top);
  return top + std::log(total);
}

// Softmax probabilities exp(s − lse) of one row; masked keys get 0, and so does every key of a row
// that sees none (its output is 0).
std::vector<double> probabilities(std::vector<double> row, double lse) {
  for (double& s : row) s = std::exp(s - lse);
  return row;
}

}  // namespace

std::vector<double> eval_attention(const Node& node, const Args& in) {
  const size_t fixed = node.op == Op::attention ? 3 : (node.op == Op::attention_lse ? 2 : 6);
  const Problem p = describe(node, in, fixed);
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
        const size_t row_at = static_cast<size_t>((b * p.Hq + h) * p.S + i);
        const std::vector<double> row = scores(p, b, h, i);
        if (node.op == Op::attention_lse) {
          out[row_at] = log_sum_exp(row);
          continue;
        }
        // The backward takes the log-sum-exp it is given (the forward's), as its kernels do.
        const std::vector<double> prob = probabilities(row, p.lse ? p.lse->v[row_at] : log_sum_exp(row));
        if (node.op == Op::attention) {
          for (int64_t j = 0; j < p.Skv; ++j)
            for (int64_t d = 0; d < p.Dv; ++d) out[o_at(b, h, i, d)] += prob[static_cast<size_t>(j)] * p.v->v[v_at(b, kh, j, d)];
          continue;
        }
        // dP_ij = dout_i · v_j; dS_ij = P_ij (dP_ij − Δ_i) with Δ_i = dout_i · out_i (= Σ_j P_ij dP_ij).
        double delta = 0;
        for (int64_t d = 0; d < p.Dv; ++d) delta += p.dout->v[o_at(b, h, i, d)] * p.out->v[o_at(b, h, i, d)];
        for (int64_t j = 0; j < p.Skv; ++j) {
          const double pj = prob[static_cast<size_t>(j)];
          if (pj == 0.0) continue;
          double dprob = 0;
          for (int64_t d = 0; d < p.Dv; ++d) dprob += p.dout->v[o_at(b, h, i, d)] * p.v->v[v_at(b, kh, j, d)];
          const double ds = pj * (dprob - delta) * p.scale;
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
