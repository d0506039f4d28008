// Reference: data movement, gathers and scatters, and matrix products.
#include "reference/kernels.h"

namespace meganeura::reference {

namespace {

int64_t checked_id(const Node& node, double value, int64_t limit, const char* what) {
  const auto id = static_cast<int64_t>(value);
  if (id < 0 || id >= limit)
    throw Error(std::string(op_name(node.op)) + ": " + what + " " + std::to_string(id) + " is outside [0, " +
                std::to_string(limit) + ")");
  return id;
}

}  // namespace

std::vector<double> eval_movement(const Node& node, const Args& in) {
  const Arg& x = in[0];
  const Shape& out_shape = node.shape;
  std::vector<double> out(static_cast<size_t>(num_elements(out_shape)));
  switch (node.op) {
    case Op::reshape: return x.v;
    case Op::permute: {
      if (out.empty()) return out;
      const auto& perm = node.attrs.ints;
      std::vector<int64_t> strides(x.shape.size(), 1);
      for (size_t d = x.shape.size(); d-- > 1;) strides[d - 1] = strides[d] * x.shape[d];
      std::vector<int64_t> index(out_shape.size(), 0);
      size_t i = 0;
      do {
        int64_t offset = 0;
        for (size_t d = 0; d < index.size(); ++d) offset += index[d] * strides[static_cast<size_t>(perm[d])];
        out[i++] = x.v[static_cast<size_t>(offset)];
      } while (next_index(index, out_shape));
      return out;
    }
    case Op::broadcast_to: {
      if (out.empty()) return out;
      std::vector<int64_t> index(out_shape.size(), 0);
      size_t i = 0;
      do out[i++] = x.v[static_cast<size_t>(broadcast_offset(x.shape, out_shape, index))];
      while (next_index(index, out_shape));
      return out;
    }
    case Op::slice: {
      const auto axis = static_cast<size_t>(node.attrs.axis);
      const int64_t outer = span(x.shape, 0, axis), dim = x.shape[axis], inner = span(x.shape, axis + 1, x.shape.size());
      const int64_t begin = node.attrs.ints[0], len = out_shape[axis];
      size_t i = 0;
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t d = 0; d < len; ++d)
          for (int64_t k = 0; k < inner; ++k) out[i++] = x.v[static_cast<size_t>((o * dim + begin + d) * inner + k)];
      return out;
    }
    case Op::concat: {
      const auto axis = static_cast<size_t>(node.attrs.axis);
      const int64_t outer = span(out_shape, 0, axis), inner = span(out_shape, axis + 1, out_shape.size());
      size_t i = 0;
      for (int64_t o = 0; o < outer; ++o)
        for (const Arg& part : in) {
          const int64_t chunk = part.shape[axis] * inner;
          for (int64_t k = 0; k < chunk; ++k) out[i++] = part.v[static_cast<size_t>(o * chunk + k)];
        }
      return out;
    }
    case Op::embedding: {
      const int64_t rows = x.shape[0], width = x.shape[1];
      for (size_t r = 0; r < in[1].v.size(); ++r) {
        const int64_t id = checked_id(node, in[1].v[r], rows, "id");
        for (int64_t c = 0; c < width; ++c)
          out[r * static_cast<size_t>(width) + static_cast<size_t>(c)] = x.v[static_cast<size_t>(id * width + c)];
      }
      return out;
    }
    case Op::scatter_add_rows: {
      const int64_t rows = out_shape[0], width = out_shape[1];
      for (size_t r = 0; r < in[1].v.size(); ++r) {
        const int64_t id = checked_id(node, in[1].v[r], rows, "id");
        for (int64_t c = 0; c < width; ++c)
          out[static_cast<size_t>(id * width + c)] += x.v[r * static_cast<size_t>(width) + static_cast<size_t>(c)];
      }
      return out;
    }
    case Op::kv_cache_write: {
      const Arg& update = in[1];
      out = x.v;
      const size_t r = x.shape.size();
      const int64_t cap = x.shape[r - 2], len = update.shape[r - 2], width = x.shape[r - 1];
      const int64_t offset = index_scalar(in[2]);
      if (offset < 0 || offset + len > cap)
        throw Error("kv_cache_write: writing " + std::to_string(len) + " positions at offset " + std::to_string(offset) +
                    " overruns the cache of " + std::to_string(cap) + " positions " + format_shape(x.shape));
      const int64_t outer = span(x.shape, 0, r - 2);
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t s = 0; s < len; ++s)
          for (int64_t c = 0; c < width; ++c)
            out[static_cast<size_t>((o * cap + offset + s) * width + c)] =
                update.v[static_cast<size_t>((o * len + s) * width + c)];
      return out;
    }
    default: break;
  }
  throw Error(std::string("reference: ") + op_name(node.op) + " is not a movement op");
}

std::vector<double> eval_matmul(const Node& node, const Args& in) {
  const Arg &a = in[0], &b = in[1];
  const bool ta = node.attrs.transpose_a, tb = node.attrs.transpose_b;
  const size_t ra = a.shape.size(), rb = b.shape.size();
  // A 1-D left operand (linear only) is one row.
  const Shape a_mat = ra == 1 ? Shape{1, a.shape[0]} : Shape{a.shape[ra - 2], a.shape[ra - 1]};
  const int64_t m = ta ? a_mat[1] : a_mat[0], k = ta ? a_mat[0] : a_mat[1];
  const int64_t n = tb ? b.shape[rb - 2] : b.shape[rb - 1];
  const Shape batch_a(a.shape.begin(), a.shape.end() - std::min<size_t>(ra, 2));
  const Shape batch_b(b.shape.begin(), b.shape.end() - 2);
  const Shape batch = broadcast_shapes(batch_a, batch_b, op_name(node.op));
  std::vector<double> out(static_cast<size_t>(num_elements(batch) * m * n));
  std::vector<int64_t> index(batch.size(), 0);
  size_t o = 0;
  do {
    const int64_t a_base = broadcast_offset(batch_a, batch, index) * a_mat[0] * a_mat[1];
    const int64_t b_base = broadcast_offset(batch_b, batch, index) * b.shape[rb - 2] * b.shape[rb - 1];
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t p = 0; p < k; ++p) {
          const double av = a.v[static_cast<size_t>(a_base + (ta ? p * m + i : i * k + p))];
          const double bv = b.v[static_cast<size_t>(b_base + (tb ? j * k + p : p * n + j))];
          acc += av * bv;
        }
        if (node.op == Op::linear) acc += in[2].v[static_cast<size_t>(j)];
        out[o++] = acc;
      }
  } while (next_index(index, batch));
  return out;
}

}  // namespace meganeura::reference
