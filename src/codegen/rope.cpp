// Rotary position embedding (Hugging Face's half-split pairing) and its backward, the rotation by
// the opposite angle: one invocation per element, which reads its pair partner.
#include <cmath>
#include <sstream>

#include "codegen/archetypes.h"
#include "codegen/glsl.h"
#include "codegen/op_inputs.h"
#include "meganeura/error.h"

namespace meganeura::codegen {

std::string generate_rope(const Graph& graph, const compile::Kernel& kernel) {
  const Node& node = graph.node(kernel.root);
  if (node.op != Op::rope && node.op != Op::rope_grad) {
    throw Error(std::string("codegen: op '") + op_name(node.op) + "' is not rope");
  }
  const Shape& shape = node.shape;
  const int64_t S = shape[shape.size() - 2], D = shape.back(), half = D / 2;
  std::ostringstream out;
  out << shader_header(graph, kernel) << "#define XB " << input_buffer(kernel, node, 0) << "\n"
      << "const uint S = " << uint_literal(S) << ", D = " << uint_literal(D) << ", HALF = " << uint_literal(half) << ";\n"
      << "const float LOG2_THETA = " << float_literal(std::log2(node.attrs.theta)) << ";\n"
      << "const float SIGN = " << (node.op == Op::rope ? "1.0" : "-1.0") << ";\n"
      << "void main() {\n"
      << "  uint i = " << linear_invocation_index() << ";\n"
      << "  if (i >= " << uint_literal(num_elements(shape)) << ") return;\n"
      << "  uint d = i % D, s = (i / D) % S, pair = d % HALF;\n"
      << "  uint base = i - d;\n"
      << "  float inv_freq = exp2(-2.0 * float(pair) / float(D) * LOG2_THETA);\n"
      << "  float angle = float(" << int_scalar_read(graph, kernel, node, 1) << " + int(s)) * inv_freq;\n"
      << "  float c = cos(angle), sn = SIGN * sin(angle);\n"
      << "  float x1 = float(XB.data[base + pair]), x2 = float(XB.data[base + pair + HALF]);\n"
      << "  result.data[i] = d < HALF ? x1 * c - x2 * sn : x2 * c + x1 * sn;\n"
      << "}\n";
  return out.str();
}

}  // namespace meganeura::codegen
