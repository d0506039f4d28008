#include "codegen/packed_weights.h"

#include "meganeura/error.h"

namespace meganeura::codegen {

std::string element_reader(const std::string& name, size_t slot, compile::ElementStorage element) {
  const std::string buffer = "in" + std::to_string(slot) + ".data";
  switch (element) {
    case compile::ElementStorage::bits32:
      return "float " + name + "(uint e) { return float(" + buffer + "[e]); }\n";
    case compile::ElementStorage::packed_f16:
      return "float " + name + "(uint e) { return unpackHalf2x16(" + buffer + "[e >> 1u])[e & 1u]; }\n";
    case compile::ElementStorage::packed_bf16:
      // A bf16 value is the high half of the f32 with the same bits.
      return "float " + name + "(uint e) {\n  uint word = " + buffer +
             "[e >> 1u];\n  return uintBitsToFloat((e & 1u) == 0u ? word << 16u : word & 0xffff0000u);\n}\n";
  }
  throw Error("codegen: unknown element storage");
}

std::string pair_reader(const std::string& name, size_t slot, compile::ElementStorage element) {
  const std::string buffer = "in" + std::to_string(slot) + ".data";
  switch (element) {
    case compile::ElementStorage::packed_f16:
      return "vec2 " + name + "(uint word) { return unpackHalf2x16(" + buffer + "[word]); }\n";
    case compile::ElementStorage::packed_bf16:
      return "vec2 " + name + "(uint word) {\n  uint w = " + buffer +
             "[word];\n  return vec2(uintBitsToFloat(w << 16u), uintBitsToFloat(w & 0xffff0000u));\n}\n";
    case compile::ElementStorage::bits32:
      break;
  }
  throw Error("codegen: pair_reader needs a binding of packed 16-bit elements");
}

std::string word_unpacker(const std::string& name, compile::ElementStorage element) {
  switch (element) {
    case compile::ElementStorage::packed_f16:
      return "vec2 " + name + "(uint w) { return unpackHalf2x16(w); }\n";
    case compile::ElementStorage::packed_bf16:
      return "vec2 " + name + "(uint w) { return vec2(uintBitsToFloat(w << 16u), uintBitsToFloat(w & 0xffff0000u)); }\n";
    case compile::ElementStorage::bits32:
      break;
  }
  throw Error("codegen: word_unpacker needs packed 16-bit elements");
}

}  // namespace meganeura::codegen
