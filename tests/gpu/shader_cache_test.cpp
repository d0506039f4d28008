#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "gpu/disk_cache.h"
#include "gpu/shader_compiler.h"
#include "meganeura/error.h"
#include "test_shaders.h"

extern char** environ;

namespace meganeura::gpu {
namespace {

namespace fs = std::filesystem;

// A fresh folder per test and process, removed afterwards.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = fs::temp_directory_path() / ("meganeura-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(stamp));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<fs::path> files_under(const fs::path& dir) {
  std::vector<fs::path> files;
  if (!fs::exists(dir)) return files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  return files;
}

TEST(GpuShaderCache, SecondBuildHitsTheCache) {
  TempDir dir("cache");
  ShaderCompiler first(dir.path());
  const auto spirv = first.compile(testing::kVectorAdd, {.name = "vector_add"});
  ASSERT_GT(spirv.size(), 5u);
  EXPECT_EQ(spirv[0], 0x07230203u);
  EXPECT_EQ(first.stats().misses, 1u);
  EXPECT_EQ(first.stats().hits, 0u);
  EXPECT_EQ(files_under(dir.path()).size(), 1u);

  // Same compiler and a new one (as a new process would be): both served from disk, same words.
  EXPECT_EQ(first.compile(testing::kVectorAdd, {.name = "vector_add"}), spirv);
  EXPECT_EQ(first.stats().hits, 1u);
  ShaderCompiler second(dir.path());
  EXPECT_EQ(second.compile(testing::kVectorAdd, {.name = "another name, same code"}), spirv);
  EXPECT_EQ(second.stats().hits, 1u);
  EXPECT_EQ(second.stats().misses, 0u);
}

TEST(GpuShaderCache, OptionsAndSourceChangeTheKey) {
  TempDir dir("keys");
  ShaderCompiler compiler(dir.path());
  const std::string source = testing::kVectorAdd;
  const auto base = compiler.cache_key(source, {});
  EXPECT_EQ(base.size(), 64u);
  EXPECT_EQ(base, compiler.cache_key(source, {.name = "renamed"})) << "the name is not part of the code";
  EXPECT_NE(base, compiler.cache_key(source + " ", {}));
  EXPECT_NE(base, compiler.cache_key(source, {.optimize = false}));
  EXPECT_NE(base, compiler.cache_key(source, {.vulkan_minor = 3}));
  EXPECT_NE(base, compiler.cache_key(source, {.defines = {{"A", "1"}}}));
  EXPECT_NE(compiler.cache_key(source, {.defines = {{"A", "1B"}}}), compiler.cache_key(source, {.defines = {{"A1", "B"}}}));
  compiler.compile(source, {});
  compiler.compile(source, {.optimize = false});
  EXPECT_EQ(compiler.stats().misses, 2u);
  EXPECT_EQ(compiler.stats().hits, 0u);
}

TEST(GpuShaderCache, DamagedEntryIsRecompiledAndReplaced) {
  TempDir dir("damaged");
  ShaderCompiler compiler(dir.path());
  const auto spirv = compiler.compile(testing::kRowSum, {.name = "row_sum"});
  const auto entries = files_under(dir.path());
  ASSERT_EQ(entries.size(), 1u);
  {
    // Flip a byte in the middle of the stored SPIR-V.
    std::fstream file(entries[0], std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(std::streamoff(fs::file_size(entries[0]) / 2));
    file.put('\x5a');
  }
  ShaderCompiler again(dir.path());
  EXPECT_EQ(again.compile(testing::kRowSum, {.name = "row_sum"}), spirv);
  EXPECT_EQ(again.stats().rejected, 1u);
  EXPECT_EQ(again.stats().misses, 1u);
  ShaderCompiler third(dir.path());
  EXPECT_EQ(third.compile(testing::kRowSum, {.name = "row_sum"}), spirv);
  EXPECT_EQ(third.stats().hits, 1u) << "the replaced entry is whole again";
}

TEST(GpuShaderCache, CompileErrorQuotesTheOffendingLines) {
  TempDir dir("bad");
  ShaderCompiler compiler(dir.path());
  const std::string bad = "#version 450\n"
                          "layout(local_size_x = 1) in;\n"
                          "layout(std430, binding = 0) buffer Out { float result[]; };\n"
                          "void main() {\n"
                          "  result[0] = undeclared_value * 2.0;\n"
                          "}\n";
  try {
    compiler.compile(bad, {.name = "broken_kernel"});
    FAIL() << "bad GLSL compiled";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("GLSL compile error in shader \"broken_kernel\""), std::string::npos) << message;
    EXPECT_NE(message.find("undeclared_value"), std::string::npos) << message;
    EXPECT_NE(message.find(">    5 |   result[0] = undeclared_value * 2.0;"), std::string::npos) << message;
    EXPECT_NE(message.find("     4 | void main() {"), std::string::npos) << "context line: " << message;
  }
  EXPECT_TRUE(files_under(dir.path()).empty()) << "failed compiles are not cached";
}

TEST(GpuShaderCache, AtomicWritesLeaveNoTemporaryFiles) {
  TempDir dir("atomic");
  const fs::path target = dir.path() / "nested" / "entry.bin";
  const std::vector<std::byte> first(1000, std::byte{1}), second(10, std::byte{2});
  ASSERT_TRUE(write_file_atomically(target, first));
  ASSERT_TRUE(write_file_atomically(target, second));
  EXPECT_EQ(read_file(target), second);
  EXPECT_EQ(files_under(dir.path()).size(), 1u);
  EXPECT_FALSE(read_file(dir.path() / "missing").has_value());
}

// The shaders each child compiles: the three test kernels, each with a few different defines, so
// children race on the same entries.
std::vector<std::pair<std::string, ShaderOptions>> shared_workload() {
  std::vector<std::pair<std::string, ShaderOptions>> work;
  for (const char* source : {testing::kVectorAdd, testing::kRowSum, testing::kTiledMatmul}) {
    for (int variant = 0; variant < 3; ++variant) {
      work.push_back({source, ShaderOptions{.name = "variant", .defines = {{"VARIANT", std::to_string(variant)}}}});
    }
  }
  return work;
}

// Run only as a child of the test below (which passes --gtest_also_run_disabled_tests).
TEST(GpuShaderCacheChild, DISABLED_CompileSharedWorkload) {
  const char* dir = std::getenv("MEGANEURA_TEST_SHARED_CACHE");
  ASSERT_NE(dir, nullptr);
  ShaderCompiler compiler{fs::path(dir)};
  auto work = [&] {
    for (const auto& [source, options] : shared_workload()) compiler.compile(source, options);
  };
  std::thread other(work);
  work();
  other.join();
  EXPECT_EQ(compiler.stats().write_failures, 0u);
  EXPECT_EQ(compiler.stats().rejected, 0u) << "a child saw a partial or damaged entry";
}

TEST(GpuShaderCache, ConcurrentProcessesShareOneFolder) {
  TempDir dir("shared");
  setenv("MEGANEURA_TEST_SHARED_CACHE", dir.path().c_str(), 1);
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  std::vector<pid_t> children;
  for (int i = 0; i < 4; ++i) {
    std::vector<std::string> args = {self, "--gtest_also_run_disabled_tests",
                                     "--gtest_filter=GpuShaderCacheChild.DISABLED_CompileSharedWorkload"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    ASSERT_EQ(posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), environ), 0);
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child " << pid << " failed";
  }
  unsetenv("MEGANEURA_TEST_SHARED_CACHE");

  // Every entry is whole and identical to a fresh compile; nothing temporary is left behind.
  const auto work = shared_workload();
  const auto files = files_under(dir.path());
  EXPECT_EQ(files.size(), work.size());
  for (const auto& file : files) EXPECT_EQ(file.extension(), ".spv") << file;
  ShaderCompiler cached(dir.path());
  TempDir fresh_dir("fresh");
  ShaderCompiler fresh(fresh_dir.path());
  for (const auto& [source, options] : work) EXPECT_EQ(cached.compile(source, options), fresh.compile(source, options));
  EXPECT_EQ(cached.stats().hits, work.size());
  EXPECT_EQ(cached.stats().rejected, 0u);
}

TEST(GpuShaderCache, DefaultFolderFollowsTheEnvironment) {
  const char* configured = std::getenv("MEGANEURA_CACHE_DIR");
  if (configured && *configured) {
    EXPECT_EQ(cache_directory(), fs::path(configured));
    EXPECT_EQ(ShaderCompiler().cache_dir(), fs::path(configured));
  }
  const std::string saved = configured ? configured : "";
  const char* home = std::getenv("HOME");
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  unsetenv("MEGANEURA_CACHE_DIR");
  if (!xdg && home) {
    EXPECT_EQ(cache_directory(), fs::path(home) / ".cache" / "meganeura");
  }
  setenv("MEGANEURA_CACHE_DIR", "/some/where", 1);
  EXPECT_EQ(cache_directory(), fs::path("/some/where"));
  if (saved.empty()) {
    unsetenv("MEGANEURA_CACHE_DIR");
  } else {
    setenv("MEGANEURA_CACHE_DIR", saved.c_str(), 1);
  }
}

}  // namespace
}  // namespace meganeura::gpu
