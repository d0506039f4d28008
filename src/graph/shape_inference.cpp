// Shape and dtype inference: one case per op. Every failure names the op, the operand shapes and
// the rule that was violated.
#include <algorithm>

#include "meganeura/graph.h"

namespace meganeura {

namespace {

using Types = std::vector<TensorType>;

[[noreturn]] void fail(Op op, const std::string& rule) { throw Error(std::string(op_name(op)) + ": " + rule); }

std::string shapes_of(const Types& in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) out += (i ? ", " : "") + format_shape(in[i].shape);
  return out;
}

bool is_float(DType d) { return d != DType::i32; }

int64_t rank_of(const TensorType& t) { return static_cast<int64_t>(t.shape.size()); }

int64_t dim_at(const TensorType& t, int64_t axis) {
  return t.shape[static_cast<size_t>(axis < 0 ? axis + rank_of(t) : axis)];
}

void need_float(Op op, const TensorType& t, const char* what) {
  if (!is_float(t.dtype))
    fail(op, std::string(what) + " " + format_shape(t.shape) + " must be a float tensor, got " + dtype_name(t.dtype));
}

void need_same_dtype(Op op, const Types& in, size_t i, size_t j) {
  if (in[i].dtype != in[j].dtype)
    fail(op, std::string("operands must share a dtype, got ") + dtype_name(in[i].dtype) + " " +
                 format_shape(in[i].shape) + " and " + dtype_name(in[j].dtype) + " " + format_shape(in[j].shape) +
                 " (use cast)");
}

void need_rank(Op op, const TensorType& t, int64_t rank, const char* what) {
  if (rank_of(t) != rank)
    fail(op, std::string(what) + " must have rank " + std::to_string(rank) + ", got " + format_shape(t.shape));
}

void need_min_rank(Op op, const TensorType& t, int64_t rank, const char* what) {
  if (rank_of(t) < rank)
    fail(op, std::string(what) + " must have rank >= " + std::to_string(rank) + ", got " + format_shape(t.shape));
}

// seed, step, position offsets: one i32 value, shape [] or [1].
void need_index_scalar(Op op, const TensorType& t, const char* what) {
  if (t.dtype != DType::i32 || t.shape.size() > 1 || num_elements(t.shape) != 1)
    fail(op, std::string(what) + " must be an i32 of shape [] or [1], got " + dtype_name(t.dtype) + " " +
                 format_shape(t.shape));
}

void need_same_shape(Op op, const TensorType& a, const TensorType& b, const char* what_a, const char* what_b) {
  if (a.shape != b.shape)
    fail(op, std::string(what_a) + " " + format_shape(a.shape) + " and " + what_b + " " + format_shape(b.shape) +
                 " must have the same shape");
}

void need_vector(Op op, const TensorType& w, int64_t n, const char* what, const TensorType& x) {
  if (w.shape != Shape{n})
    fail(op, std::string(what) + " must be [" + std::to_string(n) + "] to match x " + format_shape(x.shape) + ", got " +
                 format_shape(w.shape));
}

int64_t checked_axis(Op op, int64_t axis, const TensorType& t) {
  const int64_t a = axis < 0 ? axis + rank_of(t) : axis;
  if (a < 0 || a >= rank_of(t))
    fail(op, "axis " + std::to_string(axis) + " is out of range for " + format_shape(t.shape));
  return a;
}

TensorType reduce(Op op, const Attrs& attrs, const TensorType& x, DType out_dtype) {
  const int64_t axis = checked_axis(op, attrs.axis, x);
  TensorType out{x.shape, out_dtype};
  if (attrs.keepdim)
    out.shape[static_cast<size_t>(axis)] = 1;
  else
    out.shape.erase(out.shape.begin() + axis);
  return out;
}

// Output size of a sliding window; fails when the window does not fit.
int64_t window_out(Op op, int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation, const char* dim) {
  if (kernel <= 0 || stride <= 0 || dilation <= 0 || pad < 0)
    fail(op, std::string("kernel, stride and dilation must be positive and padding >= 0 (") + dim + ": kernel " +
                 std::to_string(kernel) + ", stride " + std::to_string(stride) + ", padding " + std::to_string(pad) +
                 ", dilation " + std::to_string(dilation) + ")");
  const int64_t span = dilation * (kernel - 1) + 1;
  if (in + 2 * pad < span)
    fail(op, std::string("window of span ") + std::to_string(span) + " does not fit the padded " + dim + " " +
                 std::to_string(in) + " + 2*" + std::to_string(pad));
  return (in + 2 * pad - span) / stride + 1;
}

void need_ints(Op op, const Attrs& attrs, size_t n) {
  if (attrs.ints.size() != n)
    fail(op, "attrs.ints must hold " + std::to_string(n) + " values, got " + format_shape(attrs.ints));
}

TensorType conv_output(Op op, const Attrs& a, const TensorType& x, const TensorType& w) {
  need_rank(op, x, 4, "input [N, C, H, W]");
  need_rank(op, w, 4, "weight [Cout, Cin/groups, kh, kw]");
  const int64_t g = a.groups;
  if (g <= 0) fail(op, "groups must be positive, got " + std::to_string(g));
  if (x.shape[1] % g != 0 || w.shape[0] % g != 0)
    fail(op, "channels must divide by groups=" + std::to_string(g) + ": input " + format_shape(x.shape) + ", weight " +
                 format_shape(w.shape));
  if (w.shape[1] * g != x.shape[1])
    fail(op, "input channels differ: input " + format_shape(x.shape) + " has C=" + std::to_string(x.shape[1]) +
                 " but weight " + format_shape(w.shape) + " expects Cin/groups*groups=" + std::to_string(w.shape[1] * g));
  const auto& i = a.ints;
  const int64_t ho = window_out(op, x.shape[2], w.shape[2], i[0], i[2], i[4], "height");
  const int64_t wo = window_out(op, x.shape[3], w.shape[3], i[1], i[3], i[5], "width");
  return {{x.shape[0], w.shape[0], ho, wo}, x.dtype};
}

Shape pool_output(Op op, const Attrs& a, const TensorType& x) {
  need_rank(op, x, 4, "input [N, C, H, W]");
  const auto& i = a.ints;
  if (i[4] * 2 > i[0] || i[5] * 2 > i[1])
    fail(op, "padding must be at most half the kernel, got kernel " + format_shape({i[0], i[1]}) + " padding " +
                 format_shape({i[4], i[5]}));
  return {x.shape[0], x.shape[1], window_out(op, x.shape[2], i[0], i[2], i[4], 1, "height"),
          window_out(op, x.shape[3], i[1], i[3], i[5], 1, "width")};
}

TensorType attention_type(Op op, const Attrs& attrs, const Types& in, size_t fixed) {
  const size_t n = in.size();
  if (n < fixed || n > fixed + 2)
    fail(op, "expects " + std::to_string(fixed) + " to " + std::to_string(fixed + 2) + " inputs, got " + std::to_string(n));
  // attention_lse reads no values: its inputs are q, k, then the optional ones.
  const bool has_v = op != Op::attention_lse;
  const TensorType &q = in[0], &k = in[1];
  need_rank(op, q, 4, "q [B, Hq, S, D]");
  need_rank(op, k, 4, "k [B, Hkv, Skv, D]");
  need_float(op, q, "q");
  need_same_dtype(op, in, 0, 1);
  const int64_t B = q.shape[0], Hq = q.shape[1], S = q.shape[2], D = q.shape[3];
  const int64_t Hkv = k.shape[1], Skv = k.shape[2];
  if (k.shape[0] != B) fail(op, "batch sizes differ: q " + format_shape(q.shape) + ", k " + format_shape(k.shape));
  if (k.shape[3] != D)
    fail(op, "head dims differ: q " + format_shape(q.shape) + " (D=" + std::to_string(D) + ") vs k " + format_shape(k.shape));
  int64_t Dv = D;
  if (has_v) {
    const TensorType& v = in[2];
    need_rank(op, v, 4, "v [B, Hkv, Skv, Dv]");
    need_same_dtype(op, in, 0, 2);
    if (v.shape[0] != B)
      fail(op, "batch sizes differ: q " + format_shape(q.shape) + ", k " + format_shape(k.shape) + ", v " + format_shape(v.shape));
    if (v.shape[1] != Hkv || v.shape[2] != Skv)
      fail(op, "k " + format_shape(k.shape) + " and v " + format_shape(v.shape) + " must agree on heads and length");
    Dv = v.shape[3];
  }
  if (Hkv <= 0 || Hq % Hkv != 0)
    fail(op, "query heads must be a multiple of kv heads: q " + format_shape(q.shape) + " (Hq=" + std::to_string(Hq) +
                 ") vs k " + format_shape(k.shape) + " (Hkv=" + std::to_string(Hkv) + ")");
  const Shape out_shape{B, Hq, S, Dv};
  const Shape row_shape{B, Hq, S};
  if (fixed == 6) {
    if (in[3].shape != out_shape || in[4].shape != out_shape)
      fail(op, "out " + format_shape(in[3].shape) + " and dout " + format_shape(in[4].shape) + " must be " +
                   format_shape(out_shape) + " [B, Hq, S, Dv]");
    if (in[5].shape != row_shape || in[5].dtype != DType::f32)
      fail(op, "lse " + format_shape(in[5].shape) + " " + dtype_name(in[5].dtype) + " must be f32 " +
                   format_shape(row_shape) + " [B, Hq, S], the attention_lse of the same q and k");
  }
  bool has_offset = false;
  for (size_t j = fixed; j < n; ++j) {
    if (in[j].dtype == DType::i32) {
      need_index_scalar(op, in[j], "position offset");
      has_offset = true;
    } else {
      if (has_offset || j != fixed) fail(op, "the mask (float) must come before the position offset (i32)");
      const Shape scores{B, Hq, S, Skv};
      bool ok = in[j].shape.size() <= 4;
      if (ok) {
        try {
          ok = broadcast_shapes(in[j].shape, scores, op_name(op)) == scores;
        } catch (const Error&) {
          ok = false;
        }
      }
      if (!ok)
        fail(op, "mask " + format_shape(in[j].shape) + " does not broadcast to the scores " + format_shape(scores) +
                     " [B, Hq, S, Skv]");
    }
  }
  if (attrs.causal && !has_offset && S > Skv)
    fail(op, "causal attention without a position offset needs S <= Skv (query i sits at Skv - S + i): q " +
                 format_shape(q.shape) + ", k " + format_shape(k.shape));
  switch (op) {
    case Op::attention: return {out_shape, q.dtype};
    case Op::attention_lse: return {row_shape, DType::f32};
    case Op::attention_grad_q: return q;
    case Op::attention_grad_k: return k;
    default: return in[2];
  }
}

}  // namespace

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      throw Error(std::string(op) + ": shapes " + format_shape(a) + " and " + format_shape(b) +
                  " do not broadcast (dims must be equal or 1, aligned from the right)");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

TensorType infer_type(Op op, const Attrs& attrs, const Types& in) {
  const int arity = op_arity(op);
  if (arity >= 0 && in.size() != static_cast<size_t>(arity))
    fail(op, "expects " + std::to_string(arity) + " inputs, got " + std::to_string(in.size()));
  switch (op) {
    case Op::input:
    case Op::parameter:
    case Op::constant:
    case Op::scalar:
      fail(op, "a leaf has no inputs to infer from; its shape is given when it is created");

    case Op::add:
    case Op::sub:
    case Op::mul:
    case Op::div:
    case Op::maximum:
    case Op::minimum:
    case Op::greater:
      need_same_dtype(op, in, 0, 1);
      return {broadcast_shapes(in[0].shape, in[1].shape, op_name(op)), in[0].dtype};

    case Op::neg:
    case Op::abs:
    case Op::stop_gradient:
      return in[0];

    case Op::exp:
    case Op::log:
    case Op::sqrt:
    case Op::rsqrt:
    case Op::recip:
    case Op::pow:
    case Op::relu:
    case Op::gelu:
    case Op::gelu_tanh:
    case Op::silu:
    case Op::sigmoid:
    case Op::tanh:
    case Op::sin:
    case Op::cos:
      need_float(op, in[0], "x");
      return in[0];

    case Op::where:
      need_same_dtype(op, in, 1, 2);
      return {broadcast_shapes(broadcast_shapes(in[0].shape, in[1].shape, "where"), in[2].shape, "where"), in[1].dtype};

    case Op::cast:
      return {in[0].shape, attrs.dtype};

    case Op::swiglu:
      need_float(op, in[0], "gate");
      need_same_dtype(op, in, 0, 1);
      need_same_shape(op, in[0], in[1], "gate", "up");
      return in[0];

    case Op::dropout:
      need_float(op, in[0], "x");
      need_index_scalar(op, in[1], "seed");
      need_index_scalar(op, in[2], "step");
      if (!(attrs.p >= 0.0 && attrs.p < 1.0)) fail(op, "p must be in [0, 1), got " + std::to_string(attrs.p));
      return in[0];

    case Op::sum:
    case Op::mean:
    case Op::max:
      if (op == Op::mean) need_float(op, in[0], "x");
      return reduce(op, attrs, in[0], in[0].dtype);
    case Op::argmax:
      return reduce(op, attrs, in[0], DType::i32);
    case Op::sum_all:
      return {{}, in[0].dtype};
    case Op::mean_all:
      need_float(op, in[0], "x");
      return {{}, in[0].dtype};

    case Op::reshape: {
      Shape out = attrs.ints;
      int64_t known = 1;
      int unknown = -1;
      for (size_t i = 0; i < out.size(); ++i) {
        if (out[i] == -1) {
          if (unknown >= 0) fail(op, "at most one -1 allowed in the target shape " + format_shape(out));
          unknown = static_cast<int>(i);
        } else if (out[i] < 0) {
          fail(op, "negative dimension in the target shape " + format_shape(out));
        } else {
          known *= out[i];
        }
      }
      const int64_t n = num_elements(in[0].shape);
      if (unknown >= 0) {
        if (known == 0 || n % known != 0)
          fail(op, "cannot infer the -1 in " + format_shape(out) + " from " + format_shape(in[0].shape));
        out[static_cast<size_t>(unknown)] = n / known;
      } else if (known != n) {
        fail(op, "element counts differ: " + format_shape(in[0].shape) + " has " + std::to_string(n) + ", target " +
                     format_shape(out) + " has " + std::to_string(known));
      }
      return {out, in[0].dtype};
    }

    case Op::permute: {
      const auto& perm = attrs.ints;
      const size_t rank = in[0].shape.size();
      std::vector<bool> seen(rank, false);
      if (perm.size() != rank)
        fail(op, "perm " + format_shape(perm) + " must list each of the " + std::to_string(rank) + " axes of " +
                     format_shape(in[0].shape) + " once");
      Shape out(rank);
      for (size_t i = 0; i < rank; ++i) {
        if (perm[i] < 0 || perm[i] >= static_cast<int64_t>(rank) || seen[static_cast<size_t>(perm[i])])
          fail(op, "perm " + format_shape(perm) + " is not a permutation of the axes of " + format_shape(in[0].shape));
        seen[static_cast<size_t>(perm[i])] = true;
        out[i] = in[0].shape[static_cast<size_t>(perm[i])];
      }
      return {out, in[0].dtype};
    }

    case Op::broadcast_to: {
      const Shape target = attrs.ints;
      bool ok = in[0].shape.size() <= target.size();
      if (ok) {
        try {
          ok = broadcast_shapes(in[0].shape, target, "broadcast_to") == target;
        } catch (const Error&) {
          ok = false;
        }
      }
      if (!ok)
        fail(op, format_shape(in[0].shape) + " cannot broadcast to " + format_shape(target) +
                     " (each dim must equal the target's or be 1, aligned from the right)");
      return {target, in[0].dtype};
    }

    case Op::slice: {
      const int64_t axis = checked_axis(op, attrs.axis, in[0]);
      need_ints(op, attrs, 2);
      const int64_t begin = attrs.ints[0], end = attrs.ints[1], dim = in[0].shape[static_cast<size_t>(axis)];
      if (begin < 0 || begin > end || end > dim)
        fail(op, "range [" + std::to_string(begin) + ", " + std::to_string(end) + ") is not within axis " +
                     std::to_string(axis) + " of " + format_shape(in[0].shape) + " (need 0 <= begin <= end <= " +
                     std::to_string(dim) + ")");
      TensorType out = in[0];
      out.shape[static_cast<size_t>(axis)] = end - begin;
      return out;
    }

    case Op::concat: {
      if (in.empty()) fail(op, "needs at least one input");
      const int64_t axis = checked_axis(op, attrs.axis, in[0]);
      TensorType out = in[0];
      for (size_t j = 1; j < in.size(); ++j) {
        need_same_dtype(op, in, 0, j);
        bool ok = in[j].shape.size() == in[0].shape.size();
        for (size_t d = 0; ok && d < in[0].shape.size(); ++d)
          ok = static_cast<int64_t>(d) == axis || in[j].shape[d] == in[0].shape[d];
        if (!ok)
          fail(op, "shapes " + shapes_of(in) + " must agree on every dim except axis " + std::to_string(axis));
        out.shape[static_cast<size_t>(axis)] += in[j].shape[static_cast<size_t>(axis)];
      }
      return out;
    }

    case Op::embedding: {
      need_rank(op, in[0], 2, "table [V, D]");
      if (in[1].dtype != DType::i32) fail(op, std::string("ids must be i32, got ") + dtype_name(in[1].dtype));
      Shape out = in[1].shape;
      out.push_back(in[0].shape[1]);
      return {out, in[0].dtype};
    }

    case Op::scatter_add_rows: {
      need_min_rank(op, in[0], 1, "src [..., D]");
      if (in[1].dtype != DType::i32) fail(op, std::string("ids must be i32, got ") + dtype_name(in[1].dtype));
      const Shape lead(in[0].shape.begin(), in[0].shape.end() - 1);
      if (lead != in[1].shape)
        fail(op, "src " + format_shape(in[0].shape) + " must be ids " + format_shape(in[1].shape) + " + [D]");
      need_ints(op, attrs, 1);
      if (attrs.ints[0] <= 0) fail(op, "num_rows must be positive, got " + std::to_string(attrs.ints[0]));
      return {{attrs.ints[0], in[0].shape.back()}, in[0].dtype};
    }

    case Op::kv_cache_write: {
      const TensorType &cache = in[0], &update = in[1];
      need_min_rank(op, cache, 2, "cache [..., Smax, D]");
      need_same_dtype(op, in, 0, 1);
      bool ok = rank_of(update) == rank_of(cache) && dim_at(update, -2) <= dim_at(cache, -2);
      for (int64_t d = 0; ok && d < rank_of(cache); ++d)
        ok = d == rank_of(cache) - 2 || cache.shape[static_cast<size_t>(d)] == update.shape[static_cast<size_t>(d)];
      if (!ok)
        fail(op, "update " + format_shape(update.shape) + " must match cache " + format_shape(cache.shape) +
                     " except a sequence length (dim -2) no longer than the cache's");
      need_index_scalar(op, in[2], "offset");
      return cache;
    }

    case Op::matmul:
    case Op::linear: {
      const TensorType &a = in[0], &b = in[1];
      need_min_rank(op, a, op == Op::linear ? 1 : 2, "a");
      need_min_rank(op, b, 2, "b");
      need_float(op, a, "a");
      need_same_dtype(op, in, 0, 1);
      if (op == Op::linear && attrs.transpose_a) need_min_rank(op, a, 2, "a (transposed)");
      const int64_t ra = rank_of(a), rb = rank_of(b);
      const bool a_is_vector = ra == 1;
      const int64_t m = a_is_vector ? 1 : (attrs.transpose_a ? a.shape[ra - 1] : a.shape[ra - 2]);
      const int64_t ka = a_is_vector ? a.shape[0] : (attrs.transpose_a ? a.shape[ra - 2] : a.shape[ra - 1]);
      const int64_t kb = attrs.transpose_b ? b.shape[rb - 1] : b.shape[rb - 2];
      const int64_t n = attrs.transpose_b ? b.shape[rb - 2] : b.shape[rb - 1];
      if (ka != kb)
        fail(op, "inner dimensions differ: a " + format_shape(a.shape) + " (k=" + std::to_string(ka) + ") vs b " +
                     format_shape(b.shape) + " (k=" + std::to_string(kb) + ")" +
                     (attrs.transpose_a || attrs.transpose_b
                          ? std::string(" with transpose_a=") + (attrs.transpose_a ? "true" : "false") +
                                " transpose_b=" + (attrs.transpose_b ? "true" : "false")
                          : ""));
      const Shape batch_a(a.shape.begin(), a.shape.end() - std::min<int64_t>(ra, 2));
      const Shape batch_b(b.shape.begin(), b.shape.end() - 2);
      Shape out = broadcast_shapes(batch_a, batch_b, op_name(op));
      if (!a_is_vector) out.push_back(m);
      out.push_back(n);
      if (op == Op::linear) {
        need_same_dtype(op, in, 0, 2);
        if (in[2].shape != Shape{n})
          fail(op, "bias must be [" + std::to_string(n) + "] (the output features), got " + format_shape(in[2].shape));
      }
      return {out, a.dtype};
    }

    case Op::attention:
      return attention_type(op, attrs, in, 3);
    case Op::attention_lse:
      return attention_type(op, attrs, in, 2);
    case Op::attention_grad_q:
    case Op::attention_grad_k:
    case Op::attention_grad_v:
      return attention_type(op, attrs, in, 6);

    case Op::conv2d:
      need_ints(op, attrs, 6);
      need_float(op, in[0], "input");
      need_same_dtype(op, in, 0, 1);
      return conv_output(op, attrs, in[0], in[1]);
    case Op::conv2d_grad_input: {
      need_ints(op, attrs, 8);
      const TensorType &dy = in[0], &w = in[1];
      need_rank(op, dy, 4, "dy [N, Cout, Ho, Wo]");
      need_rank(op, w, 4, "weight [Cout, Cin/groups, kh, kw]");
      const TensorType x{{dy.shape[0], w.shape[1] * attrs.groups, attrs.ints[6], attrs.ints[7]}, dy.dtype};
      const TensorType y = conv_output(op, attrs, x, w);
      if (y.shape != dy.shape)
        fail(op, "dy " + format_shape(dy.shape) + " is not the conv2d output " + format_shape(y.shape) + " of input " +
                     format_shape(x.shape) + " with weight " + format_shape(w.shape));
      return x;
    }
    case Op::conv2d_grad_weight: {
      need_ints(op, attrs, 8);
      const TensorType &x = in[0], &dy = in[1];
      need_rank(op, x, 4, "input [N, C, H, W]");
      need_rank(op, dy, 4, "dy [N, Cout, Ho, Wo]");
      if (attrs.groups <= 0 || x.shape[1] % attrs.groups != 0)
        fail(op, "input channels of " + format_shape(x.shape) + " must divide by groups=" + std::to_string(attrs.groups));
      const TensorType w{{dy.shape[1], x.shape[1] / attrs.groups, attrs.ints[6], attrs.ints[7]}, x.dtype};
      const TensorType y = conv_output(op, attrs, x, w);
      if (y.shape != dy.shape)
        fail(op, "dy " + format_shape(dy.shape) + " is not the conv2d output " + format_shape(y.shape) + " of input " +
                     format_shape(x.shape) + " with weight " + format_shape(w.shape));
      return w;
    }
    case Op::max_pool2d:
    case Op::avg_pool2d:
      need_ints(op, attrs, 6);
      need_float(op, in[0], "input");
      return {pool_output(op, attrs, in[0]), in[0].dtype};
    case Op::max_pool2d_grad: {
      need_ints(op, attrs, 6);
      const Shape y = pool_output(op, attrs, in[0]);
      if (in[1].shape != y)
        fail(op, "dy " + format_shape(in[1].shape) + " is not the pooled shape " + format_shape(y) + " of input " +
                     format_shape(in[0].shape));
      need_same_dtype(op, in, 0, 1);
      return in[0];
    }
    case Op::avg_pool2d_grad: {
      need_ints(op, attrs, 8);
      need_rank(op, in[0], 4, "dy [N, C, Ho, Wo]");
      const TensorType x{{in[0].shape[0], in[0].shape[1], attrs.ints[6], attrs.ints[7]}, in[0].dtype};
      const Shape y = pool_output(op, attrs, x);
      if (in[0].shape != y)
        fail(op, "dy " + format_shape(in[0].shape) + " is not the pooled shape " + format_shape(y) + " of input " +
                     format_shape(x.shape));
      return x;
    }
    case Op::upsample_nearest2x:
      need_rank(op, in[0], 4, "input [N, C, H, W]");
      return {{in[0].shape[0], in[0].shape[1], in[0].shape[2] * 2, in[0].shape[3] * 2}, in[0].dtype};
    case Op::upsample_nearest2x_grad:
      need_rank(op, in[0], 4, "dy [N, C, 2H, 2W]");
      if (in[0].shape[2] % 2 || in[0].shape[3] % 2)
        fail(op, "dy " + format_shape(in[0].shape) + " must have even height and width");
      return {{in[0].shape[0], in[0].shape[1], in[0].shape[2] / 2, in[0].shape[3] / 2}, in[0].dtype};
    case Op::global_avg_pool:
      need_rank(op, in[0], 4, "input [N, C, H, W]");
      need_float(op, in[0], "input");
      return {{in[0].shape[0], in[0].shape[1], 1, 1}, in[0].dtype};

    case Op::softmax:
    case Op::log_softmax:
      need_float(op, in[0], "x");
      checked_axis(op, attrs.axis, in[0]);
      return in[0];
    case Op::softmax_grad:
    case Op::log_softmax_grad:
      need_float(op, in[0], "y");
      checked_axis(op, attrs.axis, in[0]);
      need_same_shape(op, in[0], in[1], "y", "dy");
      need_same_dtype(op, in, 0, 1);
      return in[0];

    case Op::layer_norm:
    case Op::rms_norm:
    case Op::layer_norm_grad:
    case Op::rms_norm_grad: {
      need_min_rank(op, in[0], 1, "x [..., D]");
      need_float(op, in[0], "x");
      const int64_t d = in[0].shape.back();
      need_vector(op, in[1], d, "weight", in[0]);
      need_same_dtype(op, in, 0, 1);
      if (op == Op::layer_norm) need_vector(op, in[2], d, "bias", in[0]);
      if (op == Op::layer_norm_grad || op == Op::rms_norm_grad) need_same_shape(op, in[0], in[2], "x", "dy");
      if (!(attrs.eps >= 0)) fail(op, "eps must be >= 0");
      return in[0];
    }
    case Op::group_norm:
    case Op::group_norm_grad: {
      need_min_rank(op, in[0], 2, "x [N, C, ...]");
      need_float(op, in[0], "x");
      const int64_t c = in[0].shape[1];
      if (attrs.groups <= 0 || c % attrs.groups != 0)
        fail(op, "channels C=" + std::to_string(c) + " of x " + format_shape(in[0].shape) + " must divide by groups=" +
                     std::to_string(attrs.groups));
      need_vector(op, in[1], c, "weight", in[0]);
      if (op == Op::group_norm) need_vector(op, in[2], c, "bias", in[0]);
      else need_same_shape(op, in[0], in[2], "x", "dy");
      return in[0];
    }
    case Op::rope:
    case Op::rope_grad:
      need_min_rank(op, in[0], 2, "x [..., S, D]");
      need_float(op, in[0], "x");
      if (in[0].shape.back() % 2 != 0)
        fail(op, "head dim D of " + format_shape(in[0].shape) + " must be even (half-split pairs)");
      need_index_scalar(op, in[1], "position offset");
      return in[0];
    case Op::top_k_top_p_mask:
      need_min_rank(op, in[0], 1, "logits [..., V]");
      need_float(op, in[0], "logits");
      need_index_scalar(op, in[1], "k");
      need_float(op, in[2], "p");
      if (in[2].shape.size() > 1 || num_elements(in[2].shape) != 1)
        fail(op, "p must have shape [] or [1], got " + format_shape(in[2].shape));
      return in[0];

    case Op::cross_entropy_loss:
    case Op::cross_entropy_grad: {
      const TensorType &logits = in[0], &labels = in[1];
      need_rank(op, logits, 2, "logits [N, C]");
      need_float(op, logits, "logits");
      if (labels.dtype == DType::i32) {
        if (labels.shape != Shape{logits.shape[0]})
          fail(op, "integer labels must be [N] = [" + std::to_string(logits.shape[0]) + "] for logits " +
                       format_shape(logits.shape) + ", got " + format_shape(labels.shape));
      } else if (labels.shape != logits.shape) {
        fail(op, "probability labels " + format_shape(labels.shape) + " must match logits " + format_shape(logits.shape) +
                     " (or pass i32 class labels [N])");
      }
      if (op == Op::cross_entropy_loss) return {{}, logits.dtype};
      if (num_elements(in[2].shape) != 1 || in[2].shape.size() > 1)
        fail(op, "dloss must be a scalar ([] or [1]), got " + format_shape(in[2].shape));
      return logits;
    }
    case Op::mse_loss:
    case Op::bce_with_logits:
      need_float(op, in[0], "prediction");
      need_same_dtype(op, in, 0, 1);
      need_same_shape(op, in[0], in[1], "prediction", "target");
      return {{}, in[0].dtype};
  }
  fail(op, "no shape rule for this op (add a case to src/graph/shape_inference.cpp)");
}

}  // namespace meganeura
