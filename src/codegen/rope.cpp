// Rotary position embedding (Hugging Face's half-split pairing) and its backward, the rotation by
// the opposite angle: one invocation per element, which reads its pair partner.
#include "codegen/rope.h"

#include <cmath>
#include <sstream>

#include "codegen/archetypes.h"
#include "codegen/glsl.h"
#include "codegen/op_inputs.h"
#include "meganeura/error.h"

namespace meganeura::codegen {

std::string rope_element_function(const std::string& name, const std::string& buffer, int64_t D, double theta,
                                  bool inverse) {
  if (D % 2 != 0) throw Error("codegen: rope needs an even last dim, got " + std::to_string(D));
  const int64_t half = D / 2;
  std::ostringstream out;
  out << "float " << name << "(uint row_at, int position, uint d) {\n"
      << "  uint pair = d % " << uint_literal(half) << ";\n"
      << "  float inv_freq = exp2(-2.0 * float(pair) / float(" << uint_literal(D) << ") * "
      << float_literal(std::log2(theta)) << ");\n"
      << "  float angle = float(position) * inv_freq;\n"
      << "  float c = cos(angle), sn = " << (inverse ? "-1.0" : "1.0") << " * sin(angle);\n"
      << "  float x1 = float(" << buffer << ".data[row_at + pair]), x2 = float(" << buffer << ".data[row_at + pair + "
      << uint_literal(half) << "]);\n"
      << "  return d < " << uint_literal(half) << " ? x1 * c - x2 * sn : x2 * c + x1 * sn;\n"
      << "}\n";
  return out.str();
}

std::string rope_pairs_function(const std::string& name, int64_t D, double theta) {
  if (D % 8 != 0) throw Error("codegen: rope pairs of vec4s need a last dim that is a multiple of 8, got " + std::to_string(D));
  const std::string half = uint_literal(D / 2);
  std::ostringstream out;
  out << "vec4 " << name << "(vec4 v, vec4 partner, int position, uint d) {\n  vec4 rotated;\n";
  // Written out, not looped: lavapipe counts every loop iteration against one budget.
  for (int c = 0; c < 4; ++c) {
    out << "  { uint pair = (d + " << c << "u) % " << half << ";\n"
        << "    float inv_freq = exp2(-2.0 * float(pair) / float(" << uint_literal(D) << ") * "
        << float_literal(std::log2(theta)) << ");\n"
        << "    float angle = float(position) * inv_freq, c = cos(angle), sn = sin(angle);\n"
        << "    rotated[" << c << "] = d < " << half << " ? v[" << c << "] * c - partner[" << c << "] * sn : v[" << c
        << "] * c + partner[" << c << "] * sn; }\n";
  }
  out << "  return rotated;\n}\n";
  return out.str();
}

std::string generate_rope(const Graph& graph, const compile::Kernel& kernel) {
  const Node& node = graph.node(kernel.root);
  if (node.op != Op::rope && node.op != Op::rope_grad) {
    throw Error(std::string("codegen: op '") + op_name(node.op) + "' is not rope");
  }
  const Shape& shape = node.shape;
  const int64_t S = shape[shape.size() - 2], D = shape.back();
  std::ostringstream out;
  out << shader_header(graph, kernel)
      << rope_element_function("rotated", input_buffer(kernel, node, 0), D, node.attrs.theta, node.op == Op::rope_grad)
      << "void main() {\n"
      << "  uint i = " << linear_invocation_index() << ";\n"
      << "  if (i >= " << uint_literal(num_elements(shape)) << ") return;\n"
      << "  uint d = i % " << uint_literal(D) << ", s = (i / " << uint_literal(D) << ") % " << uint_literal(S) << ";\n"
      << "  result.data[i] = rotated(i - d, " << int_scalar_read(graph, kernel, node, 1) << " + int(s), d);\n"
      << "}\n";
  return out.str();
}

}  // namespace meganeura::codegen
