// Classifier head kernel (compile::Archetype::classifier, compile/grouping.h): logits = x·Wᵀ (+ b)
// for ROWS rows per workgroup, their softmax cross-entropy gradient, and the gradient back into x
// (grad·W through the fused pointwise epilogue), in phases split by workgroup barriers:
//   1. each invocation sums a strided run of the D terms of every (row, class) pair, and the
//      workgroup adds those partial sums up (subgroupAdd and shared memory, or a shared-memory tree);
//   2. one invocation per row takes the softmax of its C logits and stores logits and gradient;
//   3. with a loss, the last workgroup through phase 2 adds up the rows' losses stored there;
//   4. the invocations stride over the D outputs of each row: C multiply-adds each.
// A training step's head, loss gradient and first product back run as one dispatch this way.
#include <algorithm>
#include <sstream>
#include <vector>

#include "codegen/archetypes.h"
#include "codegen/expression.h"
#include "codegen/glsl.h"
#include "meganeura/error.h"

namespace meganeura::codegen {

namespace {

std::string u(int64_t v) { return uint_literal(static_cast<uint64_t>(v)); }

// `name_r_c` for every row and class, declared as floats starting at zero.
std::string row_class_sums(const std::string& name, uint32_t rows, int64_t classes) {
  std::ostringstream text;
  for (uint32_t r = 0; r < rows; ++r) {
    text << "  float";
    for (int64_t c = 0; c < classes; ++c) text << (c ? ", " : " ") << name << "_" << r << "_" << c << " = 0.0";
    text << ";\n";
  }
  return text.str();
}

}  // namespace

std::string generate_classifier(const Graph& graph, const compile::Kernel& kernel) {
  const Node& grad = graph.node(kernel.anchor);
  if (grad.op != Op::cross_entropy_grad) throw Error("codegen: a classifier kernel is anchored at its cross_entropy_grad");
  const int32_t logits_id = grad.inputs[0];
  const Node& head = graph.node(logits_id);
  const int64_t m = head.shape[0], classes = head.shape[1];
  const int64_t d = graph.node(head.inputs[0]).shape[1];
  // The product back through the head, when the kernel has one (its root is then that product's
  // epilogue, and the logits and their gradient are extra outputs).
  int32_t back = -1;
  for (int32_t id : kernel.nodes) {
    const Node& node = graph.node(id);
    if (node.op == Op::matmul && node.inputs[0] == kernel.anchor) back = id;
  }
  for (size_t slot = 0; slot < kernel.inputs.size() && slot < kernel.bindings.size(); ++slot) {
    if (kernel.bindings[slot].element != compile::ElementStorage::bits32) {
      throw Error("codegen: a classifier kernel reads 32-bit weights; keep \"" + graph.node(kernel.inputs[slot]).name +
                  "\" as f32");
    }
  }
  int32_t loss = -1;
  for (int32_t id : kernel.nodes) {
    if (graph.node(id).op == Op::cross_entropy_loss) loss = id;
  }
  const std::string logits_out = output_binding(kernel, logits_id);
  const std::string grad_out = output_binding(kernel, kernel.anchor);
  const uint32_t rows = kernel.register_tile[0];
  const uint32_t local = kernel.local_size[0];
  const uint32_t subgroup = kernel.register_tile[1];  // partial sums meet through subgroupAdd (0: a tree)
  const bool index_labels = graph.node(grad.inputs[1]).dtype == DType::i32;

  ExpressionWriter writer(graph, kernel);
  const std::string D = u(d), C = u(classes), M = u(m);
  std::ostringstream out;
  std::string header = shader_header_with_loop_attributes(graph, kernel);
  if (subgroup > 0) {
    header.insert(header.find('\n', header.find("#version")) + 1, "#extension GL_KHR_shader_subgroup_arithmetic : require\n");
  }
  out << header << (loss >= 0 ? arrival_declarations(kernel) : "") << math_helpers()
      << "const uint WG = " << local << "u;\n"
      << "const uint ROWS = " << rows << "u;  // rows per workgroup\n"
      << "const uint SUMS = " << rows * classes + 1 << "u;  // a partial sum per (row, class), and the rows that count\n";
  if (subgroup > 0) {
    // Each subgroup adds up its invocations' sums with subgroupAdd; sums[j * STRIDE + s] holds
    // subgroup s's part of sum j until the workgroup adds those up into sums[j * STRIDE].
    out << "const uint STRIDE = " << local / subgroup << "u;  // subgroups\n"
        << "shared float sums[SUMS * STRIDE];\n"
        << "shared float subgroup_totals[STRIDE];\n"
        << "float block_sum(float v) {\n  v = subgroupAdd(v);\n"
        << "  if (gl_SubgroupInvocationID == 0u) subgroup_totals[gl_SubgroupID] = v;\n  barrier();\n"
        << "  float total = 0.0;\n  for (uint s = 0u; s < STRIDE; ++s) total += subgroup_totals[s];\n"
        << "  barrier();\n  return total;\n}\n";
  } else {
    // A tree over the invocations: sums[j * WG + lid] until sum j ends up in sums[j * STRIDE].
    out << "const uint STRIDE = WG;\n"
        << "shared float sums[SUMS * WG];\n"
        << (loss >= 0 ? workgroup_reductions() : "")
        << (loss >= 0 ? "float block_sum(float v) { return workgroup_sum(v); }\n" : "");
  }
  out << "shared float grad_rows[ROWS * " << C << "];\n\n"
      << "float load_x(uint e) { return " << writer.load(head.inputs[0], "e") << "; }\n"
      << "float load_w(uint e) { return " << writer.load(head.inputs[1], "e") << "; }\n"
      << "float load_bias(uint c) { return "
      << (head.op == Op::linear ? writer.load(head.inputs[2], "c") : std::string("0.0")) << "; }\n"
      << "float load_label(uint e) { return " << writer.load(grad.inputs[1], "e") << "; }\n"
      << "float load_seed() { return " << writer.load(grad.inputs[2], "0u") << "; }\n";
  if (back >= 0) out << writer.function("epilogue", kernel.root, graph.node(back).shape, back) << "\n";
  const std::string valid =
      "(label != " + float_literal(static_cast<double>(grad.attrs.ignore_index)) + " && label >= 0.0 && label < " +
      float_literal(static_cast<double>(classes)) + ")";

  out << "void main() {\n"
      << "  uint row0 = " << linear_workgroup_index() << " * ROWS;\n"
      << "  uint lid = gl_LocalInvocationID.x;\n"
      << row_class_sums("part", rows, classes);
  // Phase 1: partial products over a strided run of D; rows past M read zeros.
  // The strided loops over D run a fixed count of steps, unrolled, so every load of the loop is
  // issued before the first one is waited for (as a plain loop, each step waited for its loads).
  const int64_t steps = (d + local - 1) / local;
  const bool unrolled = steps <= 8;
  const std::string strided_loop =
      unrolled ? "  [[unroll]] for (uint step = 0u; step < " + u(steps) + "; ++step) {\n    uint k = step * WG + lid;\n" +
                     (d % local == 0 ? std::string("    {\n") : "    if (k < " + D + ") {\n")
               : "  for (uint k = lid; k < " + D + "; k += WG) {\n    {\n";
  out << strided_loop;
  for (int64_t c = 0; c < classes; ++c) out << "    float w_" << c << " = load_w(" << c * d << "u + k);\n";
  for (uint32_t r = 0; r < rows; ++r) {
    out << "    float x_" << r << " = row0 + " << r << "u < " << M << " ? load_x((row0 + " << r << "u) * " << D
        << " + k) : 0.0;\n   ";
    for (int64_t c = 0; c < classes; ++c) out << " part_" << r << "_" << c << " += x_" << r << " * w_" << c << ";";
    out << "\n";
  }
  out << "  }}\n";
  // Index labels: every workgroup counts the rows whose label counts (the loss is their mean).
  out << "  float counted = 0.0;\n";
  if (index_labels) {
    out << "  for (uint j = lid; j < " << M << "; j += WG) {\n    float label = load_label(j);\n"
        << "    counted += " << valid << " ? 1.0 : 0.0;\n  }\n";
  }
  std::vector<std::string> values;
  for (uint32_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < classes; ++c) values.push_back("part_" + std::to_string(r) + "_" + std::to_string(c));
  }
  values.push_back("counted");
  if (subgroup > 0) {
    // subgroupAdd in uniform control flow: inside the branch only lane 0 would take part.
    for (size_t j = 0; j < values.size(); ++j) out << "  " << values[j] << " = subgroupAdd(" << values[j] << ");\n";
    out << "  if (gl_SubgroupInvocationID == 0u) {\n";
    for (size_t j = 0; j < values.size(); ++j) {
      out << "    sums[" << j << "u * STRIDE + gl_SubgroupID] = " << values[j] << ";\n";
    }
    out << "  }\n  barrier();\n"
        << "  if (lid < SUMS) {\n    float total = 0.0;\n"
        << "    for (uint s = 0u; s < STRIDE; ++s) total += sums[lid * STRIDE + s];\n"
        << "    sums[lid * STRIDE] = total;\n  }\n  barrier();\n";
  } else {
    for (size_t j = 0; j < values.size(); ++j) out << "  sums[" << j << "u * WG + lid] = " << values[j] << ";\n";
    out << "  barrier();\n"
        << "  for (uint stride = WG / 2u; stride > 0u; stride >>= 1u) {\n"
        << "    if (lid < stride) {\n"
        << "      for (uint j = 0u; j < SUMS; ++j) sums[j * WG + lid] += sums[j * WG + lid + stride];\n"
        << "    }\n    barrier();\n  }\n";
  }
  // Phase 2: a row's softmax and gradient, by the invocation of that row.
  const std::string logit = "(sums[(lid * " + C + " + c) * STRIDE] + load_bias(c))";
  out << "  if (lid < ROWS && row0 + lid < " << M << ") {\n"
      << "    uint row = row0 + lid;\n"
      << "    float m = -3.402823466e38;\n"
      << "    for (uint c = 0u; c < " << C << "; ++c) {\n"
      << "      " << logits_out << ".data[row * " << C << " + c] = " << logit << ";\n"
      << "      m = max(m, " << logit << ");\n    }\n"
      << "    float total = 0.0;\n"
      << "    for (uint c = 0u; c < " << C << "; ++c) total += exp(" << logit << " - m);\n";
  if (index_labels) {
    out << "    float scale = load_seed() / max(sums[(SUMS - 1u) * STRIDE], 1.0);\n"
        << "    float label = load_label(row);\n    bool keep = " << valid << ";\n"
        << "    for (uint c = 0u; c < " << C << "; ++c) {\n"
        << "      float g = exp(" << logit << " - m) / total - (float(c) == label ? 1.0 : 0.0);\n"
        << "      g = keep ? g * scale : 0.0;\n";
  } else {
    out << "    float scale = load_seed() / " << float_literal(static_cast<double>(std::max<int64_t>(m, 1))) << ";\n"
        << "    float p_sum = 0.0;\n"
        << "    for (uint c = 0u; c < " << C << "; ++c) p_sum += load_label(row * " << C << " + c);\n"
        << "    for (uint c = 0u; c < " << C << "; ++c) {\n"
        << "      float g = (exp(" << logit << " - m) / total * p_sum - load_label(row * " << C << " + c)) * scale;\n";
  }
  out << "      " << grad_out << ".data[row * " << C << " + c] = g;\n"
      << "      grad_rows[lid * " << C << " + c] = g;\n    }\n";
  if (loss >= 0) {
    // The row's loss and whether it counts, for the last workgroup to add up.
    out << "    float lse = m + log(total);\n";
    if (index_labels) {
      out << "    uint c = keep ? uint(label) : 0u;  // an ignored label indexes nothing\n"
          << "    partials.data[row] = keep ? lse - " << logit << " : 0.0;\n"
          << "    partials.data[" << M << " + row] = keep ? 1.0 : 0.0;\n";
    } else {
      out << "    float row_loss = 0.0;\n"
          << "    for (uint c = 0u; c < " << C << "; ++c) row_loss += load_label(row * " << C << " + c) * (lse - "
          << logit << ");\n"
          << "    partials.data[row] = row_loss;\n    partials.data[" << M << " + row] = 1.0;\n";
    }
  }
  out << "  }\n";
  if (loss >= 0) {
    // Phase 3: the last workgroup through phase 2 adds up the rows' losses while the others go on
    // with phase 4 (arrive_last answers the same in the whole workgroup: its sums' barriers are uniform).
    const int64_t workgroups = (m + rows - 1) / rows;
    out << "  if (arrive_last(0u, " << u(workgroups) << ")) {\n"
        << "    float loss = 0.0, rows_counted = 0.0;\n"
        << "    for (uint r = lid; r < " << M << "; r += WG) {\n      loss += partials.data[r];\n"
        << "      rows_counted += partials.data[" << M << " + r];\n    }\n"
        << "    loss = block_sum(loss);\n    rows_counted = block_sum(rows_counted);\n"
        << "    if (lid == 0u) " << output_binding(kernel, loss) << ".data[0] = rows_counted > 0.0 ? loss / rows_counted : 0.0;\n"
        << "  }\n";
  }
  if (back >= 0) {
    // Phase 4: the gradient back into x, row by row, through the epilogue (after a barrier, which
    // arrive_last also is, so that grad_rows is complete).
    out << (loss >= 0 ? "" : "  barrier();\n") << strided_loop;
    for (int64_t c = 0; c < classes; ++c) out << "    float w_" << c << " = load_w(" << c * d << "u + k);\n";
    for (uint32_t r = 0; r < rows; ++r) {
      out << "    if (row0 + " << r << "u < " << M << ") {\n      float acc = 0.0;\n     ";
      for (int64_t c = 0; c < classes; ++c) {
        out << " acc += grad_rows[" << r * classes + c << "u] * w_" << c << ";";
      }
      out << "\n      uint i = (row0 + " << r << "u) * " << D << " + k;\n"
          << "      " << store_output(kernel, "i", "epilogue(i, acc)") << "\n    }\n";
    }
    out << "  }}\n";
  }
  out << "}\n";
  return out.str();
}

}  // namespace meganeura::codegen
