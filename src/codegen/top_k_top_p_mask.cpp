// The top-k / top-p sampling filter: workgroups of 2048 mask entries each (compile sets PARTS per
// row), every one finding its row's thresholds. Both thresholds are found exactly by
// bisection over an order-preserving uint key of the float values (32 steps each), every step one
// pass over the row and a shared-memory reduction, so no sort and no scratch memory are needed.
#include <sstream>

#include "codegen/archetypes.h"
#include "codegen/glsl.h"
#include "codegen/op_inputs.h"
#include "meganeura/error.h"

namespace meganeura::codegen {
namespace {

std::string float_scalar_read(const Graph& graph, const compile::Kernel& kernel, const Node& node, size_t k) {
  const Node& input = graph.node(node.inputs[k]);
  if (input.op == Op::scalar) return float_literal(input.attrs.value);
  return "float(" + input_buffer(kernel, node, k) + ".data[0])";
}

}  // namespace

std::string generate_top_k_top_p_mask(const Graph& graph, const compile::Kernel& kernel) {
  const Node& node = graph.node(kernel.root);
  if (node.op != Op::top_k_top_p_mask) {
    throw Error(std::string("codegen: op '") + op_name(node.op) + "' is not top_k_top_p_mask");
  }
  const int64_t V = node.shape.back(), rows = num_elements(node.shape) / V;
  std::ostringstream out;
  out << shader_header(graph, kernel) << "#define XB " << input_buffer(kernel, node, 0) << "\n"
      << "const uint L = " << kernel.local_size[0] << "u, V = " << uint_literal(V) << ", ROWS = " << uint_literal(rows)
      << ";\n"
      << "const uint WG = L;\n"
      << "const uint PARTS = " << kernel.register_tile[0] << "u;  // workgroups per row, 2048 mask entries each\n"
      << workgroup_reductions()
      << R"(
// Larger floats get larger keys (negative ones have their bits flipped).
uint order_key(float v) {
  uint u = floatBitsToUint(v);
  return (u & 0x80000000u) != 0u ? ~u : (u | 0x80000000u);
}

void main() {
  uint wg = )" << linear_workgroup_index() << R"(;
  if (wg >= ROWS * PARTS) return;
  uint row = wg / PARTS, part = wg % PARTS;
  uint lid = gl_LocalInvocationID.x;
  uint base = row * V;
  int k = )" << int_scalar_read(graph, kernel, node, 1) << R"(;
  float p = )" << float_scalar_read(graph, kernel, node, 2) << R"(;

  // The k-th largest key: the largest T with at least k keys >= T.
  uint kth = 0u;
  if (k > 0 && uint(k) < V) {
    uint lo = 0u, hi = 0xffffffffu;
    while (lo < hi) {
      uint mid = lo + (hi - lo) / 2u + 1u;
      float count = 0.0;
      for (uint e = lid; e < V; e += L) count += order_key(float(XB.data[base + e])) >= mid ? 1.0 : 0.0;
      if (workgroup_sum(count) >= float(k)) lo = mid; else hi = mid - 1u;
    }
    kth = lo;
  }

  // The smallest T whose survivors above it hold less than p of the survivors' mass.
  uint nucleus = 0u;
  if (p < 1.0) {
    float top = -3.0e38;
    for (uint e = lid; e < V; e += L) top = max(top, float(XB.data[base + e]));
    top = workgroup_max(top);
    float mass = 0.0;
    for (uint e = lid; e < V; e += L) {
      float v = float(XB.data[base + e]);
      if (order_key(v) >= kth) mass += exp(v - top);
    }
    float bound = p * workgroup_sum(mass);
    uint lo = 0u, hi = 0xffffffffu;
    while (lo < hi) {
      uint mid = lo + (hi - lo) / 2u;
      float above = 0.0;
      for (uint e = lid; e < V; e += L) {
        float v = float(XB.data[base + e]);
        uint key = order_key(v);
        if (key > mid && key >= kth) above += exp(v - top);
      }
      if (workgroup_sum(above) < bound) hi = mid; else lo = mid + 1u;
    }
    nucleus = lo;
  }

  uint threshold = max(kth, nucleus);
  for (uint e = part * 2048u + lid; e < min(V, part * 2048u + 2048u); e += L) {
    bool kept = order_key(float(XB.data[base + e])) >= threshold;
    result.data[base + e] = )" << element_type(node.dtype) << R"((kept ? 0.0 : -1.0e30);
  }
}
)";
  return out.str();
}

}  // namespace meganeura::codegen
