#include "gpu/context.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <cstdlib>
#include <string>

#include "gpu/native.h"
#include "gpu/validation.h"
#include "meganeura/device.h"
#include "meganeura/error.h"

extern char** environ;

namespace meganeura::gpu {
namespace {

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_.empty()) {
      unsetenv(name_);
    } else {
      setenv(name_, old_.c_str(), 1);
    }
  }

 private:
  const char* name_;
  std::string old_;
};

TEST(GpuContext, ReadsCapabilitiesOfTheChosenDevice) {
  auto context = Context::shared();
  const auto& caps = context->caps();
  const auto& device = context->device();
  EXPECT_FALSE(device.name.empty());
  EXPECT_EQ(caps.device_name, device.name);
  EXPECT_EQ(device.uuid.size(), 32u);
  EXPECT_GE(caps.subgroup_size, 1u);
  EXPECT_EQ(caps.subgroup_size & (caps.subgroup_size - 1), 0u) << "subgroup sizes are powers of two";
  EXPECT_LE(caps.min_subgroup_size, caps.subgroup_size);
  EXPECT_GE(caps.max_subgroup_size, caps.subgroup_size);
  EXPECT_GE(caps.max_shared_memory_bytes, 16u * 1024) << "Vulkan guarantees at least 16 KiB";
  EXPECT_GE(caps.max_workgroup_invocations, 128u);
  EXPECT_GE(caps.max_storage_buffer_range, 1u << 27);
  EXPECT_GE(caps.max_push_constant_bytes, 128u);
  EXPECT_GT(caps.min_storage_buffer_offset_alignment, 0u);
  EXPECT_GT(caps.largest_device_local_heap(), 0u);
  EXPECT_EQ(context->validation_enabled(), validation_requested());
  // Cooperative-matrix shapes are listed exactly when the fast path is on.
  EXPECT_EQ(caps.supports_cooperative_matrix, !caps.cooperative_matrix_shapes.empty());
  if (caps.is_cpu) {
    EXPECT_FALSE(caps.is_discrete);
  }
}

TEST(GpuContext, SharedContextIsCreatedOnce) {
  EXPECT_EQ(Context::shared().get(), Context::shared().get());
}

TEST(GpuContext, ListsTheSameDevicesAsAContext) {
  const auto listed = Context::list_devices();
  auto context = Context::shared();
  ASSERT_EQ(listed.size(), context->all_devices().size());
  for (size_t i = 0; i < listed.size(); ++i) {
    EXPECT_EQ(listed[i].index, i);
    EXPECT_EQ(listed[i].name, context->all_devices()[i].name);
    EXPECT_EQ(listed[i].uuid, context->all_devices()[i].uuid);
  }
}

TEST(GpuContext, DeviceCanBeChosenByIndexAndByName) {
  const auto devices = Context::list_devices();
  const auto& last = devices.back();
  {
    ScopedEnv env("MEGANEURA_DEVICE", std::to_string(last.index).c_str());
    Context by_index;
    EXPECT_EQ(by_index.device().uuid, last.uuid);
  }
  // A case-changed part of the name selects the same device.
  std::string part = last.name.substr(0, std::min<size_t>(last.name.size(), 5));
  for (char& c : part) c = char(std::toupper(static_cast<unsigned char>(c)));
  Context by_name(ContextOptions{.device = part});
  EXPECT_EQ(by_name.device().name.substr(0, 5), last.name.substr(0, 5));
}

TEST(GpuContext, MissingDeviceIsAnErrorListingTheDevices) {
  ScopedEnv env("MEGANEURA_DEVICE", "no-such-gpu");
  try {
    Context context;
    FAIL() << "a context was created for MEGANEURA_DEVICE=no-such-gpu";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("MEGANEURA_DEVICE=\"no-such-gpu\" matches no Vulkan device"), std::string::npos) << message;
    EXPECT_NE(message.find(Context::list_devices().front().name), std::string::npos) << message;
  }
  ScopedEnv too_large("MEGANEURA_DEVICE", "999");
  EXPECT_THROW(Context(), Error);
}

TEST(GpuContext, NoDriverIsAnErrorNamingThePackage) {
  // The loader finds no driver when pointed at a driver list that does not exist.
  ScopedEnv drivers("VK_DRIVER_FILES", "/nonexistent/meganeura_icd.json");
  ScopedEnv legacy("VK_ICD_FILENAMES", "/nonexistent/meganeura_icd.json");
  try {
    Context context(ContextOptions{.validation = false});
    FAIL() << "a context was created without any Vulkan driver";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("mesa-vulkan-drivers"), std::string::npos) << message;
    EXPECT_NE(message.find("Vulkan driver"), std::string::npos) << message;
  }
}

TEST(GpuContext, HandMadeCapsDescribeOtherDevices) {
  const auto lavapipe = compile::DeviceCaps::lavapipe_like();
  EXPECT_TRUE(lavapipe.is_cpu);
  EXPECT_EQ(lavapipe.subgroup_size, 8u);
  EXPECT_FALSE(lavapipe.supports_cooperative_matrix);
  const auto gpu = compile::DeviceCaps::default_for_tests();
  EXPECT_TRUE(gpu.is_discrete);
  using C = compile::MatrixComponent;
  EXPECT_TRUE(gpu.has_cooperative_matrix_shape({16, 16, 16, C::Float16, C::Float16, C::Float32, C::Float32}));
  EXPECT_FALSE(gpu.has_cooperative_matrix_shape({8, 8, 8, C::Float16, C::Float16, C::Float32, C::Float32}));
  EXPECT_EQ(gpu.largest_device_local_heap(), 16ull << 30);
}

// Run only as a child of the test below: breaks a Vulkan rule on purpose (a zero-sized buffer).
TEST(GpuValidationChild, DISABLED_BreaksAVulkanRule) {
  auto context = Context::shared();
  auto info = vk_struct<VkBufferCreateInfo>(VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO);
  info.size = 0;
  info.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
  VkBuffer buffer = VK_NULL_HANDLE;
  if (vkCreateBuffer(context->native().device, &info, nullptr, &buffer) == VK_SUCCESS) {
    vkDestroyBuffer(context->native().device, buffer, nullptr);
  }
}

TEST(GpuContext, ValidationMessagesFailTheTestThatCausedThem) {
  if (!validation_requested()) GTEST_SKIP() << "MEGANEURA_VALIDATION=1 is not set";
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string log = std::filesystem::temp_directory_path() / ("meganeura-validation-" + std::to_string(getpid()));
  std::vector<std::string> args = {self, "--gtest_also_run_disabled_tests",
                                   "--gtest_filter=GpuValidationChild.DISABLED_BreaksAVulkanRule"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, self.c_str(), &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  std::stringstream errors;
  errors << std::ifstream(log).rdbuf();
  std::filesystem::remove(log);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1) << "the child's run should fail";
  EXPECT_NE(errors.str().find("DISABLED_BreaksAVulkanRule: Vulkan validation layer:"), std::string::npos)
      << errors.str();
  EXPECT_NE(errors.str().find("VkBufferCreateInfo"), std::string::npos) << errors.str();
}

TEST(GpuContext, PublicDeviceListMarksThePreferredDevice) {
  const auto devices = list_devices();
  const auto summaries = Context::list_devices();
  ASSERT_EQ(devices.size(), summaries.size());
  size_t preferred = 0;
  for (size_t i = 0; i < devices.size(); ++i) {
    EXPECT_EQ(devices[i].name, summaries[i].name);
    EXPECT_FALSE(devices[i].driver.empty());
    preferred += devices[i].preferred;
  }
  EXPECT_EQ(preferred, 1u);
  EXPECT_TRUE(devices[Context::preferred_device(summaries)].preferred);
  EXPECT_EQ(devices[Context::preferred_device(summaries)].name, Context::shared()->device().name);
  ScopedEnv env("MEGANEURA_DEVICE", "no-such-gpu");
  for (const auto& device : list_devices()) EXPECT_FALSE(device.preferred) << device.name;
}

// Ranking by type: a discrete GPU wins over a CPU device listed before it, whatever the order.
TEST(GpuContext, PreferenceFollowsDeviceTypeThenRequest) {
  std::vector<DeviceSummary> devices(3);
  devices[0] = {.index = 0, .name = "llvmpipe", .type = "CPU"};
  devices[1] = {.index = 1, .name = "Intel UHD", .type = "integrated GPU"};
  devices[2] = {.index = 2, .name = "NVIDIA H100", .type = "discrete GPU"};
  EXPECT_EQ(Context::preferred_device(devices, std::nullopt), 2u);
  EXPECT_EQ(Context::preferred_device(devices, "intel"), 1u);
  EXPECT_EQ(Context::preferred_device(devices, "0"), 0u);
  EXPECT_THROW(Context::preferred_device(devices, "3"), Error);
  devices.pop_back();
  EXPECT_EQ(Context::preferred_device(devices, std::nullopt), 1u);
}

TEST(GpuContext, VulkanFailuresBecomeTypedErrorsNamingTheCall) {
  try {
    check(VK_ERROR_DEVICE_LOST, "vkQueueSubmit");
    FAIL() << "no exception";
  } catch (const DeviceLostError& e) {
    EXPECT_NE(std::string(e.what()).find("vkQueueSubmit failed with VK_ERROR_DEVICE_LOST"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(check(VK_ERROR_OUT_OF_DEVICE_MEMORY, "vkAllocateMemory"), OutOfMemoryError);
  try {
    check(VK_ERROR_INITIALIZATION_FAILED, "vkCreateDevice");
    FAIL() << "no exception";
  } catch (const DeviceLostError&) {
    FAIL() << "not a device loss";
  } catch (const OutOfMemoryError&) {
    FAIL() << "not out of memory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vkCreateDevice failed with VK_ERROR_INITIALIZATION_FAILED (-3)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(check(VK_SUCCESS, "vkQueueWaitIdle"));
}

}  // namespace
}  // namespace meganeura::gpu
