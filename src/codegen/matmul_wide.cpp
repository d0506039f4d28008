// The wide-tile matmul for large products (compile chooses it with an 8×8 register tile): a
// workgroup of 256 invocations computes a 128×128 tile, each invocation 8×8 outputs held as sixteen
// vec4 accumulators (rows 4·ty…4·ty+3 and 64+4·ty…, columns 4·tx… and 64+4·tx…), so one k step
// reads four vec4s from shared memory for 64 multiply-adds. K advances in slices of 8 through two
// shared-memory stages: the next slice is loaded from global memory into registers while the current
// one is multiplied, and stored into the other stage, so one barrier per slice suffices and the
// global latency hides behind the arithmetic. Transposes, batches, 16-bit weights and the epilogue
// work as in the 4×4 kernel (matmul.cpp).
#include <cctype>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "codegen/archetypes.h"
#include "codegen/expression.h"
#include "codegen/glsl.h"
#include "codegen/matmul_parts.h"
#include "codegen/op_inputs.h"
#include "codegen/packed_weights.h"
#include "codegen/rope.h"
#include "compile/grouping.h"
#include "meganeura/error.h"

namespace meganeura::codegen {

// `acc_r_j` for output rows r (0..4·halves−1) and column halves j, each a vec4 of four columns.
std::string wide_tile_accumulators(int halves, bool squares) {
  std::ostringstream text;
  for (int r = 0; r < 4 * halves; ++r) {
    text << "  vec4";
    for (int j = 0; j < halves; ++j) text << (j ? ", " : " ") << "acc_" << r << "_" << j << " = vec4(0.0)";
    text << ";\n";
  }
  for (int h = 0; squares && h < halves; ++h) text << "  vec4 squares_" << h << " = vec4(0.0);\n";
  return text.str();
}

std::string wide_tile_multiply(int halves, bool squares) {
  std::ostringstream text;
  text << "    [[unroll]] for (uint kk = 0u; kk < BK; ++kk) {\n";
  for (int h = 0; h < halves; ++h) {
    text << "      vec4 a" << h << " = As[stage][kk][" << 16 * h << "u + ty], b" << h << " = Bs[stage][kk][" << 16 * h
         << "u + tx];\n";
    if (squares) text << "      squares_" << h << " += a" << h << " * a" << h << ";\n";
  }
  const char* lanes = "xyzw";
  for (int r = 0; r < 4 * halves; ++r) {
    const std::string a = "a" + std::to_string(r / 4) + "." + lanes[r % 4];
    text << "     ";
    for (int j = 0; j < halves; ++j) text << " acc_" << r << "_" << j << " += " << a << " * b" << j << ";";
    text << "\n";
  }
  text << "    }\n";
  return text.str();
}

std::vector<std::string> wide_tile_values(int halves, bool squares) {
  std::vector<std::string> values;
  for (int r = 0; r < 4 * halves; ++r) {
    for (int j = 0; j < halves; ++j) {
      for (int c = 0; c < 4; ++c) values.push_back("acc_" + std::to_string(r) + "_" + std::to_string(j) + "[" + std::to_string(c) + "]");
    }
  }
  for (int h = 0; squares && h < halves; ++h) {
    for (int c = 0; c < 4; ++c) values.push_back("squares_" + std::to_string(h) + "[" + std::to_string(c) + "]");
  }
  return values;
}

std::string wide_tile_normalize(int halves, const Node& norm, uint64_t k) {
  std::ostringstream text;
  for (int r = 0; r < 4 * halves; ++r) {
    text << "  { float scale = inversesqrt(squares_" << r / 4 << "[" << r % 4 << "] / "
         << float_literal(static_cast<double>(k)) << " + " << float_literal(norm.attrs.eps) << ");";
    for (int j = 0; j < halves; ++j) text << " acc_" << r << "_" << j << " *= scale;";
    text << " }\n";
  }
  return text.str();
}

std::string norm_weight_function(const Node* norm, ExpressionWriter& writer) {
  if (norm == nullptr) return "";
  return "float norm_weight(uint k) { return " + writer.load(norm->inputs[1], "k") + "; }\n";
}

namespace {

// `text` with every whole-word `from` replaced by `to`.
std::string renamed(std::string text, const std::string& from, const std::string& to) {
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at)) {
    const bool starts = at == 0 || !word(text[at - 1]);
    const bool ends = at + from.size() >= text.size() || !word(text[at + from.size()]);
    if (starts && ends) {
      text.replace(at, from.size(), to);
      at += to.size();
    } else {
      at += from.size();
    }
  }
  return text;
}

// The next slice fetched into registers while the current one is multiplied.
std::string one_slice_ahead(int halves, const std::string& fetch_a, const std::string& fetch_b,
                            const std::string& stash_a, const std::string& stash_b, const std::string& k_begin,
                            const std::string& k_end, bool squares) {
  const std::string loads = std::to_string(2 * halves) + "u";  // elements of each operand per invocation
  std::ostringstream text;
  text << "  float a_next[" << 2 * halves << "], b_next[" << 2 * halves << "];\n"
       << "  uint k0 = " << k_begin << ";\n"
       << "#define FETCH() [[unroll]] for (uint e = 0u; e < " << loads << "; ++e) { uint f = lid + e * 256u; \\\n"
       << "    { " << fetch_a << " } \\\n    { " << fetch_b << " } }\n"
       << "#define STASH(s) [[unroll]] for (uint e = 0u; e < " << loads << "; ++e) { uint f = lid + e * 256u; \\\n"
       << "    { " << stash_a << " } \\\n    { " << stash_b << " } }\n"
       << "  FETCH();\n  STASH(0u);\n  barrier();\n"
       << "  uint stage = 0u;\n"
       // Fetch and stash stay unconditional: past k_end a fetch reads zeros (or terms of the next
       // split, still inside K) into a stage nobody reads. Behind a branch the loads may be moved
       // down to the stash, and the slice then waits for them (H100: gemm_f32 36.1 -> 37.1 TFLOP/s,
       // MLP step 0.172 -> 0.166 ms).
       << "  for (; k0 < " << k_end << "; ) {\n"
       << "    k0 += BK;\n"
       << "    FETCH();\n"
       << wide_tile_multiply(halves, squares)
       << "    STASH(stage ^ 1u);\n"
       << "    barrier();\n"
       << "    stage ^= 1u;\n"
       << "  }\n";
  return text.str();
}

}  // namespace

int wide_tile_fetch_ahead(const compile::Kernel& kernel, uint64_t k) {
  const uint64_t span = kernel.split_k > 1 ? compile::split_k_span(k, kernel.split_k, compile::split_k_granularity(kernel)) : k;
  return span >= 512 ? 2 : 1;
}

std::string wide_tile_loop(int halves, const std::string& fetch_a, const std::string& fetch_b,
                           const std::string& stash_a, const std::string& stash_b, const std::string& k_begin,
                           const std::string& k_end, bool squares, int fetch_ahead) {
  const std::string loads = std::to_string(2 * halves) + "u";  // elements of each operand per invocation
  if (fetch_ahead < 2) return one_slice_ahead(halves, fetch_a, fetch_b, stash_a, stash_b, k_begin, k_end, squares);
  // Two register sets (a_next/b_next, a_far/b_far) fetch two slices ahead: each fetch has two
  // slices' arithmetic to arrive in (H100: gemm_f32 4096³ 34.5 -> 37.7 TFLOP/s). Short spans keep
  // one set: SmolLM2's prefill products (88 to 120 terms a workgroup) went 3.35 -> 3.57 ms.
  auto fetch = [&](const std::string& code) { return renamed(renamed(renamed(code, "k0", "kf"), "a_next", "AN"), "b_next", "BN"); };
  auto stash = [&](const std::string& code) { return renamed(renamed(code, "a_next", "AN"), "b_next", "BN"); };
  std::ostringstream text;
  text << "  float a_next[" << 2 * halves << "], b_next[" << 2 * halves << "], a_far[" << 2 * halves << "], b_far["
       << 2 * halves << "];\n"
       << "  uint k0 = " << k_begin << ";\n"
       << "#define FETCH(AN, BN, KF) [[unroll]] for (uint e = 0u; e < " << loads << "; ++e) { uint f = lid + e * 256u; \\\n"
       << "    uint kf = KF; { " << fetch(fetch_a) << " } \\\n    { " << fetch(fetch_b) << " } }\n"
       << "#define STASH(s, AN, BN) [[unroll]] for (uint e = 0u; e < " << loads << "; ++e) { uint f = lid + e * 256u; \\\n"
       << "    { " << stash(stash_a) << " } \\\n    { " << stash(stash_b) << " } }\n"
       << "  FETCH(a_next, b_next, k0);\n  FETCH(a_far, b_far, k0 + BK);\n  STASH(0u, a_next, b_next);\n  barrier();\n"
       << "  uint stage = 0u;\n"
       // Unconditional fetches as above; two slices a trip, so the register sets swap by name.
       << "  for (; k0 < " << k_end << "; ) {\n";
  // A slice: fetch two ahead into one set, multiply, stash the other (fetched a slice ago).
  auto slice = [&](const std::string& fetched, const std::string& stashed) {
    text << "    FETCH(" << fetched << ", k0 + 2u * BK);\n"
         << wide_tile_multiply(halves, squares)
         << "    STASH(stage ^ 1u, " << stashed << ");\n"
         << "    barrier();\n"
         << "    stage ^= 1u;\n"
         << "    k0 += BK;\n";
  };
  slice("a_next, b_next", "a_far, b_far");
  text << "    if (k0 >= " << k_end << ") break;\n";
  slice("a_far, b_far", "a_next, b_next");
  text << "  }\n";
  return text.str();
}

std::string wide_tile_shared(int halves) {
  // Rows of TM/4 vec4 padded by one: the stores of a slice go down a column (k) of the tile.
  const std::string tile = std::to_string(64 * halves) + "u";
  return "const uint TM = " + tile + ", TN = " + tile + ", BK = 8u;\n"
         "shared vec4 As[2][BK][TM / 4u + 1u];\nshared vec4 Bs[2][BK][TN / 4u + 1u];\n";
}

std::string wide_tile_rows(int halves, const std::function<std::string(int r, int j)>& store_row_half) {
  std::ostringstream text;
  for (int r = 0; r < 4 * halves; ++r) {
    text << "  {\n    uint row = row0 + " << 64 * (r / 4) << "u + 4u * ty + " << r % 4 << "u;\n"
         << "    if (row < M) {\n";
    for (int j = 0; j < halves; ++j) {
      text << "      [[unroll]] for (uint c = 0u; c < 4u; ++c) {\n"
           << "        uint col = col0 + " << 64 * j << "u + 4u * tx + c;\n"
           << "        if (col < N) " << store_row_half(r, j) << "\n      }\n";
    }
    text << "    }\n  }\n";
  }
  return text.str();
}

std::string wide_tile_vec4_rows(int row_halves, int column_halves,
                                const std::function<std::string(int r, int j, const std::string& c)>& value,
                                const std::string& half_columns, const std::string& vec4_store) {
  std::ostringstream text;
  for (int r = 0; r < 4 * row_halves; ++r) {
    text << "  {\n    uint row = row0 + " << 64 * (r / 4) << "u + 4u * ty + " << r % 4 << "u;\n";
    for (int j = 0; j < column_halves; ++j) {
      text << "    { uint col = col0 + " << j << "u * " << half_columns << " + 4u * tx;\n"
           << "      if (row < M && col < N) {\n"
           << "        uint i = batch * M * N + row * N + col;\n        vec4 v;\n"
           << "        [[unroll]] for (uint c = 0u; c < 4u; ++c) v[c] = " << value(r, j, "c") << ";\n"
           << "        " << vec4_store << "\n      }\n    }\n";
    }
    text << "  }\n";
  }
  return text.str();
}

namespace {

// A product rotating its head-split rows into a cache (compile/grouping.h: rotated_cache_store): the
// 64×64 tile (whole heads, col0 a multiple of the head dim) goes through shared memory once so that
// each vec4 meets its pair partners, is rotated at its row's position and stored into the cache.
std::string rotated_tile_rows(const Graph& graph, const compile::Kernel& kernel, const Node& rope, bool vec4_store) {
  const int64_t width = rope.shape.back();
  const Shape& split = graph.node(graph.node(rope.inputs[0]).inputs[0]).shape;  // [A, S, H, D]
  const std::string half = uint_literal(width / 2);
  std::ostringstream text;
  for (int r = 0; r < 4; ++r) {
    text << "  { uint row = row0 + 4u * ty + " << r << "u, col = col0 + 4u * tx;\n    vec4 v = vec4(0.0);\n"
         << "    if (row < M && col < N) {\n      uint i = batch * M * N + row * N + col;\n"
         << "      [[unroll]] for (uint c = 0u; c < 4u; ++c) v[c] = epilogue(i + c, product(i + c, acc_" << r << "_0[c]));\n"
         << "    }\n    rotated_tile[4u * ty + " << r << "u][tx] = v;\n  }\n";
  }
  text << "  barrier();\n";
  for (int r = 0; r < 4; ++r) {
    text << "  { uint row = row0 + 4u * ty + " << r << "u, col = col0 + 4u * tx;\n"
         << "    if (row < M && col < N) {\n      uint i = batch * M * N + row * N + col, d = col % "
         << uint_literal(width) << ";\n"
         << "      uint partner = (4u * tx - d + (d + " << half << ") % " << uint_literal(width) << ") / 4u;\n"
         << "      int position = " << int_scalar_read(graph, kernel, rope, 1) << " + int((i / "
         << uint_literal(split[2] * split[3]) << ") % " << uint_literal(split[1]) << ");\n"
         << "      vec4 v = rotate_pairs(rotated_tile[4u * ty + " << r << "u][tx], rotated_tile[4u * ty + " << r
         << "u][partner], position, d);\n"
         << (vec4_store ? "      store_result4(i, v);\n"
                        : "      [[unroll]] for (uint c = 0u; c < 4u; ++c) store_result(i + c, v[c]);\n")
         << "    }\n  }\n";
  }
  return text.str();
}

}  // namespace

std::string generate_wide_matmul(const Graph& graph, const compile::Kernel& kernel, ExpressionWriter& writer,
                                 size_t a_slot, size_t b_slot, const Node* norm) {
  const Node& mm = graph.node(kernel.anchor);
  const Node& a = graph.node(mm.inputs[0]);
  const bool ta = mm.attrs.transpose_a, tb = mm.attrs.transpose_b;
  const Shape& out = mm.shape;
  const int64_t m = out[out.size() - 2], n = out.back();
  const int64_t k = ta ? a.shape[a.shape.size() - 2] : a.shape.back();
  auto u = [](int64_t v) { return uint_literal(static_cast<uint64_t>(v)); };
  const int halves = static_cast<int>(kernel.register_tile[0] / 4);
  const bool split = kernel.split_k > 1;

  std::ostringstream text;
  std::string header = shader_header_with_loop_attributes(graph, kernel);
  // Four columns a store: straight to result4, or through a head split's store_result4.
  const bool through_function = n % 4 == 0 && stores_vec4_through_function(kernel);
  const bool vec4_stores = stores_vec4(graph, kernel, n) || through_function;
  if (vec4_stores && !through_function) header += vec4_result_declaration(kernel);
  const int32_t rope = compile::rotated_cache_store(graph, kernel);
  if (rope >= 0 && (halves != 1 || n % 4 != 0)) {
    throw Error("codegen: kernel \"" + kernel.label + "\" rotates its rows into a cache only from 64×64 tiles");
  }
  if (rope >= 0) {
    const Node& r = graph.node(rope);
    header += "shared vec4 rotated_tile[64][16];\n" + rope_pairs_function("rotate_pairs", r.shape.back(), r.attrs.theta);
  }
  text << header << math_helpers() << wide_tile_shared(halves)
       << "const uint M = " << u(m) << ", N = " << u(n) << ", K = " << u(k) << ";\n"
       << split_k_declarations(kernel, static_cast<uint64_t>(k)) << "\n"
       << element_reader("load_a", a_slot, kernel.bindings[a_slot].element)
       << element_reader("load_b", b_slot, kernel.bindings[b_slot].element)
       << matmul_epilogue_functions(graph, kernel, writer) << norm_weight_function(norm, writer);

  // Each invocation moves four elements of A's and four of B's slice: consecutive invocations take
  // consecutive addresses of the operand as stored (along k for row-major A, along m when
  // transposed; the same for B).
  const std::string a_coords = ta ? "uint mm = f % TM, kk = f / TM;" : "uint mm = f / BK, kk = f % BK;";
  const std::string b_coords = tb ? "uint nn = f / BK, kk = f % BK;" : "uint nn = f % TN, kk = f / TN;";
  const std::string a_index = ta ? "(k0 + kk) * M + row0 + mm" : "(row0 + mm) * K + k0 + kk";
  const std::string b_index = tb ? "(col0 + nn) * K + k0 + kk" : "(k0 + kk) * N + col0 + nn";
  text << "void main() {\n"
       << matmul_batch_bases(graph, mm, kernel.split_k)
       << "  uint row0 = gl_WorkGroupID.y * TM, col0 = gl_WorkGroupID.x * TN;\n"
       << "  uint lid = gl_LocalInvocationIndex, tx = lid % 16u, ty = lid / 16u;\n"
       << wide_tile_accumulators(halves, norm != nullptr)
       << wide_tile_loop(halves, a_coords + " a_next[e] = (row0 + mm < M && k0 + kk < K) ? load_a(a_base + " + a_index + ") : 0.0;",
                         b_coords + " b_next[e] = (col0 + nn < N && k0 + kk < K) ? load_b(b_base + " + b_index + ")" +
                             (norm != nullptr ? " * norm_weight(k0 + kk)" : "") + " : 0.0;",
                         a_coords + " As[s][kk][mm / 4u][mm % 4u] = a_next[e];",
                         b_coords + " Bs[s][kk][nn / 4u][nn % 4u] = b_next[e];",
                         split ? "k_begin" : "0u", split ? "k_end" : "K", norm != nullptr,
                         wide_tile_fetch_ahead(kernel, static_cast<uint64_t>(k)))
       << (split ? split_k_fixup(kernel, wide_tile_values(halves, norm != nullptr)) : "")
       << (norm != nullptr ? wide_tile_normalize(halves, *norm, static_cast<uint64_t>(k)) : "");
  if (rope >= 0) {
    text << rotated_tile_rows(graph, kernel, graph.node(rope), through_function) << "}\n";
    return text.str();
  }
  if (vec4_stores) {
    text << wide_tile_vec4_rows(halves, halves, [&](int r, int j, const std::string& c) {
      return "epilogue(i + " + c + ", product(i + " + c + ", acc_" + std::to_string(r) + "_" + std::to_string(j) + "[" + c + "]))";
    }, "64u", through_function ? "store_result4(i, v);" : "result4.data[i / 4u] = v;") << "}\n";
    return text.str();
  }
  text << wide_tile_rows(halves,
                         [&](int r, int j) {
                           return "{ uint i = batch * " + u(m * n) + " + row * N + col; " +
                                  store_output(kernel, "i",
                                               "epilogue(i, product(i, acc_" + std::to_string(r) + "_" +
                                                   std::to_string(j) + "[c]))") +
                                  " }";
                         })
       << "}\n";
  return text.str();
}

}  // namespace meganeura::codegen
