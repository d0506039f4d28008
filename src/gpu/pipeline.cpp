#include "gpu/pipeline.h"

#include "gpu/native.h"
#include "meganeura/error.h"
#include "meganeura/trace.h"

namespace meganeura::gpu {

Pipeline::Pipeline(std::shared_ptr<Context> context, const PipelineDesc& desc)
    : context_(std::move(context)),
      native_(std::make_unique<NativePipeline>()),
      storage_buffers_(desc.storage_buffers),
      push_constant_bytes_(desc.push_constant_bytes),
      label_(desc.label) {
  trace::Scope trace_scope("pipeline creation", label_);
  if (!context_) throw Error("gpu::Pipeline \"" + label_ + "\": no context given");
  NativeContext& n = context_->native();
  const auto& caps = n.caps;
  const std::string what = "pipeline \"" + label_ + "\"";
  if (desc.spirv.size() < 5 || desc.spirv[0] != 0x07230203) {
    throw Error(what + ": the code is not SPIR-V (compile GLSL with gpu::ShaderCompiler first)");
  }
  if (push_constant_bytes_ % 4 != 0 || push_constant_bytes_ > caps.max_push_constant_bytes) {
    throw Error(what + ": " + std::to_string(push_constant_bytes_) +
                " bytes of push constants; they must be a multiple of 4 and at most " +
                std::to_string(caps.max_push_constant_bytes) + " on \"" + caps.device_name + "\"");
  }
  if (desc.required_subgroup_size != 0 &&
      (!caps.supports_subgroup_size_control || desc.required_subgroup_size < caps.min_subgroup_size ||
       desc.required_subgroup_size > caps.max_subgroup_size)) {
    throw Error(what + ": subgroup size " + std::to_string(desc.required_subgroup_size) + " cannot be required on \"" +
                caps.device_name + "\" (it supports " +
                (caps.supports_subgroup_size_control
                     ? std::to_string(caps.min_subgroup_size) + " to " + std::to_string(caps.max_subgroup_size)
                     : "only its default " + std::to_string(caps.subgroup_size)) +
                ")");
  }
  NativePipeline& p = *native_;
  p.device = n.device;
  VkShaderModule module = VK_NULL_HANDLE;
  try {
    std::vector<VkDescriptorSetLayoutBinding> bindings(storage_buffers_);
    for (uint32_t i = 0; i < storage_buffers_; ++i) {
      bindings[i].binding = i;
      bindings[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      bindings[i].descriptorCount = 1;
      bindings[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
    }
    auto set_info = vk_struct<VkDescriptorSetLayoutCreateInfo>(VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO);
    set_info.bindingCount = storage_buffers_;
    set_info.pBindings = bindings.data();
    check(vkCreateDescriptorSetLayout(n.device, &set_info, nullptr, &p.set_layout), "vkCreateDescriptorSetLayout");

    VkPushConstantRange push{VK_SHADER_STAGE_COMPUTE_BIT, 0, push_constant_bytes_};
    auto layout_info = vk_struct<VkPipelineLayoutCreateInfo>(VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO);
    layout_info.setLayoutCount = 1;
    layout_info.pSetLayouts = &p.set_layout;
    layout_info.pushConstantRangeCount = push_constant_bytes_ ? 1 : 0;
    layout_info.pPushConstantRanges = &push;
    check(vkCreatePipelineLayout(n.device, &layout_info, nullptr, &p.layout), "vkCreatePipelineLayout");

    auto module_info = vk_struct<VkShaderModuleCreateInfo>(VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO);
    module_info.codeSize = desc.spirv.size() * sizeof(uint32_t);
    module_info.pCode = desc.spirv.data();
    check(vkCreateShaderModule(n.device, &module_info, nullptr, &module), "vkCreateShaderModule");

    std::vector<VkSpecializationMapEntry> entries;
    std::vector<uint32_t> values;
    for (const auto& constant : desc.specialization) {
      entries.push_back({constant.id, uint32_t(values.size() * sizeof(uint32_t)), sizeof(uint32_t)});
      values.push_back(constant.value);
    }
    VkSpecializationInfo specialization{uint32_t(entries.size()), entries.data(), values.size() * sizeof(uint32_t),
                                        values.data()};
    auto subgroup = vk_struct<VkPipelineShaderStageRequiredSubgroupSizeCreateInfo>(VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO);
    subgroup.requiredSubgroupSize = desc.required_subgroup_size;

    auto info = vk_struct<VkComputePipelineCreateInfo>(VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO);
    info.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
    if (desc.required_subgroup_size) info.stage.pNext = &subgroup;
    info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    info.stage.module = module;
    info.stage.pName = desc.entry_point.c_str();
    info.stage.pSpecializationInfo = entries.empty() ? nullptr : &specialization;
    info.layout = p.layout;
    const VkResult created = vkCreateComputePipelines(n.device, n.pipeline_cache, 1, &info, nullptr, &p.pipeline);
    check(created, ("vkCreateComputePipelines (" + what + ")").c_str());
    vkDestroyShaderModule(n.device, module, nullptr);
  } catch (...) {
    if (module) vkDestroyShaderModule(n.device, module, nullptr);
    if (p.layout) vkDestroyPipelineLayout(n.device, p.layout, nullptr);
    if (p.set_layout) vkDestroyDescriptorSetLayout(n.device, p.set_layout, nullptr);
    throw;
  }
}

Pipeline::~Pipeline() {
  if (!native_) return;
  NativePipeline& p = *native_;
  if (p.pipeline) vkDestroyPipeline(p.device, p.pipeline, nullptr);
  if (p.layout) vkDestroyPipelineLayout(p.device, p.layout, nullptr);
  if (p.set_layout) vkDestroyDescriptorSetLayout(p.device, p.set_layout, nullptr);
}

Pipeline::Pipeline(Pipeline&&) noexcept = default;
Pipeline& Pipeline::operator=(Pipeline&& other) noexcept {
  if (this != &other) {
    Pipeline dying(std::move(*this));
    context_ = std::move(other.context_);
    native_ = std::move(other.native_);
    storage_buffers_ = other.storage_buffers_;
    push_constant_bytes_ = other.push_constant_bytes_;
    label_ = std::move(other.label_);
  }
  return *this;
}

DescriptorSet::DescriptorSet(const Pipeline& pipeline, const std::vector<BufferRange>& bindings)
    : native_(std::make_unique<NativeDescriptorSet>()) {
  Context& context = pipeline.context();
  NativeContext& n = context.native();
  const std::string what = "bindings of pipeline \"" + pipeline.label() + "\"";
  if (bindings.size() != pipeline.storage_buffers()) {
    throw Error(what + ": got " + std::to_string(bindings.size()) + " buffers, the pipeline has " +
                std::to_string(pipeline.storage_buffers()) + " storage-buffer bindings");
  }
  std::vector<VkDescriptorBufferInfo> infos(bindings.size());
  for (size_t i = 0; i < bindings.size(); ++i) {
    const BufferRange& range = bindings[i];
    const std::string which = what + ", binding " + std::to_string(i);
    if (!range.buffer || !range.buffer->valid()) throw Error(which + ": no buffer");
    if (&range.buffer->context() != &context) throw Error(which + ": the buffer belongs to another gpu::Context");
    if (range.offset >= range.buffer->size() ||
        (range.size != BufferRange::whole && range.size > range.buffer->size() - range.offset)) {
      throw Error(which + ": range at offset " + std::to_string(range.offset) + " of " +
                  (range.size == BufferRange::whole ? std::string("whole") : std::to_string(range.size)) +
                  " bytes lies outside buffer \"" + range.buffer->label() + "\" of " +
                  std::to_string(range.buffer->size()) + " bytes");
    }
    if (range.offset % n.caps.min_storage_buffer_offset_alignment != 0) {
      throw Error(which + ": offset " + std::to_string(range.offset) + " is not a multiple of " +
                  std::to_string(n.caps.min_storage_buffer_offset_alignment) +
                  " (minStorageBufferOffsetAlignment)");
    }
    const uint64_t size = range.resolved_size();
    if (size == 0 || size > n.caps.max_storage_buffer_range) {
      throw Error(which + ": " + std::to_string(size) + " bytes; a storage-buffer binding spans 1 to " +
                  std::to_string(n.caps.max_storage_buffer_range) + " bytes (maxStorageBufferRange) on \"" +
                  n.caps.device_name + "\"");
    }
    infos[i] = {range.buffer->native().buffer, range.offset, size};
  }

  context_ = pipeline.context_ptr();
  NativeDescriptorSet& d = *native_;
  d.device = n.device;
  d.layout = pipeline.native().layout;
  const VkDescriptorPoolSize pool_size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, std::max<uint32_t>(1, uint32_t(bindings.size()))};
  auto pool_info = vk_struct<VkDescriptorPoolCreateInfo>(VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO);
  pool_info.maxSets = 1;
  pool_info.poolSizeCount = 1;
  pool_info.pPoolSizes = &pool_size;
  check(vkCreateDescriptorPool(n.device, &pool_info, nullptr, &d.pool), "vkCreateDescriptorPool");
  auto alloc = vk_struct<VkDescriptorSetAllocateInfo>(VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO);
  alloc.descriptorPool = d.pool;
  alloc.descriptorSetCount = 1;
  alloc.pSetLayouts = &pipeline.native().set_layout;
  const VkResult allocated = vkAllocateDescriptorSets(n.device, &alloc, &d.set);
  if (allocated != VK_SUCCESS) {
    vkDestroyDescriptorPool(n.device, d.pool, nullptr);
    check(allocated, "vkAllocateDescriptorSets");
  }
  std::vector<VkWriteDescriptorSet> writes(bindings.size());
  for (size_t i = 0; i < bindings.size(); ++i) {
    writes[i] = vk_struct<VkWriteDescriptorSet>(VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET);
    writes[i].dstSet = d.set;
    writes[i].dstBinding = uint32_t(i);
    writes[i].descriptorCount = 1;
    writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[i].pBufferInfo = &infos[i];
  }
  vkUpdateDescriptorSets(n.device, uint32_t(writes.size()), writes.data(), 0, nullptr);
}

DescriptorSet::~DescriptorSet() {
  if (native_ && native_->pool) vkDestroyDescriptorPool(native_->device, native_->pool, nullptr);
}

DescriptorSet::DescriptorSet(DescriptorSet&&) noexcept = default;
DescriptorSet& DescriptorSet::operator=(DescriptorSet&& other) noexcept {
  if (this != &other) {
    DescriptorSet dying(std::move(*this));
    context_ = std::move(other.context_);
    native_ = std::move(other.native_);
  }
  return *this;
}

}  // namespace meganeura::gpu
