#include "runtime/fused_update.h"

#include <algorithm>

#include "codegen/codegen.h"

namespace meganeura::runtime {

int fusible_gradient_kernel(const compile::Plan& plan, int32_t parameter, int32_t gradient) {
  const auto& kernels = plan.kernels;
  const auto found = std::find_if(kernels.begin(), kernels.end(),
                                  [&](const compile::Kernel& kernel) { return kernel.root == gradient; });
  if (found == kernels.end() || !codegen::supports_store_function(plan.graph, *found)) return -1;
  const size_t k = static_cast<size_t>(found - kernels.begin());
  size_t stage = k;
  while (stage > 0 && !kernels[stage].barrier_before) --stage;
  if (!kernels[stage].barrier_before) return -1;
  // By storage, not node id: a kernel may read the parameter through an alias (a reshape, a view).
  const compile::Storage& p = plan.storage.at(static_cast<size_t>(parameter));
  auto reads_parameter = [&](int32_t node) {
    const compile::Storage& s = plan.storage.at(static_cast<size_t>(node));
    return s.bytes > 0 && s.buffer == p.buffer && s.offset < p.offset + p.bytes && p.offset < s.offset + s.bytes;
  };
  for (size_t j = stage; j < kernels.size(); ++j) {
    if (std::any_of(kernels[j].inputs.begin(), kernels[j].inputs.end(), reads_parameter)) return -1;
  }
  return static_cast<int>(k);
}

}  // namespace meganeura::runtime
