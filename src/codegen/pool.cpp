// Pooling, nearest upsampling and global average pooling (NCHW), forward and backward: one
// invocation per result element. Backward kernels gather from the windows covering their input
// element instead of scattering, so they need no atomics and give deterministic sums; max pooling's
// backward recomputes each window's argmax (the first maximum, as the forward picks it).
#include <sstream>

#include "codegen/archetypes.h"
#include "codegen/glsl.h"
#include "meganeura/error.h"

namespace meganeura::codegen {

namespace {

// The window geometry, and the first-maximum tap of window (nc, oh, ow) as a flat plane index.
std::string pool_constants(const Node& node, const Shape& x, const Shape& y) {
  const auto& i = node.attrs.ints;
  std::ostringstream out;
  out << "const int H = " << x[2] << ", W = " << x[3] << ", HO = " << y[2] << ", WO = " << y[3] << ";\n"
      << "const int KH = " << i[0] << ", KW = " << i[1] << ", SH = " << i[2] << ", SW = " << i[3] << ", PH = " << i[4]
      << ", PW = " << i[5] << ";\n";
  return out.str();
}

const char* kWindowArgmax = R"(// Plane index of the first maximum of window (oh, ow) of plane `nc`; -1 for an all-padding window.
int window_argmax(int nc, int oh, int ow) {
  int best = -1;
  float best_value = 0.0;
  for (int r = 0; r < KH; ++r) {
    int h = oh * SH - PH + r;
    if (h < 0 || h >= H) continue;
    for (int s = 0; s < KW; ++s) {
      int w = ow * SW - PW + s;
      if (w < 0 || w >= W) continue;
      float v = float(in0.data[nc * H * W + h * W + w]);
      if (best < 0 || v > best_value) { best = h * W + w; best_value = v; }
    }
  }
  return best;
}
)";

// The output windows covering input row h (or column): [first, last], clamped to the output.
const char* kCoveringWindows = R"(ivec2 covering(int h, int k, int stride, int pad, int out_size) {
  int top = h + pad;
  int first = top - k + 1 <= 0 ? 0 : (top - k + stride) / stride;
  int last = min(top / stride, out_size - 1);
  return ivec2(first, last);
}
)";

}  // namespace

std::string generate_pool(const Graph& graph, const compile::Kernel& kernel) {
  const Node& node = graph.node(kernel.root);
  const Shape& out_shape = node.shape;
  auto in_shape = [&](size_t k) -> const Shape& { return graph.node(node.inputs[k]).shape; };
  std::ostringstream body, helpers;
  switch (node.op) {
    case Op::max_pool2d:
      helpers << pool_constants(node, in_shape(0), out_shape) << kWindowArgmax;
      body << "  int nc = int(i) / (HO * WO), oh = (int(i) / WO) % HO, ow = int(i) % WO;\n"
           << "  int best = window_argmax(nc, oh, ow);\n"
           << "  result.data[i] = best < 0 ? uintBitsToFloat(0xff800000u) : float(in0.data[nc * H * W + best]);\n";
      break;
    case Op::max_pool2d_grad:  // in0 = x, in1 = dy; result has x's shape
      helpers << pool_constants(node, in_shape(0), in_shape(1)) << kWindowArgmax << kCoveringWindows;
      body << "  int nc = int(i) / (H * W), h = (int(i) / W) % H, w = int(i) % W;\n"
           << "  ivec2 rows = covering(h, KH, SH, PH, HO), cols = covering(w, KW, SW, PW, WO);\n"
           << "  float total = 0.0;\n"
           << "  for (int oh = rows.x; oh <= rows.y; ++oh)\n"
           << "    for (int ow = cols.x; ow <= cols.y; ++ow)\n"
           << "      if (window_argmax(nc, oh, ow) == h * W + w) total += float(in1.data[(nc * HO + oh) * WO + ow]);\n"
           << "  result.data[i] = total;\n";
      break;
    case Op::avg_pool2d:
      helpers << pool_constants(node, in_shape(0), out_shape);
      body << "  int nc = int(i) / (HO * WO), oh = (int(i) / WO) % HO, ow = int(i) % WO;\n"
           << "  float total = 0.0;\n"
           << "  for (int r = 0; r < KH; ++r) {\n"
           << "    int h = oh * SH - PH + r;\n"
           << "    if (h < 0 || h >= H) continue;\n"
           << "    for (int s = 0; s < KW; ++s) {\n"
           << "      int w = ow * SW - PW + s;\n"
           << "      if (w >= 0 && w < W) total += float(in0.data[(nc * H + h) * W + w]);\n"
           << "    }\n"
           << "  }\n"
           << "  // Padding counts toward the window size (PyTorch's count_include_pad).\n"
           << "  result.data[i] = total / float(KH * KW);\n";
      break;
    case Op::avg_pool2d_grad:  // in0 = dy; result has the input's shape
      helpers << pool_constants(node, out_shape, in_shape(0)) << kCoveringWindows;
      body << "  int nc = int(i) / (H * W), h = (int(i) / W) % H, w = int(i) % W;\n"
           << "  ivec2 rows = covering(h, KH, SH, PH, HO), cols = covering(w, KW, SW, PW, WO);\n"
           << "  float total = 0.0;\n"
           << "  for (int oh = rows.x; oh <= rows.y; ++oh)\n"
           << "    for (int ow = cols.x; ow <= cols.y; ++ow) total += float(in0.data[(nc * HO + oh) * WO + ow]);\n"
           << "  result.data[i] = total / float(KH * KW);\n";
      break;
    case Op::upsample_nearest2x: {
      const int64_t H2 = out_shape[2], W2 = out_shape[3];
      body << "  uint plane = i / " << uint_literal(H2 * W2) << ", h = (i / " << uint_literal(W2) << ") % "
           << uint_literal(H2) << ", w = i % " << uint_literal(W2) << ";\n"
           << "  result.data[i] = in0.data[(plane * " << uint_literal(H2 / 2) << " + h / 2u) * " << uint_literal(W2 / 2)
           << " + w / 2u];\n";
      break;
    }
    case Op::upsample_nearest2x_grad: {
      const int64_t H = out_shape[2], W = out_shape[3];
      body << "  uint plane = i / " << uint_literal(H * W) << ", h = (i / " << uint_literal(W) << ") % " << uint_literal(H)
           << ", w = i % " << uint_literal(W) << ";\n"
           << "  uint top = (plane * " << uint_literal(2 * H) << " + 2u * h) * " << uint_literal(2 * W) << " + 2u * w;\n"
           << "  result.data[i] = (float(in0.data[top]) + float(in0.data[top + 1u])) + (float(in0.data[top + "
           << uint_literal(2 * W) << "]) + float(in0.data[top + " << uint_literal(2 * W + 1) << "]));\n";
      break;
    }
    case Op::global_avg_pool: {
      const int64_t plane = in_shape(0)[2] * in_shape(0)[3];
      body << "  float total = 0.0;\n"
           << "  for (uint k = 0u; k < " << uint_literal(plane) << "; ++k) total += float(in0.data[i * "
           << uint_literal(plane) << " + k]);\n"
           << "  result.data[i] = total / " << float_literal(static_cast<double>(plane)) << ";\n";
      break;
    }
    default:
      throw Error(std::string("codegen: op '") + op_name(node.op) + "' is not a pooling or upsampling op");
  }
  std::ostringstream out;
  out << shader_header(graph, kernel) << helpers.str() << "void main() {\n"
      << "  uint i = " << linear_invocation_index() << ";\n"
      << "  if (i >= " << uint_literal(num_elements(out_shape)) << ") return;\n"
      << body.str() << "}\n";
  return out.str();
}

}  // namespace meganeura::codegen
