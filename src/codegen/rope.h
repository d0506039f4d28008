// Rotary position embedding as a GLSL function, so a kernel can rotate a row as it loads it: the rope
// kernel itself, attention reading a rope'd q or k, kv_cache_write storing a rope'd update. One
// formula for all of them (Hugging Face's half-split pairing, as the CPU reference computes it).
//
//   std::string fn = codegen::rope_element_function("rope_q", "in0", 64, 10000.0, /*inverse=*/false);
//   // float rope_q(uint row_at, int position, uint d): element d of the row at row_at, rotated by
//   // the angles of `position`.
#pragma once

#include <cstdint>
#include <string>

namespace meganeura::codegen {

// `buffer` names the bound input holding the rows (D elements each, D even); `inverse` rotates by
// the opposite angle (rope_grad).
std::string rope_element_function(const std::string& name, const std::string& buffer, int64_t D, double theta,
                                  bool inverse);

}  // namespace meganeura::codegen
