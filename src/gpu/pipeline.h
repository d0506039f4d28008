// gpu::Pipeline — a compute pipeline made from SPIR-V: N storage-buffer bindings (set 0, bindings
// 0..N-1), an optional push-constant block and specialization constants (tile and workgroup sizes,
// via `layout(local_size_x_id = 0) in;`). gpu::DescriptorSet binds buffer ranges to it, written once.
//
//   gpu::Pipeline add(context, {.spirv = spirv, .storage_buffers = 3, .push_constant_bytes = 4,
//                               .specialization = {{0, 64}}, .label = "vector_add"});
//   gpu::DescriptorSet bindings(add, {{&a}, {&b}, {&out}});
//
// Pipelines are created through the context's VkPipelineCache, so a second process builds them
// faster. A binding larger than maxStorageBufferRange or at a misaligned offset throws
// meganeura::Error naming the binding.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gpu/buffer.h"

namespace meganeura::gpu {

struct SpecializationConstant {
  uint32_t id = 0;
  uint32_t value = 0;  // 32-bit constants only (int, uint, float bits, bool as 0/1)
};

struct PipelineDesc {
  std::span<const uint32_t> spirv = {};
  uint32_t storage_buffers = 0;
  uint32_t push_constant_bytes = 0;  // multiple of 4, at most caps().max_push_constant_bytes
  std::vector<SpecializationConstant> specialization = {};
  // Ask for this subgroup size (0: the driver's choice). Needs subgroup size control and a size in
  // [min_subgroup_size, max_subgroup_size].
  uint32_t required_subgroup_size = 0;
  std::string entry_point = "main";
  std::string label = "pipeline";
};

struct NativePipeline;
struct NativeDescriptorSet;

class Pipeline {
 public:
  Pipeline(std::shared_ptr<Context> context, const PipelineDesc& desc);
  ~Pipeline();
  Pipeline(Pipeline&&) noexcept;
  Pipeline& operator=(Pipeline&&) noexcept;

  uint32_t storage_buffers() const { return storage_buffers_; }
  uint32_t push_constant_bytes() const { return push_constant_bytes_; }
  const std::string& label() const { return label_; }
  Context& context() const { return *context_; }
  const std::shared_ptr<Context>& context_ptr() const { return context_; }
  NativePipeline& native() const { return *native_; }

 private:
  std::shared_ptr<Context> context_;
  std::unique_ptr<NativePipeline> native_;
  uint32_t storage_buffers_ = 0;
  uint32_t push_constant_bytes_ = 0;
  std::string label_ = {};
};

// The buffers of one dispatch, one range per binding, written once at construction. Keep the
// buffers alive as long as the set is recorded anywhere.
class DescriptorSet {
 public:
  DescriptorSet(const Pipeline& pipeline, const std::vector<BufferRange>& bindings);
  ~DescriptorSet();
  DescriptorSet(DescriptorSet&&) noexcept;
  DescriptorSet& operator=(DescriptorSet&&) noexcept;

  NativeDescriptorSet& native() const { return *native_; }

 private:
  std::shared_ptr<Context> context_;
  std::unique_ptr<NativeDescriptorSet> native_;
};

}  // namespace meganeura::gpu
