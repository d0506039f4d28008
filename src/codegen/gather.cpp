// Gather/scatter kernels: one invocation per output element computes where its value comes from.
#include <algorithm>
#include <sstream>

#include "codegen/archetypes.h"
#include "codegen/glsl.h"
#include "codegen/op_inputs.h"
#include "codegen/packed_weights.h"
#include "codegen/rope.h"
#include "meganeura/error.h"

namespace meganeura::codegen {

namespace {

std::string coordinate(const std::string& index, const Shape& shape, size_t d) {
  const auto strides = strides_of(shape);
  std::string c = "(" + index + " / " + uint_literal(strides[d]) + ")";
  if (d > 0) c = "(" + c + " % " + uint_literal(shape[d]) + ")";
  return c;
}

}  // namespace

std::string generate_gather(const Graph& graph, const compile::Kernel& kernel) {
  const Node& node = graph.node(kernel.root);
  const Shape& out_shape = node.shape;
  const std::string out_type = element_type(node.dtype);
  std::ostringstream body;
  std::string functions;  // GLSL functions the body calls
  auto input_shape = [&](size_t k) -> const Shape& { return graph.node(node.inputs[k]).shape; };
  switch (node.op) {
    case Op::permute: {
      const Shape& in = input_shape(0);
      const auto in_strides = strides_of(in);
      std::string source;
      for (size_t d = 0; d < out_shape.size(); ++d) {
        const int64_t axis = node.attrs.ints[d];
        if (in[axis] == 1) continue;
        source += (source.empty() ? "" : " + ") + coordinate("i", out_shape, d) + " * " + uint_literal(in_strides[axis]);
      }
      body << "  result.data[i] = in0.data[" << (source.empty() ? "0u" : source) << "];\n";
      break;
    }
    case Op::broadcast_to:
      body << "  result.data[i] = in0.data[" << broadcast_index("i", out_shape, input_shape(0)) << "];\n";
      break;
    case Op::slice: {
      const Shape& in = input_shape(0);
      const auto in_strides = strides_of(in);
      std::string source;
      for (size_t d = 0; d < out_shape.size(); ++d) {
        std::string c = coordinate("i", out_shape, d);
        if (static_cast<int64_t>(d) == node.attrs.axis) c = "(" + c + " + " + uint_literal(node.attrs.ints[0]) + ")";
        source += (source.empty() ? "" : " + ") + c + " * " + uint_literal(in_strides[d]);
      }
      body << "  result.data[i] = in0.data[" << (source.empty() ? "0u" : source) << "];\n";
      break;
    }
    case Op::concat: {
      // outer × (sum of part widths) × inner; a part is picked by the coordinate along the axis.
      const size_t axis = static_cast<size_t>(node.attrs.axis);
      int64_t inner = 1;
      for (size_t d = axis + 1; d < out_shape.size(); ++d) inner *= out_shape[d];
      body << "  uint inner = i % " << uint_literal(inner) << ";\n"
           << "  uint along = (i / " << uint_literal(inner) << ") % " << uint_literal(out_shape[axis]) << ";\n"
           << "  uint outer = i / " << uint_literal(inner * out_shape[axis]) << ";\n";
      int64_t begin = 0;
      for (size_t k = 0; k < node.inputs.size(); ++k) {
        const int64_t width = input_shape(k)[axis];
        const size_t slot = static_cast<size_t>(
            std::find(kernel.inputs.begin(), kernel.inputs.end(), node.inputs[k]) - kernel.inputs.begin());
        body << "  " << (k > 0 ? "else " : "") << "if (along < " << uint_literal(begin + width) << ") result.data[i] = in"
             << slot << ".data[(outer * " << uint_literal(width) << " + along - " << uint_literal(begin) << ") * "
             << uint_literal(inner) << " + inner];\n";
        begin += width;
      }
      break;
    }
    case Op::embedding: {
      const int64_t rows = input_shape(0)[0], width = input_shape(0)[1];
      // The table may be weights stored as 16-bit (codegen/packed_weights.h).
      functions = element_reader("load_table", 0, kernel.bindings.at(0).element);
      body << "  int id = in1.data[i / " << uint_literal(width) << "];\n"
           << "  // An id outside the table reads as zeros rather than out of bounds.\n"
           << "  result.data[i] = (id >= 0 && id < " << rows << ") ? " << out_type << "(load_table(uint(id) * "
           << uint_literal(width) << " + i % " << uint_literal(width) << ")) : " << out_type << "(0);\n";
      break;
    }
    case Op::scatter_add_rows: {
      // Each output element sums the source rows whose id selects it, in source order:
      // deterministic, no atomics. Most rows of an embedding table's gradient receive nothing, so a
      // workgroup first looks through the ids, a few per invocation, for one among the rows its
      // elements cover, and stores zeros when there is none (a SmolLM2-135M training step spent
      // 6.6 ms here when every element walked all 512 ids).
      const int64_t width = out_shape.back();
      const int64_t count = num_elements(input_shape(1));
      const std::string W = uint_literal(width), COUNT = uint_literal(count);
      std::ostringstream out;
      out << shader_header(graph, kernel) << "shared uint hits;\n\nvoid main() {\n"
          << "  uint i = " << linear_invocation_index() << ";\n"
          << "  uint first = i - gl_LocalInvocationID.x;\n"
          << "  int first_row = int(first / " << W << "), last_row = int((first + gl_WorkGroupSize.x - 1u) / " << W << ");\n"
          << "  if (gl_LocalInvocationID.x == 0u) hits = 0u;\n"
          << "  barrier();\n"
          << "  for (uint j = gl_LocalInvocationID.x; j < " << COUNT << "; j += gl_WorkGroupSize.x) {\n"
          << "    int id = in1.data[j];\n"
          << "    if (id >= first_row && id <= last_row) atomicOr(hits, 1u);\n"
          << "  }\n"
          << "  barrier();\n"
          << "  if (i >= " << uint_literal(kernel.work_items) << ") return;\n"
          << "  float total = 0.0;\n"
          << "  if (hits != 0u) {\n"
          << "    uint row = i / " << W << ", column = i % " << W << ";\n"
          << "    for (uint j = 0u; j < " << COUNT << "; ++j) {\n"
          << "      if (in1.data[j] == int(row)) total += float(in0.data[j * " << W << " + column]);\n"
          << "    }\n"
          << "  }\n"
          << "  result.data[i] = " << out_type << "(total);\n"
          << "}\n";
      return out.str();
    }
    case Op::kv_cache_write: {
      // One invocation per update element; positions past the cache's end are dropped.
      const Shape& update = input_shape(1);
      const int64_t width = update.back(), rows = update[update.size() - 2], capacity = out_shape[out_shape.size() - 2];
      body << "  int offset = " << int_scalar_read(graph, kernel, node, 2) << ";\n"
           << "  uint row = (i / " << uint_literal(width) << ") % " << uint_literal(rows) << ";\n"
           << "  uint position = uint(offset) + row;\n"
           << "  if (offset < 0 || position >= " << uint_literal(capacity) << ") return;\n"
           << "  uint head = i / " << uint_literal(width * rows) << ";\n"
           << "  result.data[(head * " << uint_literal(capacity) << " + position) * " << uint_literal(width) << " + i % "
           << uint_literal(width) << "] = ";
      const int32_t update_node = node.inputs[1];
      if (std::binary_search(kernel.nodes.begin(), kernel.nodes.end(), update_node)) {
        // A rope fused into the write (compile/grouping.h): the update is rotated as it is copied.
        const Node& rope = graph.node(update_node);
        if (rope.op != Op::rope) {
          throw Error(std::string("codegen: kv_cache_write fuses only a rope into its update, not ") +
                      op_name(rope.op));
        }
        functions = rope_element_function("rotated", input_buffer(kernel, rope, 0), width, rope.attrs.theta, false);
        body << "rotated(i - i % " << uint_literal(width) << ", " << int_scalar_read(graph, kernel, rope, 1)
             << " + int(row), i % " << uint_literal(width) << ");\n";
      } else {
        body << input_buffer(kernel, node, 1) << ".data[i];\n";
      }
      break;
    }
    default:
      throw Error(std::string("codegen: op '") + op_name(node.op) + "' is not a gather/scatter op");
  }
  // Single-input movement ops bind their input as in0 (the kernel has no other inputs).
  std::ostringstream out;
  out << shader_header(graph, kernel) << functions << "void main() {\n"
      << "  uint i = " << linear_invocation_index() << ";\n"
      << "  if (i >= " << uint_literal(kernel.work_items) << ") return;\n"
      << body.str() << "}\n";
  return out.str();
}

}  // namespace meganeura::codegen
