#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "gpu/buffer.h"
#include "gpu/context.h"
#include "gpu/pipeline.h"
#include "gpu/recording.h"
#include "gpu/shader_compiler.h"
#include "gpu/transfer.h"
#include "meganeura/error.h"
#include "test_shaders.h"

namespace meganeura::gpu {
namespace {

namespace fs = std::filesystem;

// Each invocation writes the subgroup size it runs with.
constexpr const char* kSubgroupSize = R"(#version 450
#extension GL_KHR_shader_subgroup_basic : require
layout(local_size_x = 64) in;
layout(std430, set = 0, binding = 0) writeonly buffer Out { uint sizes[]; };
void main() { sizes[gl_GlobalInvocationID.x] = gl_SubgroupSize; }
)";

TEST(GpuPipeline, RequiredSubgroupSizeIsHonoured) {
  auto context = Context::shared();
  const auto& caps = context->caps();
  ShaderCompiler compiler;
  const auto spirv = compiler.compile(kSubgroupSize, {.name = "subgroup_size"});
  try {
    Pipeline impossible(context, {.spirv = spirv, .storage_buffers = 1, .required_subgroup_size = 3});
    FAIL() << "subgroup size 3 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("subgroup size 3 cannot be required"), std::string::npos) << e.what();
  }
  if (!caps.supports_subgroup_size_control) GTEST_SKIP() << caps.device_name << " has no subgroup size control";
  for (uint32_t size = caps.min_subgroup_size; size <= caps.max_subgroup_size; size *= 2) {
    Pipeline pipeline(context, {.spirv = spirv, .storage_buffers = 1, .required_subgroup_size = size,
                                .label = "subgroup_size"});
    Buffer out(context, 128 * 4, MemoryKind::HostVisible, "sizes");
    fill(out, testing::kPoison);
    DescriptorSet bindings(pipeline, {{&out}});
    Recording recording(context);
    recording.dispatch(pipeline, bindings, {}, {2, 1, 1});
    recording.finish();
    recording.run();
    std::vector<uint32_t> sizes(128);
    download(out, 0, std::as_writable_bytes(std::span(sizes)));
    for (uint32_t i = 0; i < sizes.size(); ++i) ASSERT_EQ(sizes[i], size) << "invocation " << i;
  }
}

TEST(GpuPipeline, DamagedPipelineCacheIsIgnored) {
  // A private cache folder: other test processes may be using the suite's one.
  const fs::path dir = fs::temp_directory_path() /
                       ("meganeura-pipeline-cache-" + std::to_string(getpid()) + "-" +
                        std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  const char* saved = std::getenv("MEGANEURA_CACHE_DIR");
  const std::string saved_value = saved ? saved : "";
  setenv("MEGANEURA_CACHE_DIR", dir.c_str(), 1);
  ShaderCompiler compiler(dir);
  const auto spirv = compiler.compile(testing::kRowSum, {.name = "row_sum"});
  const PipelineDesc desc{.spirv = spirv, .storage_buffers = 2, .push_constant_bytes = 8,
                          .specialization = {{0, 16}}, .label = "row_sum"};
  std::string uuid;
  {
    auto context = std::make_shared<Context>();
    uuid = context->device().uuid;
    Pipeline pipeline(context, desc);
  }  // saved on destruction
  std::vector<fs::path> blobs;
  for (const auto& entry : fs::directory_iterator(dir / "pipelines")) blobs.push_back(entry.path());
  ASSERT_EQ(blobs.size(), 1u);
  EXPECT_EQ(blobs[0].filename().string().rfind(uuid, 0), 0u) << "named by the device UUID";
  {
    // Same length, random bytes: the header no longer names this device.
    const auto size = fs::file_size(blobs[0]);
    std::mt19937 rng(12);
    std::ofstream out(blobs[0], std::ios::binary | std::ios::trunc);
    for (uintmax_t i = 0; i < size; ++i) out.put(char(rng()));
  }
  {
    auto context = std::make_shared<Context>();
    Pipeline pipeline(context, desc);
  }
  EXPECT_GE(fs::file_size(blobs[0]), 32u);
  if (saved_value.empty()) {
    unsetenv("MEGANEURA_CACHE_DIR");
  } else {
    setenv("MEGANEURA_CACHE_DIR", saved_value.c_str(), 1);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace meganeura::gpu
