// `meganeura info`: the Vulkan devices, the one Meganeura picks, and what it can use on it.
#include <iostream>
#include <sstream>
#include <string>

#include "cli/command.h"
#include "gpu/buffer.h"
#include "gpu/context.h"
#include "gpu/disk_cache.h"
#include "gpu/shader_compiler.h"
#include "runtime/cooperative_self_test.h"

namespace {

using meganeura::gpu::format_bytes;

const char* yes_no(bool value) { return value ? "yes" : "no"; }

std::string hex(uint32_t value) {
  std::ostringstream out;
  out << "0x" << std::hex << value;
  return out.str();
}

void print_info() {
  auto context = std::make_shared<meganeura::gpu::Context>();
  const auto& chosen = context->device();
  const auto& caps = context->caps();

  std::cout << "Vulkan instance " << context->instance_api_version() << "\n\nDevices:\n";
  for (const auto& device : context->all_devices()) {
    std::cout << (device.index == chosen.index ? "* " : "  ") << device.index << ": " << device.name << " ("
              << device.type << ", Vulkan " << device.api_version << ")\n";
  }
  std::cout << "(choose another with MEGANEURA_DEVICE=<index or part of the name>)\n\n";

  std::cout << "Chosen device: " << chosen.name << "\n"
            << "  type:                 " << chosen.type << "\n"
            << "  vendor / device id:   " << hex(chosen.vendor_id) << " / " << hex(chosen.device_id) << "\n"
            << "  driver:               " << (chosen.driver_name.empty() ? "(unknown)" : chosen.driver_name) << " "
            << chosen.driver_info << " (version " << chosen.driver_version << ")\n"
            << "  Vulkan API:           " << chosen.api_version << "\n"
            << "  UUID:                 " << chosen.uuid << "\n"
            << "  subgroup size:        " << caps.subgroup_size;
  if (caps.supports_subgroup_size_control) {
    std::cout << " (selectable " << caps.min_subgroup_size << " to " << caps.max_subgroup_size << ")";
  }
  std::cout << "\n"
            << "  shared memory:        " << format_bytes(caps.max_shared_memory_bytes) << " per workgroup\n"
            << "  workgroup:            " << caps.max_workgroup_invocations << " invocations, size "
            << caps.max_workgroup_size[0] << " x " << caps.max_workgroup_size[1] << " x "
            << caps.max_workgroup_size[2] << "\n"
            << "  storage buffer range: " << format_bytes(caps.max_storage_buffer_range) << "\n"
            << "  largest allocation:   " << format_bytes(caps.max_memory_allocation_bytes) << "\n"
            << "  push constants:       " << caps.max_push_constant_bytes << " bytes\n"
            << "  memory heaps:\n";
  for (size_t i = 0; i < caps.memory_heaps.size(); ++i) {
    std::cout << "    " << i << ": " << format_bytes(caps.memory_heaps[i].size_bytes)
              << (caps.memory_heaps[i].device_local ? " device-local" : " host") << "\n";
  }

  std::cout << "\nFast paths:\n"
            << "  fp16 arithmetic:      " << yes_no(caps.supports_fp16_arithmetic) << "\n"
            << "  16-bit storage:       " << yes_no(caps.supports_16bit_storage) << "\n"
            << "  int8:                 " << yes_no(caps.supports_int8) << "\n"
            << "  subgroup arithmetic:  " << yes_no(caps.supports_subgroup_arithmetic) << "\n"
            << "  subgroup shuffle:     " << yes_no(caps.supports_subgroup_shuffle) << "\n"
            << "  timestamps:           " << yes_no(caps.supports_timestamps);
  if (caps.supports_timestamps) std::cout << " (" << caps.timestamp_period_ns << " ns per tick)";
  std::cout << "\n  cooperative matrix:   " << yes_no(caps.supports_cooperative_matrix);
  if (caps.supports_cooperative_matrix) {
    std::cout << " (VK_NV_cooperative_matrix)\n";
    for (const auto& shape : caps.cooperative_matrix_shapes) {
      std::cout << "    " << shape.m << "x" << shape.n << "x" << shape.k << "  " << to_string(shape.a_type) << " x "
                << to_string(shape.b_type) << " + " << to_string(shape.c_type) << " -> "
                << to_string(shape.result_type) << "\n";
    }
    // The numeric check sessions run before they use the form (once per process).
    const meganeura::runtime::CooperativeSelfTest& test = meganeura::runtime::cooperative_self_test(caps);
    std::cout << "    self-test against the scalar kernel: " << meganeura::runtime::to_string(test) << "\n";
  } else {
    std::cout << "\n";
  }

  std::cout << "\nShader compiler: " << meganeura::gpu::ShaderCompiler::compiler_version() << "\n"
            << "Cache folder:    " << meganeura::gpu::cache_directory().string() << "\n"
            << "Validation:      " << (context->validation_enabled() ? "on" : "off (MEGANEURA_VALIDATION=1 enables it)")
            << "\n";
}

void setup_info(CLI::App& app) {
  auto* sub = app.add_subcommand("info", "List Vulkan devices, the chosen one and its usable fast paths");
  sub->callback(print_info);
}

const bool registered = meganeura::cli::register_command("info", setup_info);

}  // namespace
