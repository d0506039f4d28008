#include "codegen/codegen.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "codegen/archetypes.h"
#include "codegen/expression.h"
#include "codegen/glsl.h"
#include "meganeura/error.h"

namespace meganeura::codegen {

bool supports_store_function(const Graph& graph, const compile::Kernel& kernel) {
  if (graph.node(kernel.root).dtype != DType::f32 || kernel.refresh) return false;
  switch (kernel.archetype) {
    case compile::Archetype::matmul: return true;
    case compile::Archetype::reduction: {
      const Op op = graph.node(kernel.anchor).op;
      return op == Op::sum || op == Op::mean || op == Op::sum_all || op == Op::mean_all;
    }
    default: return false;
  }
}

std::string generate(const Graph& graph, const compile::Kernel& kernel, const compile::DeviceCaps&) {
  if (!kernel.store_function.empty() && !supports_store_function(graph, kernel)) {
    throw Error("codegen: kernel \"" + kernel.label + "\" cannot store through a store function; check "
                "codegen::supports_store_function first");
  }
  // Device caps reach the shader through the kernel's workgroup and tile sizes, chosen by compile.
  switch (kernel.archetype) {
    case compile::Archetype::pointwise: return generate_pointwise(graph, kernel);
    case compile::Archetype::gather: return generate_gather(graph, kernel);
    case compile::Archetype::reduction: return generate_reduction(graph, kernel);
    case compile::Archetype::matmul: return generate_matmul(graph, kernel);
    case compile::Archetype::attention: return generate_attention(graph, kernel);
    case compile::Archetype::classifier: return generate_classifier(graph, kernel);
    case compile::Archetype::conv: {
      const Op op = graph.node(kernel.root).op;
      const bool gemm = op == Op::conv2d || op == Op::conv2d_grad_input || op == Op::conv2d_grad_weight;
      return gemm ? generate_conv(graph, kernel) : generate_pool(graph, kernel);
    }
    case compile::Archetype::nn: {
      const Op op = graph.node(kernel.anchor).op;
      if (op == Op::top_k_top_p_mask) return generate_top_k_top_p_mask(graph, kernel);
      return op == Op::group_norm || op == Op::group_norm_grad ? generate_group_norm(graph, kernel)
                                                                : generate_rope(graph, kernel);
    }
  }
  throw Error("codegen: unknown archetype");
}

std::string generate_pointwise(const Graph& graph, const compile::Kernel& kernel) {
  const Node& root = graph.node(kernel.root);
  ExpressionWriter writer(graph, kernel);
  std::ostringstream out;
  out << shader_header(graph, kernel) << math_helpers()
      << writer.function("value", kernel.root, root.shape) << "\n"
      << "void main() {\n"
      << "  uint i = " << linear_invocation_index() << ";\n"
      << "  if (i >= " << uint_literal(num_elements(root.shape)) << ") return;\n"
      << "  result.data[i] = " << element_type(root.dtype) << "(value(i));\n"
      << "}\n";
  return out.str();
}

std::string dump_shader(const std::string& source, const std::string& label) {
  const char* folder = std::getenv("MEGANEURA_DUMP_SHADERS");
  if (folder == nullptr || *folder == '\0') return {};
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  std::ostringstream name;
  name << std::hex << std::hash<std::string>{}(source) << ".comp";
  const std::filesystem::path path = std::filesystem::path(folder) / name.str();
  std::ofstream file(path);
  if (!file) throw Error("MEGANEURA_DUMP_SHADERS: cannot write " + path.string() + "; check the folder is writable");
  file << "// " << label << "\n" << source;
  return path.string();
}

}  // namespace meganeura::codegen
