// Shape and dtype inference: one case per op.
#include "meganeura/graph.h"

namespace meganeura {

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

TensorType infer_type(Op op, const Attrs&, const std::vector<TensorType>&) {
  throw Error(std::string(op_name(op)) + ": shape inference not implemented yet");
}

}  // namespace meganeura
