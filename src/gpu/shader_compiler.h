// gpu::ShaderCompiler — GLSL compute shaders to SPIR-V through the shaderc library, with an on-disk
// cache shared by every process that uses the same folder.
//
//   gpu::ShaderCompiler compiler;  // cache in $MEGANEURA_CACHE_DIR or ~/.cache/meganeura
//   std::vector<uint32_t> spirv = compiler.compile(glsl_source, {.name = "vector_add"});
//   compiler.stats().hits;         // 1 if an earlier build (in any process) compiled the same shader
//
// The cache key is the SHA-256 of the source, the options and the compiler version, so a changed
// option or an upgraded shaderc never returns stale code. Entries are written to a temporary file
// and renamed into place, and carry a checksum: concurrent processes never see partial files, and a
// damaged entry is recompiled and replaced. A compile error throws meganeura::Error quoting the
// offending GLSL lines with their numbers. compile() may be called from several threads at once
// (build kernels in parallel); the statistics are counted across them.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meganeura::gpu {

struct ShaderOptions {
  std::string name = "shader";  // shown in error messages
  std::vector<std::pair<std::string, std::string>> defines = {};  // #define NAME VALUE before the source
  bool optimize = true;            // shaderc's performance optimization passes
  uint32_t vulkan_minor = 2;       // target environment Vulkan 1.<minor> (SPIR-V 1.5 for 1.2)
  bool debug_info = false;
  std::string entry_point = "main";
};

struct ShaderCacheStats {
  uint64_t hits = 0;       // served from the disk cache
  uint64_t misses = 0;     // compiled (then stored)
  uint64_t rejected = 0;   // cache entries found damaged and replaced
  uint64_t write_failures = 0;  // entries that could not be stored (the compile still succeeded)
};

class ShaderCompiler {
 public:
  // An empty folder → cache_directory(). The folder is created on first store.
  explicit ShaderCompiler(std::filesystem::path cache_dir = {});

  std::vector<uint32_t> compile(std::string_view glsl, const ShaderOptions& options = {});

  // The cache key (hex SHA-256) compile() would use; exposed for tests and dumps.
  std::string cache_key(std::string_view glsl, const ShaderOptions& options) const;

  ShaderCacheStats stats() const;
  const std::filesystem::path& cache_dir() const { return cache_dir_; }

  // "shaderc 2023.2 (glslang 12.0.0, SPIR-V 1.6 rev 1)" — part of every cache key.
  static std::string compiler_version();

 private:
  std::filesystem::path cache_dir_;
  std::atomic<uint64_t> hits_{0}, misses_{0}, rejected_{0}, write_failures_{0};
};

}  // namespace meganeura::gpu
