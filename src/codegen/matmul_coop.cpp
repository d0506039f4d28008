// Cooperative-matrix matmul (GL_NV_cooperative_matrix): a workgroup of 8 subgroups computes a
// 128×128 output tile; each subgroup owns 64×32 of it as 4×2 accumulators of 16×16 f32. K advances
// in slices of 32: every invocation fetches its share of the next slice of A and B from global
// memory into registers while the subgroups multiply the current slice out of shared memory, then
// stores it as f16 (converting f32 operands) into the other of two shared-memory stages (one barrier
// per slice). Staged tiles keep the global layout, so a transposed operand's fragments load
// column-major. Staged rows are padded by 8 f16 against bank conflicts and move as uvec4 (8 f16), so
// every offset and stride the matrix loads see is a multiple of 16 bytes. Ragged edges load zeros; output
// tiles that are whole and need no epilogue are stored directly, the rest go through a 16×16 tile
// of shared memory per subgroup so each element gets the epilogue and a bounds check.
#include <sstream>

#include "codegen/glsl.h"
#include "codegen/matmul_parts.h"
#include "compile/cooperative_matmul.h"
#include "meganeura/error.h"

namespace meganeura::codegen {

namespace {

using Tiles = compile::CooperativeMatmulTiles;

std::string u(int64_t v) { return uint_literal(static_cast<uint64_t>(v)); }

// One operand as it is staged: a tile of `outer` rows of `inner` contiguous elements, read from a
// global [outer_len][inner_len] matrix (per batch) that starts at element `base`.
struct Operand {
  std::string name;        // "a" or "b"
  size_t slot = 0;
  bool packed = false;     // f16 pairs in uints (weights stored as f16), else 32-bit floats
  int64_t outer_len = 0, inner_len = 0;
  uint32_t outer = 0, inner = 0;
  std::string outer_origin, inner_origin;  // GLSL: the tile's first row and column in the matrix
  bool column_major = false;  // the staged tile holds the operand's transpose
  uint32_t stride() const { return (inner + Tiles::pad) / 8; }  // uvec4 per staged row
  uint32_t words() const { return outer * stride(); }           // uvec4 per stage
  uint32_t octets_per_invocation() const { return outer * inner / 8 / Tiles::invocations; }
};

// Declarations and fetch/pack functions of one operand. fetch_<x>(o, i) reads the 8 elements at
// (o, i..i+7) in the operand's raw form (two vec4 of f32, or one uvec4 of packed f16); pack_<x>
// turns that into 8 f16 in a uvec4.
std::string operand_functions(const Operand& x) {
  const std::string in = "in" + std::to_string(x.slot);
  const std::string wide = "wide_" + x.name;
  std::ostringstream text;
  const std::string in_range = "o < " + u(x.outer_len) + " && i < " + u(x.inner_len);
  const std::string element = x.name + "_base + o * " + u(x.inner_len) + " + i";
  if (!x.packed) {
    const bool vectors = x.inner_len % 4 == 0;
    if (vectors) {
      text << "layout(std430, set = 0, binding = " << x.slot << ") readonly buffer Wide" << x.slot << " { vec4 data[]; } "
           << wide << ";\n"
           << "vec4 fetch4_" << x.name << "(uint o, uint i) { return (" << in_range << ") ? " << wide << ".data[("
           << element << ") >> 2u] : vec4(0.0); }\n";
    } else {
      text << "float fetch1_" << x.name << "(uint o, uint i) { return (" << in_range << ") ? float(" << in << ".data["
           << element << "]) : 0.0; }\n"
           << "vec4 fetch4_" << x.name << "(uint o, uint i) { return vec4(fetch1_" << x.name << "(o, i), fetch1_" << x.name
           << "(o, i + 1u), fetch1_" << x.name << "(o, i + 2u), fetch1_" << x.name << "(o, i + 3u)); }\n";
    }
    text << "uvec4 pack_" << x.name << "(vec4 lo, vec4 hi) {\n"
         << "  return uvec4(packHalf2x16(lo.xy), packHalf2x16(lo.zw), packHalf2x16(hi.xy), packHalf2x16(hi.zw));\n}\n";
    return text.str();
  }
  if (x.inner_len % 8 == 0) {
    text << "layout(std430, set = 0, binding = " << x.slot << ") readonly buffer Wide" << x.slot << " { uvec4 data[]; } "
         << wide << ";\n"
         << "uvec4 fetch8_" << x.name << "(uint o, uint i) { return (" << in_range << ") ? " << wide << ".data[("
         << element << ") >> 3u] : uvec4(0u); }\n";
  } else {
    text << "uint half_" << x.name << "(uint o, uint i) {\n"
         << "  if (!(" << in_range << ")) return 0u;\n"
         << "  uint e = " << element << ";\n"
         << "  return (" << in << ".data[e >> 1u] >> ((e & 1u) * 16u)) & 0xffffu;\n}\n"
         << "uint pair_" << x.name << "(uint o, uint i) { return half_" << x.name << "(o, i) | (half_" << x.name
         << "(o, i + 1u) << 16u); }\n"
         << "uvec4 fetch8_" << x.name << "(uint o, uint i) { return uvec4(pair_" << x.name << "(o, i), pair_" << x.name
         << "(o, i + 2u), pair_" << x.name << "(o, i + 4u), pair_" << x.name << "(o, i + 6u)); }\n";
  }
  return text.str();
}

// Where invocation `lid`'s j-th octet of a tile sits: row o, column c of the staged tile.
std::string octet_position(const Operand& x, uint32_t j) {
  const uint32_t per_row = x.inner / 8;
  return "uint q = lid + " + u(j * Tiles::invocations) + "; uint o = q / " + u(per_row) + ", c = (q % " + u(per_row) +
         ") * 8u;";
}

// Fetches the slice starting at K offset `k0` (a GLSL expression) into registers.
std::string fetch_slice(const Operand& x, const std::string& k0) {
  std::ostringstream text;
  const std::string outer_origin = x.outer_origin == "K0" ? k0 : x.outer_origin;
  const std::string inner_origin = x.inner_origin == "K0" ? k0 : x.inner_origin;
  for (uint32_t j = 0; j < x.octets_per_invocation(); ++j) {
    text << "    { " << octet_position(x, j) << " uint go = " << outer_origin << " + o, gi = " << inner_origin << " + c; ";
    if (x.packed) {
      text << "raw_" << x.name << "[" << j << "] = fetch8_" << x.name << "(go, gi); }\n";
    } else {
      text << "lo_" << x.name << "[" << j << "] = fetch4_" << x.name << "(go, gi); hi_" << x.name << "[" << j
           << "] = fetch4_" << x.name << "(go, gi + 4u); }\n";
    }
  }
  return text.str();
}

// Stores the registers into stage `stage` (a GLSL expression) of the shared tile.
std::string store_slice(const Operand& x, const std::string& stage) {
  std::ostringstream text;
  for (uint32_t j = 0; j < x.octets_per_invocation(); ++j) {
    text << "    { " << octet_position(x, j) << " tile_" << x.name << "[" << stage << " * " << u(x.words()) << " + o * "
         << u(x.stride()) << " + c / 8u] = ";
    if (x.packed) {
      text << "raw_" << x.name << "[" << j << "]; }\n";
    } else {
      text << "pack_" << x.name << "(lo_" << x.name << "[" << j << "], hi_" << x.name << "[" << j << "]); }\n";
    }
  }
  return text.str();
}

}  // namespace

std::string generate_cooperative_matmul(const Graph& graph, const compile::Kernel& kernel, ExpressionWriter& writer,
                                        size_t a_slot, size_t b_slot) {
  const Node& mm = graph.node(kernel.anchor);
  const Shape& out = mm.shape;
  const Shape& a_shape = graph.node(mm.inputs[0]).shape;
  const Shape& b_shape = graph.node(mm.inputs[1]).shape;
  const bool ta = mm.attrs.transpose_a, tb = mm.attrs.transpose_b;
  const int64_t m = out[out.size() - 2], n = out.back();
  const int64_t k = ta ? a_shape[a_shape.size() - 2] : a_shape.back();
  const Shape out_batch(out.begin(), out.end() - 2);
  const Shape a_batch(a_shape.begin(), a_shape.end() - 2);
  const Shape b_batch(b_shape.begin(), b_shape.end() - 2);
  if (kernel.local_size[0] != Tiles::invocations || kernel.register_tile[0] != Tiles::rows ||
      kernel.register_tile[1] != Tiles::columns) {
    throw Error("codegen: the cooperative-matrix matmul needs the workgroup compile/cooperative_matmul.h sizes");
  }
  for (size_t slot : {a_slot, b_slot}) {
    if (kernel.bindings[slot].element == compile::ElementStorage::packed_bf16) {
      throw Error("codegen: the cooperative-matrix matmul reads f16 operands, not bf16 weights");
    }
  }
  const bool a_packed = kernel.bindings[a_slot].element == compile::ElementStorage::packed_f16;
  const bool b_packed = kernel.bindings[b_slot].element == compile::ElementStorage::packed_f16;

  // Staged layouts follow the global ones, so every fetch reads contiguous elements; a transposed
  // operand is loaded into the matrix column-major.
  const Operand a = ta ? Operand{"a", a_slot, a_packed, k, m, Tiles::depth, Tiles::rows, "K0", "row0", true}
                       : Operand{"a", a_slot, a_packed, m, k, Tiles::rows, Tiles::depth, "row0", "K0", false};
  const Operand b = tb ? Operand{"b", b_slot, b_packed, n, k, Tiles::columns, Tiles::depth, "col0", "K0", true}
                       : Operand{"b", b_slot, b_packed, k, n, Tiles::depth, Tiles::columns, "K0", "col0", false};
  constexpr uint32_t subgroups = Tiles::invocations / 32;
  constexpr uint32_t sub_rows = Tiles::rows / Tiles::subgroup_rows;        // 64
  constexpr uint32_t sub_cols = Tiles::columns / Tiles::subgroup_columns;  // 32
  constexpr uint32_t frag_rows = sub_rows / 16, frag_cols = sub_cols / 16;
  // A plain product (nothing fused, an f32 result) stores whole 16×16 tiles straight to memory.
  const bool direct = kernel.nodes.size() == 1 && mm.op == Op::matmul && n % 4 == 0 && kernel.store_function.empty();

  std::string header = shader_header(graph, kernel);
  header.insert(header.find('\n') + 1,
                "#extension GL_NV_cooperative_matrix : require\n"
                "#extension GL_KHR_memory_scope_semantics : require\n"
                "#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require\n"
                "#extension GL_KHR_shader_subgroup_basic : require\n");
  std::ostringstream text;
  text << header << math_helpers() << "const uint M = " << u(m) << ", N = " << u(n) << ", K = " << u(k) << ";\n"
       << "uint a_base, b_base;\n"
       << operand_functions(a) << operand_functions(b)
       << "shared uvec4 tile_a[" << 2 * a.words() << "];  // two stages of " << a.outer << "x" << a.inner << " f16\n"
       << "shared uvec4 tile_b[" << 2 * b.words() << "];\n"
       << "shared float scratch[" << subgroups * 256 << "];  // a 16x16 f32 tile per subgroup\n"
       << matmul_epilogue_functions(graph, kernel, writer)
       << "#define F16_TILE fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>\n"
       << "#define F32_TILE fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>\n\n"
       << "void main() {\n"
       << "  uint batch = gl_WorkGroupID.z;\n"
       << "  a_base = " << broadcast_index("batch", out_batch, a_batch) << " * " << u(m * k) << ";\n"
       << "  b_base = " << broadcast_index("batch", out_batch, b_batch) << " * " << u(k * n) << ";\n"
       << "  uint row0 = gl_WorkGroupID.y * " << u(Tiles::rows) << ", col0 = gl_WorkGroupID.x * " << u(Tiles::columns)
       << ";\n"
       << "  uint lid = gl_LocalInvocationID.x;\n"
       << "  uint sub_row = gl_SubgroupID / " << u(Tiles::subgroup_columns) << ", sub_col = gl_SubgroupID % "
       << u(Tiles::subgroup_columns) << ";\n"
       ;
  // Every loop over fragments is unrolled here, so the accumulators are plain variables the driver
  // keeps in registers.
  auto acc = [](uint32_t r, uint32_t c) { return "acc_" + std::to_string(r) + "_" + std::to_string(c); };
  for (uint32_t r = 0; r < frag_rows; ++r)
    for (uint32_t c = 0; c < frag_cols; ++c) text << "  F32_TILE " << acc(r, c) << " = F32_TILE(0.0);\n";
  for (const Operand* x : {&a, &b}) {
    if (x->packed) {
      text << "  uvec4 raw_" << x->name << "[" << x->octets_per_invocation() << "];\n";
    } else {
      text << "  vec4 lo_" << x->name << "[" << x->octets_per_invocation() << "], hi_" << x->name << "["
           << x->octets_per_invocation() << "];\n";
    }
  }
  text << "  uint a_row0 = sub_row * " << u(sub_rows) << ", b_col0 = sub_col * " << u(sub_cols) << ";\n";
  const uint32_t slices = static_cast<uint32_t>((k + Tiles::depth - 1) / Tiles::depth);
  text << fetch_slice(a, "0u") << fetch_slice(b, "0u") << store_slice(a, "0u") << store_slice(b, "0u")
       << "  barrier();\n"
       << "  for (uint s = 0u; s < " << u(slices) << "; ++s) {\n"
       << "    uint stage = s & 1u;\n"
       << "    bool more = s + 1u < " << u(slices) << ";\n"
       << "    if (more) {\n"
       << "      uint K0 = (s + 1u) * " << u(Tiles::depth) << ";\n"
       << fetch_slice(a, "K0") << fetch_slice(b, "K0") << "    }\n"
       << "    uint a_stage = stage * " << u(a.words()) << ", b_stage = stage * " << u(b.words()) << ";\n";
  for (uint32_t kk = 0; kk < Tiles::depth; kk += 16) {
    text << "    {\n";
    for (uint32_t r = 0; r < frag_rows; ++r) {
      const std::string mr = "(a_row0 + " + u(r * 16) + ")";
      text << "      F16_TILE fa" << r << ";\n"
           << "      coopMatLoadNV(fa" << r << ", tile_a, a_stage + "
           << (ta ? u(kk * a.stride()) + " + " + mr + " / 8u" : mr + " * " + u(a.stride()) + " + " + u(kk / 8)) << ", "
           << u(a.stride()) << ", " << (ta ? "true" : "false") << ");\n";
    }
    for (uint32_t c = 0; c < frag_cols; ++c) {
      const std::string nc = "(b_col0 + " + u(c * 16) + ")";
      text << "      F16_TILE fb" << c << ";\n"
           << "      coopMatLoadNV(fb" << c << ", tile_b, b_stage + "
           << (tb ? nc + " * " + u(b.stride()) + " + " + u(kk / 8) : u(kk * b.stride()) + " + " + nc + " / 8u") << ", "
           << u(b.stride()) << ", " << (tb ? "true" : "false") << ");\n";
    }
    for (uint32_t r = 0; r < frag_rows; ++r)
      for (uint32_t c = 0; c < frag_cols; ++c)
        text << "      " << acc(r, c) << " = coopMatMulAddNV(fa" << r << ", fb" << c << ", " << acc(r, c) << ");\n";
    text << "    }\n";
  }
  text << "    if (more) {\n"
       << store_slice(a, "(stage ^ 1u)") << store_slice(b, "(stage ^ 1u)") << "    }\n"
       << "    barrier();\n"
       << "  }\n"
       << "  uint scratch_base = gl_SubgroupID * 256u;\n"
       << "  uint out_base = batch * " << u(m * n) << ";\n";
  for (uint32_t r = 0; r < frag_rows; ++r) {
    for (uint32_t c = 0; c < frag_cols; ++c) {
      text << "  {\n"
           << "    uint tile_row = row0 + a_row0 + " << u(r * 16) << ", tile_col = col0 + b_col0 + " << u(c * 16) << ";\n";
      if (direct) {
        text << "    if (tile_row + 16u <= M && tile_col + 16u <= N) {\n"
             << "      coopMatStoreNV(" << acc(r, c) << ", result.data, out_base + tile_row * N + tile_col, N, false);\n"
             << "    } else {\n";
      } else {
        text << "    {\n";
      }
      text << "      coopMatStoreNV(" << acc(r, c) << ", scratch, scratch_base, 16u, false);\n"
           << "      subgroupMemoryBarrierShared();\n"
           << "      subgroupBarrier();\n"
           << "      for (uint e = gl_SubgroupInvocationID; e < 256u; e += gl_SubgroupSize) {\n"
           << "        uint row = tile_row + e / 16u, col = tile_col + e % 16u;\n"
           << "        if (row < M && col < N) {\n"
           << "          uint i = out_base + row * N + col;\n"
           << "          " << store_output(kernel, "i", "epilogue(i, product(i, scratch[scratch_base + e]))") << "\n"
           << "        }\n"
           << "      }\n"
           << "      subgroupBarrier();\n"
           << "    }\n"
           << "  }\n";
    }
  }
  text << "}\n";
  return text.str();
}

}  // namespace meganeura::codegen
