// Reduction kernels: one workgroup per reduced row (or one for a whole-tensor loss), a pointwise
// prologue on every input (fused producers are evaluated as they are read), shared-memory tree
// reductions, and the op's own epilogue (normalise, softmax, gradient).
#include <sstream>

#include "codegen/archetypes.h"
#include "codegen/expression.h"
#include "codegen/glsl.h"
#include "meganeura/error.h"

namespace meganeura::codegen {

const char* workgroup_reductions() {
  return R"(shared float shared_value[WG];
shared uint shared_index[WG];

float workgroup_sum(float v) {
  uint lid = gl_LocalInvocationID.x;
  shared_value[lid] = v;
  barrier();
  for (uint stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) shared_value[lid] += shared_value[lid + stride];
    barrier();
  }
  float total = shared_value[0];
  barrier();
  return total;
}

float workgroup_max(float v) {
  uint lid = gl_LocalInvocationID.x;
  shared_value[lid] = v;
  barrier();
  for (uint stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) shared_value[lid] = max(shared_value[lid], shared_value[lid + stride]);
    barrier();
  }
  float best = shared_value[0];
  barrier();
  return best;
}

// The index of the largest value; the first one on ties.
uint workgroup_argmax(float v, uint index) {
  uint lid = gl_LocalInvocationID.x;
  shared_value[lid] = v;
  shared_index[lid] = index;
  barrier();
  for (uint stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) {
      float other = shared_value[lid + stride];
      uint other_index = shared_index[lid + stride];
      if (other > shared_value[lid] || (other == shared_value[lid] && other_index < shared_index[lid])) {
        shared_value[lid] = other;
        shared_index[lid] = other_index;
      }
    }
    barrier();
  }
  uint best = shared_index[0];
  barrier();
  return best;
}

)";
}

namespace {

// outer × length × inner decomposition of an axis reduction over `shape`.
struct AxisSplit {
  int64_t outer = 1, length = 1, inner = 1;
};

AxisSplit split_axis(const Shape& shape, int64_t axis) {
  AxisSplit split;
  if (shape.empty()) return split;
  for (int64_t d = 0; d < axis; ++d) split.outer *= shape[d];
  split.length = shape[axis];
  for (size_t d = static_cast<size_t>(axis) + 1; d < shape.size(); ++d) split.inner *= shape[d];
  return split;
}

std::string u(int64_t v) { return uint_literal(static_cast<uint64_t>(v)); }

}  // namespace

std::string generate_reduction(const Graph& graph, const compile::Kernel& kernel) {
  const Node& node = graph.node(kernel.anchor);
  ExpressionWriter writer(graph, kernel);
  std::ostringstream functions;
  for (size_t k = 0; k < node.inputs.size(); ++k) {
    functions << writer.function("load" + std::to_string(k), node.inputs[k], graph.node(node.inputs[k]).shape) << "\n";
  }
  const Shape& x_shape = graph.node(node.inputs[0]).shape;
  const std::string store_type = element_type(node.dtype);
  const std::string lowest = "-3.402823466e38";
  std::ostringstream body;
  // Per-row loops: `for t in [lid, length) step WG` over element (o * length + t) * inner + in.
  auto row_loop = [&](const AxisSplit& s) {
    return "for (uint t = lid; t < " + u(s.length) + "; t += WG)";
  };
  auto element = [&](const AxisSplit& s) {
    return "(o * " + u(s.length) + " + t) * " + u(s.inner) + " + in_row";
  };
  auto row_prelude = [&](const AxisSplit& s) {
    return "  uint o = row / " + u(s.inner) + ";\n  uint in_row = row % " + u(s.inner) + ";\n";
  };

  if (kernel.register_tile[0] > 1) {
    // One invocation per row (compile::reduces_rows_serially): a plain loop, no workgroup sums.
    const AxisSplit s = split_axis(x_shape, node.attrs.axis);
    const bool is_max = node.op == Op::max;
    std::ostringstream out;
    out << shader_header(graph, kernel) << math_helpers() << functions.str() << "void main() {\n"
        << "  uint row = " << linear_workgroup_index() << " * " << kernel.register_tile[0]
        << "u + gl_LocalInvocationID.x;\n"
        << "  if (row >= " << u(static_cast<int64_t>(kernel.work_items)) << ") return;\n"
        << row_prelude(s) << "  float acc = " << (is_max ? lowest : "0.0") << ";\n"
        << "  for (uint t = 0u; t < " << u(s.length) << "; ++t) {\n"
        << "    float x = load0(" << element(s) << ");\n"
        << "    acc = " << (is_max ? "max(acc, x)" : "acc + x") << ";\n  }\n";
    if (node.op == Op::mean) out << "  acc /= " << float_literal(s.length) << ";\n";
    out << "  " << store_output(kernel, "row", store_type + "(acc)") << "\n}\n";
    return out.str();
  }
  // Long rows split over several workgroups (compile::reduction_row_split): workgroup `row` takes
  // run `chunk` of row `row / SPLIT`.
  const uint32_t split = compile::reduction_row_split(graph, node);
  const std::string split_rows =
      split > 1 ? "  uint chunk = row % SPLIT;\n  row /= SPLIT;\n" : "";
  auto split_loop = [&](const AxisSplit& s) {
    return "for (uint t = chunk * " + u(compile::reduction_span) + " + lid; t < min(" + u(s.length) + ", (chunk + 1u) * " +
           u(compile::reduction_span) + "); t += WG)";
  };
  switch (node.op) {
    case Op::sum: case Op::mean: case Op::max: case Op::sum_all: case Op::mean_all: {
      const bool all = node.op == Op::sum_all || node.op == Op::mean_all;
      const AxisSplit s = all ? AxisSplit{1, num_elements(x_shape), 1} : split_axis(x_shape, node.attrs.axis);
      const bool is_max = node.op == Op::max;
      const std::string combine = is_max ? "workgroup_max(acc)" : "workgroup_sum(acc)";
      body << split_rows << row_prelude(s) << "  float acc = " << (is_max ? lowest : "0.0") << ";\n  "
           << (split > 1 ? split_loop(s) : row_loop(s)) << " {\n"
           << "    float x = load0(" << element(s) << ");\n"
           << "    acc = " << (is_max ? "max(acc, x)" : "acc + x") << ";\n  }\n"
           << "  acc = " << combine << ";\n";
      if (split > 1) {
        // The row's workgroups store their partial results; the last to arrive combines them in order.
        body << "  if (lid == 0u) partials.data[row * SPLIT + chunk] = acc;\n"
             << "  if (!arrive_last(row, SPLIT)) return;\n"
             << "  acc = " << (is_max ? lowest : "0.0") << ";\n"
             << "  for (uint c = lid; c < SPLIT; c += WG) acc = "
             << (is_max ? "max(acc, partials.data[row * SPLIT + c])" : "acc + partials.data[row * SPLIT + c]") << ";\n"
             << "  acc = " << combine << ";\n";
      }
      if (node.op == Op::mean || node.op == Op::mean_all) body << "  acc /= " << float_literal(s.length) << ";\n";
      body << "  if (lid == 0u) " << store_output(kernel, "row", store_type + "(acc)") << "\n";
      break;
    }
    case Op::argmax: {
      const AxisSplit s = split_axis(x_shape, node.attrs.axis);
      body << split_rows << row_prelude(s) << "  float best = " << lowest << ";\n  uint best_index = 0xffffffffu;\n  "
           << (split > 1 ? split_loop(s) : row_loop(s)) << " {\n    float x = load0(" << element(s) << ");\n"
           << "    if (best_index == 0xffffffffu || x > best) { best = x; best_index = t; }\n  }\n"
           << "  uint index = workgroup_argmax(best, best_index);\n";
      if (split > 1) {
        // Each workgroup's winner (value and index); the last to arrive takes the best of them, the
        // first index on ties (chunks are in index order).
        body << "  if (lid == 0u) {\n    uint t = index;\n"
             << "    partials.data[2u * (row * SPLIT + chunk)] = load0(" << element(s) << ");\n"
             << "    partials.data[2u * (row * SPLIT + chunk) + 1u] = uintBitsToFloat(index);\n  }\n"
             << "  if (!arrive_last(row, SPLIT)) return;\n"
             << "  best = " << lowest << ";\n  best_index = 0xffffffffu;\n"
             << "  for (uint c = lid; c < SPLIT; c += WG) {\n"
             << "    float x = partials.data[2u * (row * SPLIT + c)];\n"
             << "    uint at = floatBitsToUint(partials.data[2u * (row * SPLIT + c) + 1u]);\n"
             << "    if (best_index == 0xffffffffu || x > best) { best = x; best_index = at; }\n  }\n"
             << "  index = workgroup_argmax(best, best_index);\n";
      }
      body << "  if (lid == 0u) result.data[row] = " << store_type << "(index);\n";
      break;
    }
    case Op::softmax: case Op::log_softmax: {
      const AxisSplit s = split_axis(x_shape, node.attrs.axis);
      body << row_prelude(s) << "  float m = " << lowest << ";\n  " << row_loop(s) << " m = max(m, load0("
           << element(s) << "));\n  m = workgroup_max(m);\n"
           << "  float total = 0.0;\n  " << row_loop(s) << " total += exp(load0(" << element(s) << ") - m);\n"
           << "  total = workgroup_sum(total);\n  " << row_loop(s) << " {\n    uint e = " << element(s) << ";\n"
           << (node.op == Op::softmax ? "    result.data[e] = exp(load0(e) - m) / total;\n"
                                      : "    result.data[e] = load0(e) - m - log(total);\n")
           << "  }\n";
      break;
    }
    case Op::softmax_grad: case Op::log_softmax_grad: {
      const AxisSplit s = split_axis(x_shape, node.attrs.axis);
      const bool plain = node.op == Op::softmax_grad;
      body << row_prelude(s) << "  float total = 0.0;\n  " << row_loop(s) << " {\n    uint e = " << element(s) << ";\n"
           << (plain ? "    total += load1(e) * load0(e);\n" : "    total += load1(e);\n") << "  }\n"
           << "  total = workgroup_sum(total);\n  " << row_loop(s) << " {\n    uint e = " << element(s) << ";\n"
           << (plain ? "    result.data[e] = load0(e) * (load1(e) - total);\n"
                     : "    result.data[e] = load1(e) - exp(load0(e)) * total;\n")
           << "  }\n";
      break;
    }
    case Op::layer_norm: case Op::layer_norm_grad: case Op::rms_norm: case Op::rms_norm_grad: {
      const int64_t d = x_shape.back();
      const std::string D = u(d), Df = float_literal(static_cast<double>(d));
      const std::string eps = float_literal(node.attrs.eps);
      body << "  uint base = row * " << D << ";\n";
      if (node.op == Op::layer_norm || node.op == Op::layer_norm_grad) {
        body << "  float total = 0.0;\n  for (uint t = lid; t < " << D << "; t += WG) total += load0(base + t);\n"
             << "  float mean = workgroup_sum(total) / " << Df << ";\n"
             << "  float squares = 0.0;\n  for (uint t = lid; t < " << D
             << "; t += WG) { float c = load0(base + t) - mean; squares += c * c; }\n"
             << "  float rstd = inversesqrt(workgroup_sum(squares) / " << Df << " + " << eps << ");\n";
        if (node.op == Op::layer_norm) {
          body << "  for (uint t = lid; t < " << D << "; t += WG)\n"
               << "    result.data[base + t] = (load0(base + t) - mean) * rstd * load1(t) + load2(t);\n";
        } else {
          body << "  float g_sum = 0.0, gx_sum = 0.0;\n  for (uint t = lid; t < " << D << "; t += WG) {\n"
               << "    float xhat = (load0(base + t) - mean) * rstd;\n    float g = load2(base + t) * load1(t);\n"
               << "    g_sum += g;\n    gx_sum += g * xhat;\n  }\n"
               << "  float g_mean = workgroup_sum(g_sum) / " << Df << ";\n"
               << "  float gx_mean = workgroup_sum(gx_sum) / " << Df << ";\n"
               << "  for (uint t = lid; t < " << D << "; t += WG) {\n"
               << "    float xhat = (load0(base + t) - mean) * rstd;\n    float g = load2(base + t) * load1(t);\n"
               << "    result.data[base + t] = rstd * (g - g_mean - xhat * gx_mean);\n  }\n";
        }
      } else {
        body << "  float squares = 0.0;\n  for (uint t = lid; t < " << D
             << "; t += WG) { float x = load0(base + t); squares += x * x; }\n"
             << "  float r = inversesqrt(workgroup_sum(squares) / " << Df << " + " << eps << ");\n";
        if (node.op == Op::rms_norm) {
          body << "  for (uint t = lid; t < " << D << "; t += WG) result.data[base + t] = load0(base + t) * r * load1(t);\n";
        } else {
          body << "  float gx = 0.0;\n  for (uint t = lid; t < " << D
               << "; t += WG) gx += load2(base + t) * load1(t) * load0(base + t);\n"
               << "  float gx_mean = workgroup_sum(gx) / " << Df << ";\n"
               << "  for (uint t = lid; t < " << D << "; t += WG) {\n"
               << "    float g = load2(base + t) * load1(t);\n"
               << "    result.data[base + t] = r * g - load0(base + t) * r * r * r * gx_mean;\n  }\n";
        }
      }
      break;
    }
    case Op::cross_entropy_loss: case Op::cross_entropy_grad: {
      const int64_t n = x_shape[0], c = x_shape[1];
      const bool index_labels = graph.node(node.inputs[1]).dtype == DType::i32;
      const std::string N = u(n), C = u(c), ignore = float_literal(static_cast<double>(node.attrs.ignore_index));
      const std::string valid = "(label != " + ignore + " && label >= 0.0 && label < " + float_literal(c) + ")";
      auto row_stats = [&](const std::string& r) {
        return "    float m = " + lowest + ";\n    for (uint t = lid; t < " + C + "; t += WG) m = max(m, load0(" + r +
               " * " + C + " + t));\n    m = workgroup_max(m);\n    float total = 0.0;\n    for (uint t = lid; t < " + C +
               "; t += WG) total += exp(load0(" + r + " * " + C + " + t) - m);\n    total = workgroup_sum(total);\n";
      };
      if (node.op == Op::cross_entropy_loss && c <= 64) {
        // Few classes: each invocation takes whole rows, then one workgroup sum (no per-row barriers).
        body << "  float loss = 0.0, counted = 0.0;\n  for (uint r = lid; r < " << N << "; r += WG) {\n"
             << "    float m = " << lowest << ";\n    for (uint t = 0u; t < " << C << "; ++t) m = max(m, load0(r * " << C
             << " + t));\n    float total = 0.0;\n    for (uint t = 0u; t < " << C << "; ++t) total += exp(load0(r * " << C
             << " + t) - m);\n    float lse = m + log(total);\n";
        if (index_labels) {
          body << "    float label = load1(r);\n    if " << valid << " {\n"
               << "      loss += lse - load0(r * " << C << " + uint(label));\n      counted += 1.0;\n    }\n";
        } else {
          body << "    for (uint t = 0u; t < " << C << "; ++t) loss += load1(r * " << C << " + t) * (lse - load0(r * " << C
               << " + t));\n    counted += 1.0;\n";
        }
        body << "  }\n  loss = workgroup_sum(loss);\n  counted = workgroup_sum(counted);\n"
             << "  if (lid == 0u) result.data[0] = counted > 0.0 ? loss / counted : 0.0;\n";
      } else if (node.op == Op::cross_entropy_loss) {
        // A workgroup per row (compile::cross_entropy_loss_by_rows) stores the row's loss and whether
        // it counts; the last to arrive adds them up in row order.
        body << "  float row_loss = 0.0, row_counted = 0.0;\n  {\n" << row_stats("row")
             << "    float lse = m + log(total);\n";
        if (index_labels) {
          body << "    float label = load1(row);\n    if " << valid << " {\n"
               << "      row_loss = lse - load0(row * " << C << " + uint(label));\n      row_counted = 1.0;\n    }\n";
        } else {
          body << "    float px = 0.0, p = 0.0;\n    for (uint t = lid; t < " << C << "; t += WG) {\n"
               << "      px += load1(row * " << C << " + t) * load0(row * " << C << " + t);\n      p += load1(row * " << C
               << " + t);\n    }\n    row_loss = lse * workgroup_sum(p) - workgroup_sum(px);\n    row_counted = 1.0;\n";
        }
        body << "  }\n"
             << "  if (lid == 0u) {\n    partials.data[row] = row_loss;\n    partials.data[" << N
             << " + row] = row_counted;\n  }\n"
             << "  if (!arrive_last(0u, " << N << ")) return;\n"
             << "  float loss = 0.0, counted = 0.0;\n"
             << "  for (uint r = lid; r < " << N << "; r += WG) {\n    loss += partials.data[r];\n    counted += partials.data["
             << N << " + r];\n  }\n"
             << "  loss = workgroup_sum(loss);\n  counted = workgroup_sum(counted);\n"
             << "  if (lid == 0u) result.data[0] = counted > 0.0 ? loss / counted : 0.0;\n";
      } else {
        body << "  if (row >= " << N << ") return;\n";
        if (index_labels) {
          body << "  float counted = 0.0;\n  for (uint j = lid; j < " << N << "; j += WG) {\n"
               << "    float label = load1(j);\n    counted += " << valid << " ? 1.0 : 0.0;\n  }\n"
               << "  counted = workgroup_sum(counted);\n";
        } else {
          body << "  float counted = " << float_literal(n) << ";\n  float p_sum = 0.0;\n  for (uint t = lid; t < " << C
               << "; t += WG) p_sum += load1(row * " << C << " + t);\n  p_sum = workgroup_sum(p_sum);\n";
        }
        body << "  {\n" << row_stats("row") << "    float scale = load2(0u) / max(counted, 1.0);\n";
        if (index_labels) {
          body << "    float label = load1(row);\n    bool keep = " << valid << ";\n"
               << "    for (uint t = lid; t < " << C << "; t += WG) {\n"
               << "      float g = exp(load0(row * " << C << " + t) - m) / total - (float(t) == label ? 1.0 : 0.0);\n"
               << "      result.data[row * " << C << " + t] = keep ? g * scale : 0.0;\n    }\n";
        } else {
          body << "    for (uint t = lid; t < " << C << "; t += WG) {\n"
               << "      float g = exp(load0(row * " << C << " + t) - m) / total * p_sum - load1(row * " << C << " + t);\n"
               << "      result.data[row * " << C << " + t] = g * scale;\n    }\n";
        }
        body << "  }\n";
      }
      break;
    }
    case Op::mse_loss: case Op::bce_with_logits: {
      if (graph.node(node.inputs[1]).shape != x_shape) {
        throw Error(std::string("codegen: ") + op_name(node.op) + " needs operands of one shape, got " +
                    format_shape(x_shape) + " and " + format_shape(graph.node(node.inputs[1]).shape) +
                    "; broadcast_to the target first");
      }
      const int64_t n = num_elements(x_shape);
      body << "  float total = 0.0;\n  for (uint t = lid; t < " << u(n) << "; t += WG) {\n"
           << "    float x = load0(t);\n    float z = load1(t);\n"
           << (node.op == Op::mse_loss ? "    total += (x - z) * (x - z);\n"
                                       : "    total += max(x, 0.0) - x * z + log(1.0 + exp(-abs(x)));\n")
           << "  }\n  total = workgroup_sum(total);\n"
           << "  if (lid == 0u) result.data[0] = total / " << float_literal(static_cast<double>(n)) << ";\n";
      break;
    }
    default:
      throw Error(std::string("codegen: op '") + op_name(node.op) + "' is not a reduction");
  }
  std::ostringstream out;
  out << shader_header(graph, kernel) << (kernel.arrival_counters > 0 ? arrival_declarations(kernel) : "")
      << "const uint WG = " << kernel.local_size[0] << "u;\n"
      << (split > 1 ? "const uint SPLIT = " + std::to_string(split) + "u;  // workgroups per row\n" : "") << "\n"
      << math_helpers()
      << workgroup_reductions() << functions.str() << "void main() {\n"
      << "  uint row = " << linear_workgroup_index() << ";\n"
      << "  uint lid = gl_LocalInvocationID.x;\n"
      << "  if (row >= " << u(static_cast<int64_t>(kernel.work_items)) << ") return;  // the same for the whole workgroup\n"
      << body.str() << "}\n";
  return out.str();
}

}  // namespace meganeura::codegen
