// conv2d and its two gradients as implicit GEMMs: the im2col matrix is never stored; tiles of it are
// gathered into shared memory straight from the NCHW tensors. Per group g (workgroup z):
//
//   conv2d             Y[n, g·Co'+m, p]   = Σ_k W[g·Co'+m, k] · X_col[k, (n, p)]      k = (ci, r, s)
//   conv2d_grad_input  dX[n, g·Ci'+m, p]  = Σ_k W[g·Co'+co, m, r, s] · dY_col[k, (n, p)]  k = (co, r, s)
//   conv2d_grad_weight dW[g·Co'+m, k']    = Σ_k dY[n, g·Co'+m, q] · X_col[k', (n, q)]   k = (n, q)
//
// A 1×1, stride-1, unpadded convolution reads its input as a plain matrix (a batched matmul).
#include <sstream>

#include "codegen/archetypes.h"
#include "codegen/glsl.h"
#include "codegen/matmul_parts.h"
#include "codegen/op_inputs.h"
#include "meganeura/error.h"

namespace meganeura::codegen {

namespace {

struct ConvShape {
  int64_t N, Cin, H, W, Cout, kh, kw, Ho, Wo, groups, sh, sw, ph, pw, dh, dw;
};

ConvShape conv_shape(const Graph& graph, const Node& node) {
  const Shape *x, *w, *y;
  switch (node.op) {
    case Op::conv2d: x = &graph.node(node.inputs[0]).shape, w = &graph.node(node.inputs[1]).shape, y = &node.shape; break;
    case Op::conv2d_grad_input: x = &node.shape, w = &graph.node(node.inputs[1]).shape, y = &graph.node(node.inputs[0]).shape; break;
    default: x = &graph.node(node.inputs[0]).shape, w = &node.shape, y = &graph.node(node.inputs[1]).shape; break;
  }
  const auto& i = node.attrs.ints;
  return {(*x)[0], (*x)[1], (*x)[2], (*x)[3], (*w)[0], (*w)[2], (*w)[3], (*y)[2], (*y)[3], node.attrs.groups,
          i[0], i[1], i[2], i[3], i[4], i[5]};
}

std::string constants(const ConvShape& c) {
  std::ostringstream out;
  out << "const int N_ = " << c.N << ", CIN = " << c.Cin << ", H = " << c.H << ", W = " << c.W << ", COUT = " << c.Cout
      << ", KH = " << c.kh << ", KW = " << c.kw << ", HO = " << c.Ho << ", WO = " << c.Wo << ";\n"
      << "const int SH = " << c.sh << ", SW = " << c.sw << ", PH = " << c.ph << ", PW = " << c.pw << ", DH = " << c.dh
      << ", DW = " << c.dw << ";\n"
      << "const int CIN_G = " << c.Cin / c.groups << ", COUT_G = " << c.Cout / c.groups << ";\n";
  return out.str();
}

// x[n, g·Ci' + ci] at output position (oh, ow) through tap (r, s); 0 in the padding.
const char* kInputTap = R"(float x_tap(int g, int n, int ci, int oh, int ow, int r, int s) {
  int h = oh * SH - PH + r * DH, w = ow * SW - PW + s * DW;
  if (h < 0 || h >= H || w < 0 || w >= W) return 0.0;
  return float(XB.data[((n * CIN + g * CIN_G + ci) * H + h) * W + w]);
}
)";

std::string operand_functions(const Node& node, const ConvShape& c, uint64_t& M, uint64_t& N, uint64_t& K) {
  const bool pointwise_conv = c.kh == 1 && c.kw == 1 && c.sh == 1 && c.sw == 1 && c.ph == 0 && c.pw == 0;
  std::ostringstream out;
  switch (node.op) {
    case Op::conv2d:
      M = static_cast<uint64_t>(c.Cout / c.groups), N = static_cast<uint64_t>(c.N * c.Ho * c.Wo);
      K = static_cast<uint64_t>(c.Cin / c.groups * c.kh * c.kw);
      out << "float a_at(int g, int m, int k) { return float(WB.data[(g * COUT_G + m) * CIN_G * KH * KW + k]); }\n";
      if (pointwise_conv) {
        out << "float b_at(int g, int k, int p) { int n = p / (HO * WO);\n"
            << "  return float(XB.data[(n * CIN + g * CIN_G + k) * H * W + p % (HO * WO)]); }\n";
      } else {
        out << kInputTap
            << "float b_at(int g, int k, int p) {\n"
            << "  return x_tap(g, p / (HO * WO), k / (KH * KW), (p / WO) % HO, p % WO, (k / KW) % KH, k % KW); }\n";
      }
      out << "void store(int g, int m, int p, float v) {\n"
          << "  result.data[((p / (HO * WO)) * COUT + g * COUT_G + m) * HO * WO + p % (HO * WO)] = v; }\n";
      break;
    case Op::conv2d_grad_input:
      M = static_cast<uint64_t>(c.Cin / c.groups), N = static_cast<uint64_t>(c.N * c.H * c.W);
      K = static_cast<uint64_t>(c.Cout / c.groups * c.kh * c.kw);
      out << "float a_at(int g, int m, int k) {\n"
          << "  return float(WB.data[((g * COUT_G + k / (KH * KW)) * CIN_G + m) * KH * KW + k % (KH * KW)]); }\n"
          << "// dY at the output position whose tap (r, s) lands on input (h, w), if any.\n"
          << "float b_at(int g, int k, int p) {\n"
          << "  int n = p / (H * W), h = (p / W) % H, w = p % W;\n"
          << "  int co = k / (KH * KW), r = (k / KW) % KH, s = k % KW;\n"
          << "  int th = h + PH - r * DH, tw = w + PW - s * DW;\n"
          << "  if (th < 0 || tw < 0 || th % SH != 0 || tw % SW != 0) return 0.0;\n"
          << "  int oh = th / SH, ow = tw / SW;\n"
          << "  if (oh >= HO || ow >= WO) return 0.0;\n"
          << "  return float(DYB.data[((n * COUT + g * COUT_G + co) * HO + oh) * WO + ow]); }\n"
          << "void store(int g, int m, int p, float v) {\n"
          << "  result.data[((p / (H * W)) * CIN + g * CIN_G + m) * H * W + p % (H * W)] = v; }\n";
      break;
    default:  // conv2d_grad_weight
      M = static_cast<uint64_t>(c.Cout / c.groups), N = static_cast<uint64_t>(c.Cin / c.groups * c.kh * c.kw);
      K = static_cast<uint64_t>(c.N * c.Ho * c.Wo);
      out << "float a_at(int g, int m, int k) {\n"
          << "  return float(DYB.data[((k / (HO * WO)) * COUT + g * COUT_G + m) * HO * WO + k % (HO * WO)]); }\n"
          << kInputTap
          << "float b_at(int g, int k, int q) {\n"
          << "  return x_tap(g, k / (HO * WO), q / (KH * KW), (k / WO) % HO, k % WO, (q / KW) % KH, q % KW); }\n"
          << "void store(int g, int m, int q, float v) { result.data[(g * COUT_G + m) * CIN_G * KH * KW + q] = v; }\n";
      break;
  }
  return out.str();
}

// The prefetching tile (codegen/matmul_wide.cpp) over the conv's operand functions: A along k, B
// along n (along k for the weight gradient, whose k runs over image positions).
std::string wide_conv_main(int halves, bool b_along_k) {
  std::ostringstream out;
  const std::string b_coords = b_along_k ? "uint nn = f / BK, kk = f % BK;" : "uint nn = f % TN, kk = f / TN;";
  out << wide_tile_shared(halves) << "\nvoid main() {\n"
      << "  int g = int(gl_WorkGroupID.z);\n"
      << "  uint row0 = gl_WorkGroupID.y * TM, col0 = gl_WorkGroupID.x * TN;\n"
      << "  uint lid = gl_LocalInvocationIndex, tx = lid % 16u, ty = lid / 16u;\n"
      << wide_tile_accumulators(halves)
      << wide_tile_loop(
             halves,
             "uint mm = f / BK, kk = f % BK; a_next[e] = (row0 + mm < M && k0 + kk < K) ? a_at(g, int(row0 + mm), "
             "int(k0 + kk)) : 0.0;",
             b_coords + " b_next[e] = (col0 + nn < N && k0 + kk < K) ? b_at(g, int(k0 + kk), int(col0 + nn)) : 0.0;",
             "uint mm = f / BK, kk = f % BK; As[s][kk][mm / 4u][mm % 4u] = a_next[e];",
             b_coords + " Bs[s][kk][nn / 4u][nn % 4u] = b_next[e];")
      << wide_tile_rows(halves,
                        [](int r, int j) {
                          return "store(g, int(row), int(col), acc_" + std::to_string(r) + "_" + std::to_string(j) +
                                 "[c]);";
                        })
      << "}\n";
  return out.str();
}

}  // namespace

std::string generate_conv(const Graph& graph, const compile::Kernel& kernel) {
  const Node& node = graph.node(kernel.root);
  const ConvShape c = conv_shape(graph, node);
  std::ostringstream out;
  out << (kernel.register_tile[0] == 8 ? shader_header_with_loop_attributes(graph, kernel) : shader_header(graph, kernel))
      << constants(c);
  switch (node.op) {
    case Op::conv2d:
      out << "#define XB " << input_buffer(kernel, node, 0) << "\n#define WB " << input_buffer(kernel, node, 1) << "\n";
      break;
    case Op::conv2d_grad_input:
      out << "#define DYB " << input_buffer(kernel, node, 0) << "\n#define WB " << input_buffer(kernel, node, 1) << "\n";
      break;
    case Op::conv2d_grad_weight:
      out << "#define XB " << input_buffer(kernel, node, 0) << "\n#define DYB " << input_buffer(kernel, node, 1) << "\n";
      break;
    default:
      throw Error(std::string("codegen: op '") + op_name(node.op) + "' is not a convolution");
  }
  uint64_t M = 0, N = 0, K = 0;
  out << operand_functions(node, c, M, N, K);
  const uint32_t side = kernel.local_size[0], reg = kernel.register_tile[0];
  // The weight gradient's B runs along image positions in k: consecutive invocations load
  // consecutive positions (coalesced) and store down a column of b_tile, whose rows are padded by
  // one float so those stores fall in different banks. The other forms load along n.
  const bool b_along_k = node.op == Op::conv2d_grad_weight;
  out << "const uint M = " << uint_literal(M) << ", N = " << uint_literal(N) << ", K = " << uint_literal(K) << ";\n";
  if (reg == 8) return out.str() + wide_conv_main(2, b_along_k);
  out << "const uint SIDE = " << side << "u, REG = " << reg << "u, TILE = SIDE * REG, BKT = 16u;\n"
      << "const uint B_ROW = TILE + " << (b_along_k ? 1 : 0) << "u;\n"
      << "#define B_ALONG_K " << (b_along_k ? 1 : 0) << "\n"
      << R"(shared float a_tile[BKT * TILE];
shared float b_tile[BKT * B_ROW];

void main() {
  int g = int(gl_WorkGroupID.z);
  uint m0 = gl_WorkGroupID.y * TILE, n0 = gl_WorkGroupID.x * TILE;
  uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y, lid = ty * SIDE + tx;
  float acc[REG * REG];
  for (uint e = 0u; e < REG * REG; ++e) acc[e] = 0.0;
  for (uint k0 = 0u; k0 < K; k0 += BKT) {
    for (uint e = lid; e < BKT * TILE; e += SIDE * SIDE) {
      uint kk = e % BKT, mm = e / BKT;
      uint m = m0 + mm, k = k0 + kk;
      a_tile[kk * TILE + mm] = (m < M && k < K) ? a_at(g, int(m), int(k)) : 0.0;
    }
    for (uint e = lid; e < BKT * TILE; e += SIDE * SIDE) {
#if B_ALONG_K
      uint kk = e % BKT, nn = e / BKT;
#else
      uint nn = e % TILE, kk = e / TILE;
#endif
      uint n = n0 + nn, k = k0 + kk;
      b_tile[kk * B_ROW + nn] = (n < N && k < K) ? b_at(g, int(k), int(n)) : 0.0;
    }
    barrier();
    for (uint kk = 0u; kk < BKT; ++kk) {
      float b_reg[REG];
      for (uint j = 0u; j < REG; ++j) b_reg[j] = b_tile[kk * B_ROW + tx + j * SIDE];
      for (uint i = 0u; i < REG; ++i) {
        float a = a_tile[kk * TILE + ty + i * SIDE];
        for (uint j = 0u; j < REG; ++j) acc[i * REG + j] += a * b_reg[j];
      }
    }
    barrier();
  }
  for (uint i = 0u; i < REG; ++i) {
    uint m = m0 + ty + i * SIDE;
    if (m >= M) continue;
    for (uint j = 0u; j < REG; ++j) {
      uint n = n0 + tx + j * SIDE;
      if (n < N) store(g, int(m), int(n), acc[i * REG + j]);
    }
  }
}
)";
  return out.str();
}

}  // namespace meganeura::codegen
