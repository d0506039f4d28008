// Split-K for the tiled matmul forms (compile::Kernel::split_k): the workgroups of one output tile
// each sum a run of K and store their accumulators as partial sums; the last of the tile's
// workgroups to arrive (glsl.h: arrive_last) adds every split's partials in split order — the same
// order whichever workgroup comes last, so results do not depend on scheduling — and stores
// through the usual epilogue. One kernel, no barrier between the splits and the sum.
#include <sstream>
#include <string>
#include <vector>

#include "codegen/glsl.h"
#include "codegen/matmul_parts.h"

namespace meganeura::codegen {

namespace {

size_t partials_binding(const compile::Kernel& kernel) { return kernel.inputs.size() + 1 + kernel.extra_outputs.size(); }

// The partial sums as vec4s where their range is 16-byte aligned.
bool vec4_partials(const compile::Kernel& kernel) {
  const size_t binding = partials_binding(kernel);
  return binding < kernel.bindings.size() && kernel.bindings[binding].offset % 16 == 0;
}

// The vec4s whose lanes `values` are, in order ("acc_0_0[0]" … "acc_0_0[3]" → "acc_0_0"), or none
// when some four are not one vec4's lanes.
std::vector<std::string> whole_vec4s(const std::vector<std::string>& values) {
  std::vector<std::string> vectors;
  if (values.size() % 4 != 0) return {};
  for (size_t v = 0; v < values.size(); v += 4) {
    const std::string& first = values[v];
    if (first.size() < 4 || first.compare(first.size() - 3, 3, "[0]") != 0) return {};
    const std::string name = first.substr(0, first.size() - 3);
    for (size_t lane = 1; lane < 4; ++lane) {
      if (values[v + lane] != name + "[" + std::to_string(lane) + "]") return {};
    }
    vectors.push_back(name);
  }
  return vectors;
}

}  // namespace

std::string split_k_declarations(const compile::Kernel& kernel, uint64_t k) {
  if (kernel.split_k <= 1) return "";
  std::ostringstream text;
  text << "const uint SPLIT = " << kernel.split_k << "u;  // workgroups per output tile\n"
       << "const uint K_SPAN = " << uint_literal(compile::split_k_span(k, kernel.split_k, compile::split_k_granularity(kernel))) << ";  // K terms per split\n"
       << arrival_declarations(kernel);
  if (vec4_partials(kernel)) {
    text << "layout(std430, set = 0, binding = " << partials_binding(kernel)
         << ") coherent buffer Partials4 { vec4 data[]; } partials4;\n";
  }
  return text.str();
}

std::string split_k_fixup(const compile::Kernel& kernel, const std::vector<std::string>& values) {
  const uint32_t invocations = kernel.local_size[0] * kernel.local_size[1] * kernel.local_size[2];
  // Whole vec4s move as one 16-byte store and load each (a quarter of the instructions); the sum
  // keeps its split order, lane by lane.
  const std::vector<std::string> vectors = vec4_partials(kernel) ? whole_vec4s(values) : std::vector<std::string>{};
  const bool wide = !vectors.empty();
  const std::vector<std::string>& parts = wide ? vectors : values;
  const std::string buffer = wide ? "partials4" : "partials", zero = wide ? "vec4(0.0)" : "0.0";
  const std::string span = uint_literal(static_cast<uint64_t>(parts.size()) * invocations);
  std::ostringstream text;
  text << "  {\n"
       << "    uint tile_index = (batch * gl_NumWorkGroups.y + gl_WorkGroupID.y) * gl_NumWorkGroups.x + gl_WorkGroupID.x;\n"
       << "    uint first = tile_index * SPLIT * " << span << " + lid;\n"
       << "    uint mine = first + split * " << span << ";\n";
  for (size_t v = 0; v < parts.size(); ++v) {
    text << "    " << buffer << ".data[mine + " << uint_literal(v * invocations) << "] = " << parts[v] << ";\n";
  }
  text << "    if (!arrive_last(tile_index, SPLIT)) return;\n";
  for (const std::string& part : parts) text << "    " << part << " = " << zero << ";\n";
  // Kept a loop: unrolled (or two splits a step) the sums made SmolLM2's prefill 0.6 ms slower on
  // an H100, and [[dont_unroll]] made it 0.06 ms faster than leaving it to the driver.
  text << "    [[dont_unroll]] for (uint s = 0u; s < SPLIT; ++s) {\n"
       << "      uint at = first + s * " << span << ";\n";
  for (size_t v = 0; v < parts.size(); ++v) {
    text << "      " << parts[v] << " += " << buffer << ".data[at + " << uint_literal(v * invocations) << "];\n";
  }
  text << "    }\n"
       << "  }\n";
  return text.str();
}

}  // namespace meganeura::codegen
