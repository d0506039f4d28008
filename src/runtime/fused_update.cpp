#include "runtime/fused_update.h"

#include <algorithm>

#include "codegen/codegen.h"

namespace meganeura::runtime {

namespace {

// Index of the kernel whose root is `gradient`, or kernels.size().
size_t gradient_kernel(const compile::Plan& plan, int32_t gradient) {
  const auto& kernels = plan.kernels;
  return static_cast<size_t>(std::find_if(kernels.begin(), kernels.end(),
                                          [&](const compile::Kernel& kernel) { return kernel.root == gradient; }) -
                             kernels.begin());
}

// Whether a kernel from index `from` on reads the parameter — by storage, not node id: a kernel may
// read it through an alias (a reshape, a view).
bool read_from(const compile::Plan& plan, size_t from, int32_t parameter) {
  const compile::Storage& p = plan.storage.at(static_cast<size_t>(parameter));
  auto reads_parameter = [&](int32_t node) {
    const compile::Storage& s = plan.storage.at(static_cast<size_t>(node));
    return s.bytes > 0 && s.buffer == p.buffer && s.offset < p.offset + p.bytes && p.offset < s.offset + s.bytes;
  };
  for (size_t j = from; j < plan.kernels.size(); ++j) {
    if (std::any_of(plan.kernels[j].inputs.begin(), plan.kernels[j].inputs.end(), reads_parameter)) return true;
  }
  return false;
}

}  // namespace

int fusible_gradient_kernel(const compile::Plan& plan, int32_t parameter, int32_t gradient) {
  const auto& kernels = plan.kernels;
  const size_t k = gradient_kernel(plan, gradient);
  // A kernel that already stores through a function of its own (a head split) keeps it.
  if (k == kernels.size() || !kernels[k].store_function.empty() ||
      !codegen::supports_store_function(plan.graph, kernels[k])) {
    return -1;
  }
  size_t stage = k;
  while (stage > 0 && !kernels[stage].barrier_before) --stage;
  if (!kernels[stage].barrier_before || read_from(plan, stage, parameter)) return -1;
  return static_cast<int>(k);
}

int early_update_kernel(const compile::Plan& plan, int32_t parameter, int32_t gradient) {
  const auto& kernels = plan.kernels;
  size_t next = gradient_kernel(plan, gradient) + 1;
  while (next < kernels.size() && !kernels[next].barrier_before) ++next;
  if (next >= kernels.size() || read_from(plan, next, parameter)) return -1;
  size_t last = next;
  while (last + 1 < kernels.size() && !kernels[last + 1].barrier_before) ++last;
  return static_cast<int>(last);
}

}  // namespace meganeura::runtime
