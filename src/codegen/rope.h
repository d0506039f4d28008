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

// `vec4 name(vec4 v, vec4 partner, int position, uint d)`: elements d..d+3 of a row (d a multiple
// of 4, all in one half; D a multiple of 8) rotated by the angles of `position`, `partner` holding
// their pair partners (the other half's elements at the same pairs). The same arithmetic as
// rope_element_function, four elements at a time: a product rotating its own tile.
std::string rope_pairs_function(const std::string& name, int64_t D, double theta);

}  // namespace meganeura::codegen
