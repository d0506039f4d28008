// Group norm and its input gradient: one workgroup per (sample, group), whose channels are one
// contiguous run of NCHW memory. Statistics are two-pass (mean, then centred variance) through a
// shared-memory tree, so large planes keep float accuracy.
#include <sstream>

#include "codegen/archetypes.h"
#include "codegen/expression.h"
#include "codegen/glsl.h"
#include "codegen/op_inputs.h"
#include "meganeura/error.h"

namespace meganeura::codegen {

std::string generate_group_norm(const Graph& graph, const compile::Kernel& kernel) {
  const Node& node = graph.node(kernel.anchor);
  if (node.op != Op::group_norm && node.op != Op::group_norm_grad) {
    throw Error(std::string("codegen: op '") + op_name(node.op) + "' is not a group norm");
  }
  const bool backward = node.op == Op::group_norm_grad;
  const Shape& x = graph.node(node.inputs[0]).shape;
  const int64_t N = x[0], C = x[1], G = node.attrs.groups;
  const int64_t plane = num_elements(x) / (N * C), per_group = C / G;
  const uint32_t local = kernel.local_size[0];
  std::ostringstream out;
  out << shader_header(graph, kernel) << "#define XB " << input_buffer(kernel, node, 0) << "\n#define WB "
      << input_buffer(kernel, node, 1) << "\n#define " << (backward ? "DYB " : "BB ") << input_buffer(kernel, node, 2)
      << "\n"
      << "const uint L = " << local << "u, GROUPS = " << uint_literal(G) << ", SAMPLES = " << uint_literal(N)
      << ", CHANNELS_PER_GROUP = " << uint_literal(per_group) << ", PLANE = " << uint_literal(plane)
      << ", COUNT = CHANNELS_PER_GROUP * PLANE;\n"
      << "const float EPS = " << float_literal(node.attrs.eps) << ";\n";
  // A fused pointwise consumer (SiLU, residual add) is applied to each value before it is stored.
  if (kernel.root != kernel.anchor) {
    ExpressionWriter writer(graph, kernel);
    out << math_helpers() << writer.function("epilogue", kernel.root, node.shape, kernel.anchor) << "\n";
  } else {
    out << "float epilogue(uint i, float acc) { return acc; }\n";
  }
  out << "const uint WG = L;\n" << workgroup_reductions() << R"(
void main() {
  uint wg = )" << linear_workgroup_index() << R"(;
  if (wg >= SAMPLES * GROUPS) return;
  uint lid = gl_LocalInvocationID.x;
  uint group = wg % GROUPS;
  uint base = wg * COUNT;  // (n · C + group · C/G) · plane
  float sum = 0.0;
  for (uint e = lid; e < COUNT; e += L) sum += float(XB.data[base + e]);
  float mean = workgroup_sum(sum) / float(COUNT);
  float squares = 0.0;
  for (uint e = lid; e < COUNT; e += L) {
    float centred = float(XB.data[base + e]) - mean;
    squares += centred * centred;
  }
  float inv = inversesqrt(workgroup_sum(squares) / float(COUNT) + EPS);
)";
  if (!backward) {
    out << R"(  for (uint e = lid; e < COUNT; e += L) {
    uint c = group * CHANNELS_PER_GROUP + e / PLANE;
    result.data[base + e] = epilogue(base + e, (float(XB.data[base + e]) - mean) * inv * float(WB.data[c]) + float(BB.data[c]));
  }
}
)";
  } else {
    out << R"(  // With g = dy·w and x̂ = (x − mean)·inv: dx = inv·(g − mean(g) − x̂·mean(g·x̂)).
  float sum_g = 0.0, sum_gx = 0.0;
  for (uint e = lid; e < COUNT; e += L) {
    float g = float(DYB.data[base + e]) * float(WB.data[group * CHANNELS_PER_GROUP + e / PLANE]);
    sum_g += g;
    sum_gx += g * (float(XB.data[base + e]) - mean) * inv;
  }
  float mean_g = workgroup_sum(sum_g) / float(COUNT);
  float mean_gx = workgroup_sum(sum_gx) / float(COUNT);
  for (uint e = lid; e < COUNT; e += L) {
    float g = float(DYB.data[base + e]) * float(WB.data[group * CHANNELS_PER_GROUP + e / PLANE]);
    float xhat = (float(XB.data[base + e]) - mean) * inv;
    result.data[base + e] = inv * (g - mean_g - xhat * mean_gx);
  }
}
)";
  }
  return out.str();
}

}  // namespace meganeura::codegen
