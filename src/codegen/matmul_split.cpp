// Split-K for the tiled matmul forms (compile::Kernel::split_k): the workgroups of one output tile
// each sum a run of K and store their accumulators as partial sums; the last of the tile's
// workgroups to arrive (glsl.h: arrive_last) adds every split's partials in split order — the same
// order whichever workgroup comes last, so results do not depend on scheduling — and stores
// through the usual epilogue. One kernel, no barrier between the splits and the sum.
#include <sstream>

#include "codegen/glsl.h"
#include "codegen/matmul_parts.h"

namespace meganeura::codegen {

std::string split_k_declarations(const compile::Kernel& kernel, uint64_t k) {
  if (kernel.split_k <= 1) return "";
  std::ostringstream text;
  text << "const uint SPLIT = " << kernel.split_k << "u;  // workgroups per output tile\n"
       << "const uint K_SPAN = " << uint_literal(compile::split_k_span(k, kernel.split_k, compile::split_k_granularity(kernel))) << ";  // K terms per split\n"
       << arrival_declarations(kernel);
  return text.str();
}

std::string split_k_fixup(const compile::Kernel& kernel, const std::vector<std::string>& values) {
  const uint32_t invocations = kernel.local_size[0] * kernel.local_size[1] * kernel.local_size[2];
  const std::string span = uint_literal(static_cast<uint64_t>(values.size()) * invocations);
  std::ostringstream text;
  text << "  {\n"
       << "    uint tile_index = (batch * gl_NumWorkGroups.y + gl_WorkGroupID.y) * gl_NumWorkGroups.x + gl_WorkGroupID.x;\n"
       << "    uint first = tile_index * SPLIT * " << span << " + lid;\n"
       << "    uint mine = first + split * " << span << ";\n";
  for (size_t v = 0; v < values.size(); ++v) {
    text << "    partials.data[mine + " << uint_literal(v * invocations) << "] = " << values[v] << ";\n";
  }
  text << "    if (!arrive_last(tile_index, SPLIT)) return;\n";
  for (const std::string& value : values) text << "    " << value << " = 0.0;\n";
  // Kept a loop: unrolled (or two splits a step) the sums made SmolLM2's prefill 0.6 ms slower on
  // an H100, and [[dont_unroll]] made it 0.06 ms faster than leaving it to the driver.
  text << "    [[dont_unroll]] for (uint s = 0u; s < SPLIT; ++s) {\n"
       << "      uint at = first + s * " << span << ";\n";
  for (size_t v = 0; v < values.size(); ++v) {
    text << "      " << values[v] << " += partials.data[at + " << uint_literal(v * invocations) << "];\n";
  }
  text << "    }\n"
       << "  }\n";
  return text.str();
}

}  // namespace meganeura::codegen
