// libFuzzer target: the Llama config.json reader. Any input must either give a config whose sizes
// are positive or be rejected with meganeura::Error; the sanitizers catch everything else.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "meganeura/error.h"
#include "meganeura/models/smollm2.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto config = meganeura::models::LlamaConfig::from_json(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz config.json");
    const auto block = config.block_config();
    if (block.hidden <= 0 || block.num_heads <= 0 || block.num_kv_heads <= 0 || block.head_dim <= 0 ||
        block.num_heads % block.num_kv_heads != 0 || config.vocab_size <= 0 || config.num_hidden_layers <= 0)
      std::abort();  // accepted a config the graphs cannot be built from
  } catch (const meganeura::Error&) {
  }
  return 0;
}
