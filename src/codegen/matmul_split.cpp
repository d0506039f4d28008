// Split-K for the tiled matmul forms (compile::Kernel::split_k): the workgroups of one output tile
// each sum a run of K, store their accumulators as partial sums and count themselves in the tile's
// arrival counter; the last to arrive adds every split's partials in split order — the same order
// whichever workgroup comes last, so results do not depend on scheduling — resets the counter for
// the next dispatch and stores through the usual epilogue. One kernel, no barrier: the partials
// and counters are `coherent` (the writes of other workgroups bypass non-coherent caches) and
// memoryBarrierBuffer() orders the partials before the arrival that publishes them.
#include <sstream>

#include "codegen/glsl.h"
#include "codegen/matmul_parts.h"

namespace meganeura::codegen {

std::string split_k_declarations(const compile::Kernel& kernel, uint64_t k) {
  if (kernel.split_k <= 1) return "";
  const size_t partials = kernel.inputs.size() + 1 + kernel.extra_outputs.size();
  std::ostringstream text;
  text << "const uint SPLIT = " << kernel.split_k << "u;  // workgroups per output tile\n"
       << "const uint K_SPAN = " << uint_literal(compile::split_k_span(k, kernel.split_k)) << ";  // K terms per split\n"
       << "layout(std430, set = 0, binding = " << partials << ") coherent buffer Partials { float data[]; } partials;\n"
       << "layout(std430, set = 0, binding = " << partials + 1
       << ") coherent buffer Arrivals { uint data[]; } arrivals;\n"
       << "shared uint arrival;\n";
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
  text << "    memoryBarrierBuffer();\n"
       << "    barrier();\n"
       << "    if (lid == 0u) arrival = atomicAdd(arrivals.data[tile_index], 1u);\n"
       << "    barrier();\n"
       << "    if (arrival != SPLIT - 1u) return;\n"
       << "    memoryBarrierBuffer();\n"
       << "    if (lid == 0u) arrivals.data[tile_index] = 0u;\n";
  for (const std::string& value : values) text << "    " << value << " = 0.0;\n";
  text << "    for (uint s = 0u; s < SPLIT; ++s) {\n"
       << "      uint at = first + s * " << span << ";\n";
  for (size_t v = 0; v < values.size(); ++v) {
    text << "      " << values[v] << " += partials.data[at + " << uint_literal(v * invocations) << "];\n";
  }
  text << "    }\n"
       << "  }\n";
  return text.str();
}

}  // namespace meganeura::codegen
