#include "codegen/glsl.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "meganeura/error.h"

namespace meganeura::codegen {

std::string float_literal(double value) {
  if (std::isnan(value)) return "uintBitsToFloat(0x7fc00000u)";
  if (std::isinf(value)) return value > 0 ? "uintBitsToFloat(0x7f800000u)" : "uintBitsToFloat(0xff800000u)";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.9g", static_cast<double>(static_cast<float>(value)));
  std::string text = buffer;
  if (text.find_first_of(".eE") == std::string::npos) text += ".0";
  return text;
}

std::string uint_literal(uint64_t value) { return std::to_string(value) + "u"; }

std::vector<int64_t> strides_of(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d) strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}

std::string broadcast_index(const std::string& index, const Shape& to, const Shape& from) {
  if (num_elements(from) == 1) return "0u";
  if (to == from) return index;
  const size_t offset = to.size() - from.size();
  const auto to_strides = strides_of(to);
  const auto from_strides = strides_of(from);
  std::string sum;
  for (size_t d = 0; d < from.size(); ++d) {
    if (from[d] == 1) continue;
    std::string coord = "(" + index + " / " + uint_literal(to_strides[d + offset]) + ")";
    if (d + offset > 0) coord = "(" + coord + " % " + uint_literal(to[d + offset]) + ")";
    if (from_strides[d] != 1) coord += " * " + uint_literal(from_strides[d]);
    sum += (sum.empty() ? "" : " + ") + coord;
  }
  return "(" + sum + ")";
}

const char* element_type(DType dtype) { return dtype == DType::i32 ? "int" : "float"; }

std::string shader_header(const Graph& graph, const compile::Kernel& kernel) {
  std::ostringstream out;
  out << "#version 450\n"
      << "layout(local_size_x = " << kernel.local_size[0] << ", local_size_y = " << kernel.local_size[1]
      << ", local_size_z = " << kernel.local_size[2] << ") in;\n\n";
  for (size_t i = 0; i < kernel.inputs.size(); ++i) {
    // Weights stored as 16-bit come as uints holding two values each (codegen/packed_weights.h).
    const bool packed = i < kernel.bindings.size() && kernel.bindings[i].element != compile::ElementStorage::bits32;
    out << "layout(std430, set = 0, binding = " << i << ") readonly buffer Input" << i << " { "
        << (packed ? "uint" : element_type(graph.node(kernel.inputs[i]).dtype)) << " data[]; } in" << i << ";\n";
  }
  // A store function updates buffers of its own beside the result; `restrict` lets the compiler
  // issue an output's loads before the previous outputs' stores have gone out.
  out << "layout(std430, set = 0, binding = " << kernel.inputs.size() << ") "
      << (kernel.store_function.empty() ? "" : "restrict ") << "writeonly buffer Result { "
      << element_type(graph.node(kernel.root).dtype) << " data[]; } result;\n";
  // Further outputs: result1, result2, … (compile::Kernel::extra_outputs).
  for (size_t e = 0; e < kernel.extra_outputs.size(); ++e) {
    out << "layout(std430, set = 0, binding = " << kernel.inputs.size() + 1 + e << ") writeonly buffer Result"
        << e + 1 << " { " << element_type(graph.node(kernel.extra_outputs[e]).dtype) << " data[]; } result" << e + 1
        << ";\n";
  }
  out << "\n" << kernel.store_function;
  return out.str();
}

bool stores_vec4(const Graph& graph, const compile::Kernel& kernel, int64_t columns) {
  const size_t root_binding = kernel.inputs.size();
  return kernel.store_function.empty() && graph.node(kernel.root).dtype == DType::f32 && columns % 4 == 0 &&
         root_binding < kernel.bindings.size() && kernel.bindings[root_binding].offset % 16 == 0;
}

bool stores_vec4_through_function(const compile::Kernel& kernel) {
  const size_t root_binding = kernel.inputs.size();
  return kernel.store_function.find("void store_result4(") != std::string::npos &&
         root_binding < kernel.bindings.size() && kernel.bindings[root_binding].offset % 16 == 0;
}

std::string vec4_input_declaration(size_t slot) {
  const std::string n = std::to_string(slot);
  return "layout(std430, set = 0, binding = " + n + ") readonly buffer Input" + n + "Vec4 { vec4 data[]; } in" + n + "v4;\n";
}

bool vec4_input_readable(const compile::Kernel& kernel, size_t slot) {
  return slot < kernel.bindings.size() && kernel.bindings[slot].element == compile::ElementStorage::bits32 &&
         kernel.bindings[slot].offset % 16 == 0;
}

std::string vec4_result_declaration(const compile::Kernel& kernel) {
  return "layout(std430, set = 0, binding = " + std::to_string(kernel.inputs.size()) +
         ") writeonly buffer Result4 { vec4 data[]; } result4;\n";
}

std::string shader_header_with_loop_attributes(const Graph& graph, const compile::Kernel& kernel) {
  std::string header = shader_header(graph, kernel);
  header.insert(header.find('\n', header.find("#version")) + 1, "#extension GL_EXT_control_flow_attributes : require\n");
  return header;
}

std::string store_output(const compile::Kernel& kernel, const std::string& index, const std::string& value) {
  if (kernel.store_function.empty()) return "result.data[" + index + "] = " + value + ";";
  return "store_result(" + index + ", " + value + ");";
}

std::string output_binding(const compile::Kernel& kernel, int32_t id) {
  if (id == kernel.root) return "result";
  const auto it = std::find(kernel.extra_outputs.begin(), kernel.extra_outputs.end(), id);
  if (it == kernel.extra_outputs.end()) {
    throw Error("codegen: kernel \"" + kernel.label + "\" does not store node " + std::to_string(id));
  }
  return "result" + std::to_string(it - kernel.extra_outputs.begin() + 1);
}

std::string arrival_declarations(const compile::Kernel& kernel) {
  const size_t partials = kernel.inputs.size() + 1 + kernel.extra_outputs.size();
  std::ostringstream out;
  out << "layout(std430, set = 0, binding = " << partials << ") coherent buffer Partials { float data[]; } partials;\n"
      << "layout(std430, set = 0, binding = " << partials + 1 << ") coherent buffer Arrivals { uint data[]; } arrivals;\n"
      << "shared uint arrival;\n"
      // memoryBarrierBuffer() orders each invocation's partials before the arrival that publishes
      // them, and the last workgroup's reads after it; `coherent` keeps the reads of other
      // workgroups' stores out of non-coherent caches.
      << "bool arrive_last(uint counter, uint expected) {\n"
      << "  memoryBarrierBuffer();\n"
      << "  barrier();\n"
      << "  if (gl_LocalInvocationIndex == 0u) arrival = atomicAdd(arrivals.data[counter], 1u);\n"
      << "  barrier();\n"
      << "  if (arrival != expected - 1u) return false;\n"
      << "  memoryBarrierBuffer();\n"
      << "  if (gl_LocalInvocationIndex == 0u) arrivals.data[counter] = 0u;\n"
      << "  return true;\n"
      << "}\n";
  return out.str();
}

const char* math_helpers() {
  return R"(// erf with absolute error below 1.5e-7 (Abramowitz and Stegun 7.1.26).
float erf_approx(float x) {
  float t = 1.0 / (1.0 + 0.3275911 * abs(x));
  float y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-x * x);
  return x < 0.0 ? -y : y;
}
// tanh that never overflows for large arguments.
float stable_tanh(float x) {
  float e = exp(-2.0 * abs(x));
  float t = (1.0 - e) / (1.0 + e);
  return x < 0.0 ? -t : t;
}
float stable_sigmoid(float x) {
  if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
  float e = exp(x);
  return e / (1.0 + e);
}
uint mix32(uint x) {
  x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;
  return x;
}
float round_to_f16(float x) { return unpackHalf2x16(packHalf2x16(vec2(x, 0.0))).x; }
float round_to_bf16(float x) {
  uint u = floatBitsToUint(x);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  return uintBitsToFloat(u);
}

)";
}

const char* linear_workgroup_index() { return "(gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x)"; }

const char* linear_invocation_index() {
  return "(gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x)";
}

}  // namespace meganeura::codegen
