// The GEMV form of a matmul: one row (M = 1) times B stored [N, K] (transpose_b), as a decode
// step's linear layers. Each group of LANES invocations (32, or one subgroup) computes one output
// column; its lanes stride along the weight row (consecutive addresses) and their partial sums
// meet through subgroupAdd or in shared memory.
//
// The row is staged once per workgroup in shared memory (rows of up to 4096 elements, 16 KiB,
// which every device has): a fused operand (an RMSNorm of the row, a SwiGLU) is evaluated once per
// element instead of once per element and column, and the columns read it as vec4s. For an
// RMSNorm the workgroup adds up the squares while staging and scales each column's sum by the
// row's factor. f32 weights with K a multiple of 4 are read as vec4s (one 16-byte load per lane
// and step); 16-bit weights as 8 (K a multiple of 8) or 2 at a time.
#include <sstream>

#include "codegen/expression.h"
#include "codegen/glsl.h"
#include "codegen/matmul_parts.h"
#include "codegen/packed_weights.h"

namespace meganeura::codegen {

std::string generate_gemv(const Graph& graph, const compile::Kernel& kernel, ExpressionWriter& writer, size_t a_slot,
                          size_t b_slot, const Node* norm, bool pointwise_operand) {
  const Node& mm = graph.node(kernel.anchor);
  const Shape& out = mm.shape;
  const Shape& a_shape = graph.node(mm.inputs[0]).shape;
  const Shape& b_shape = graph.node(mm.inputs[1]).shape;
  const int64_t n = out.back();
  const int64_t k = mm.attrs.transpose_a ? a_shape[a_shape.size() - 2] : a_shape.back();
  const Shape out_batch(out.begin(), out.end() - 2);
  const Shape a_batch(a_shape.begin(), a_shape.end() - 2);
  const Shape b_batch(b_shape.begin(), b_shape.end() - 2);
  const uint32_t local = kernel.local_size[0];
  const compile::ElementStorage b_element = kernel.bindings[b_slot].element;
  const bool wide = b_element == compile::ElementStorage::bits32 && k % 4 == 0;
  const bool octets = b_element != compile::ElementStorage::bits32 && k % 8 == 0;
  const bool pairs = b_element != compile::ElementStorage::bits32 && k % 2 == 0 && !octets;
  const bool staged = k <= 4096;
  auto u = [](int64_t v) { return uint_literal(static_cast<uint64_t>(v)); };
  const uint32_t lanes = kernel.register_tile[0];
  const bool subgroup_sum = kernel.register_tile[1] == 1;
  const bool normed = norm != nullptr;
  std::string header = shader_header(graph, kernel);
  const size_t after_version = header.find('\n', header.find("#version")) + 1;
  if (subgroup_sum) header.insert(after_version, "#extension GL_KHR_shader_subgroup_arithmetic : require\n");
  if (wide) {
    // The weights' binding again, as vec4s.
    const size_t first_binding = header.find("layout(std430");
    header.insert(first_binding, vec4_input_declaration(b_slot));
  }
  // The operand's element e (flat index into A): `load_a` reads it where it is used; with staging
  // `compute_a` produces it once and load_a reads the staged copy.
  const std::string operand = staged ? "compute_a" : "load_a";
  std::ostringstream text;
  text << header << math_helpers() << "const uint LOCAL = " << local << "u;\n"
       << "const uint LANES = " << lanes << "u;  // invocations per output column"
       << (subgroup_sum ? ", one subgroup" : "") << "\nconst uint COLUMNS = LOCAL / LANES;  // output columns per workgroup\n"
       << "const uint N = " << u(n) << ", K = " << u(k) << ";\n\n"
       << (subgroup_sum && !(normed && staged) ? "" : "shared float partial[LOCAL];\n");
  if (staged) text << (wide ? "shared vec4 a_stage4[K / 4u];\n" : "shared float a_stage[K];\n");
  if (normed) {
    text << (subgroup_sum || staged ? "" : "shared float partial_squares[LOCAL];\n") << "float sum_squares = 0.0;\n"
         << element_reader("load_x", a_slot, kernel.bindings[a_slot].element) << "float " << operand
         << "(uint e) {\n  float x = load_x(e);\n  sum_squares += x * x;\n  return x * "
         << writer.load(norm->inputs[1], "e % K") << ";\n}\n";
  } else if (pointwise_operand) {
    // The left operand's pointwise tree, at the operand's flat index (a_slot is unused).
    text << writer.function(operand, mm.inputs[0], a_shape) << "\n";
  } else {
    text << element_reader(operand, a_slot, kernel.bindings[a_slot].element);
  }
  text << element_reader("load_b", b_slot, b_element) << (pairs ? pair_reader("load_b_pair", b_slot, b_element) : "")
       << (octets ? word_unpacker("unpack_b", b_element) : "") << matmul_epilogue_functions(graph, kernel, writer)
       << "void main() {\n"
       << "  uint batch = gl_WorkGroupID.z;\n"
       // With one row, A's element (0, kk) sits at kk whether A is transposed or not.
       << "  uint a_base = " << broadcast_index("batch", out_batch, a_batch) << " * " << u(k) << ";\n"
       << "  uint b_base = " << broadcast_index("batch", out_batch, b_batch) << " * " << u(k * n) << ";\n"
       << "  uint lid = gl_LocalInvocationID.x;\n"
       // A subgroup's invocations are its lanes whatever their local indices.
       << (subgroup_sum ? "  uint lane = gl_SubgroupInvocationID;\n  uint col = gl_WorkGroupID.x * COLUMNS + gl_SubgroupID;\n"
                        : "  uint lane = lid % LANES;\n  uint col = gl_WorkGroupID.x * COLUMNS + lid / LANES;\n");
  if (staged) {
    if (wide) {
      text << "  for (uint p = lid; p < K / 4u; p += LOCAL) {\n    uint e = a_base + 4u * p;\n"
           << "    a_stage4[p] = vec4(compute_a(e), compute_a(e + 1u), compute_a(e + 2u), compute_a(e + 3u));\n  }\n"
           << "#define load_a(e) a_stage4[((e) - a_base) / 4u][((e) - a_base) % 4u]\n";
    } else {
      text << "  for (uint e = lid; e < K; e += LOCAL) a_stage[e] = compute_a(a_base + e);\n"
           << "#define load_a(e) a_stage[(e) - a_base]\n";
    }
    if (normed && subgroup_sum) {
      // The row's sum of squares over the whole workgroup: each subgroup's, then theirs (the
      // stage's barrier included).
      text << "  float subgroup_squares = subgroupAdd(sum_squares);\n"
           << "  if (lane == 0u) partial[gl_SubgroupID] = subgroup_squares;\n  barrier();\n"
           << "  float squares = 0.0;\n  for (uint s = 0u; s < COLUMNS; ++s) squares += partial[s];\n";
    } else if (normed) {
      text << "  partial[lid] = sum_squares;\n  barrier();\n"
           << "  for (uint stride = LOCAL / 2u; stride > 0u; stride >>= 1u) {\n"
           << "    if (lid < stride) partial[lid] += partial[lid + stride];\n    barrier();\n  }\n"
           << "  float squares = partial[0];\n  barrier();\n";
    } else {
      text << "  barrier();\n";
    }
  }
  text << "  float sum = 0.0;\n  if (col < N) {\n";
  if (wide) {
    text << "    uint row_vec4 = (b_base + col * K) / 4u;\n"
         << "    for (uint p = lane; p < K / 4u; p += LANES) {\n"
         << "      vec4 w = in" << b_slot << "v4.data[row_vec4 + p];\n"
         << (staged ? "      sum += dot(w, a_stage4[p]);\n"
                    : "      uint e = a_base + 4u * p;\n"
                      "      sum += dot(w, vec4(load_a(e), load_a(e + 1u), load_a(e + 2u), load_a(e + 3u)));\n")
         << "    }\n";
  } else if (octets) {
    text << "    uint row_octet = (b_base + col * K) / 8u;\n"
         << "    for (uint p = lane; p < K / 8u; p += LANES) {\n"
         << "      uint q = 4u * (row_octet + p);\n"
         << "      uvec4 w = uvec4(in" << b_slot << ".data[q], in" << b_slot << ".data[q + 1u], in" << b_slot
         << ".data[q + 2u], in" << b_slot << ".data[q + 3u]);\n"
         << "      uint e = a_base + 8u * p;\n"
         << "      sum += dot(unpack_b(w.x), vec2(load_a(e), load_a(e + 1u))) + dot(unpack_b(w.y), vec2(load_a(e + 2u), load_a(e + 3u))) +\n"
         << "             dot(unpack_b(w.z), vec2(load_a(e + 4u), load_a(e + 5u))) + dot(unpack_b(w.w), vec2(load_a(e + 6u), load_a(e + 7u)));\n"
         << "    }\n";
  } else if (pairs) {
    text << "    uint row_word = (b_base + col * K) / 2u;\n"
         << "    for (uint p = lane; p < K / 2u; p += LANES) {\n"
         << "      vec2 w = load_b_pair(row_word + p);\n"
         << "      sum += load_a(a_base + 2u * p) * w.x + load_a(a_base + 2u * p + 1u) * w.y;\n"
         << "    }\n";
  } else {
    text << "    for (uint kk = lane; kk < K; kk += LANES) sum += load_a(a_base + kk) * load_b(b_base + col * K + kk);\n";
  }
  text << "  }\n";
  // Unstaged, each column's lanes saw the whole row: their squares add up beside their products.
  const bool lane_squares = normed && !staged;
  if (subgroup_sum) {
    text << "  float total = subgroupAdd(sum);\n" << (lane_squares ? "  float squares = subgroupAdd(sum_squares);\n" : "");
  } else {
    text << "  partial[lid] = sum;\n"
         << (lane_squares ? "  partial_squares[lid] = sum_squares;\n" : "")
         << "  barrier();\n"
         << "  for (uint stride = LANES / 2u; stride > 0u; stride >>= 1u) {\n"
         << "    if (lane < stride) partial[lid] += partial[lid + stride];\n"
         << (lane_squares ? "    if (lane < stride) partial_squares[lid] += partial_squares[lid + stride];\n" : "")
         << "    barrier();\n"
         << "  }\n"
         << "  float total = partial[lid];\n" << (lane_squares ? "  float squares = partial_squares[lid];\n" : "");
  }
  text << "  if (lane == 0u && col < N) {\n"
       << "    uint i = batch * N + col;\n";
  if (normed) {
    text << "    float scale = inversesqrt(squares / " << float_literal(static_cast<double>(k)) << " + "
         << float_literal(norm->attrs.eps) << ");\n"
         << "    " << store_output(kernel, "i", "epilogue(i, product(i, total * scale))") << "\n";
  } else {
    text << "    " << store_output(kernel, "i", "epilogue(i, product(i, total))") << "\n";
  }
  text << "  }\n"
       << "}\n";
  return text.str();
}

}  // namespace meganeura::codegen
