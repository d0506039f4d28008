// GLSL readers for bindings whose elements may be packed 16-bit weights (compile/weight_storage.h):
// kernels read through them and always see f32 values.
//
//   text << codegen::element_reader("load_b", 1, kernel.bindings[1].element);
//   // float load_b(uint e) — element e of in1, widened from f16/bf16 where packed
//   text << codegen::pair_reader("load_b_pair", 1, kernel.bindings[1].element);
//   // vec2 load_b_pair(uint word) — elements 2·word and 2·word + 1 of a packed binding
//   text << codegen::word_unpacker("unpack_b", kernel.bindings[1].element);
//   // vec2 unpack_b(uint word) — the two values of a word already loaded
#pragma once

#include <cstddef>
#include <string>

#include "compile/plan.h"

namespace meganeura::codegen {

std::string element_reader(const std::string& name, size_t slot, compile::ElementStorage element);

// Only for packed bindings.
std::string pair_reader(const std::string& name, size_t slot, compile::ElementStorage element);

// `vec2 <name>(uint word)`: the two values one packed word holds (packed storage only).
std::string word_unpacker(const std::string& name, compile::ElementStorage element);

}  // namespace meganeura::codegen
