#include "gpu/shader_compiler.h"

#include <glslang/build_info.h>
#include <shaderc/shaderc.hpp>

#include <algorithm>
#include <cstring>
#include <set>
#include <sstream>

#include "gpu/disk_cache.h"
#include "gpu/sha256.h"
#include "meganeura/error.h"
#include "meganeura/trace.h"

namespace meganeura::gpu {
namespace {

// Cache entry: magic, SHA-256 of the SPIR-V, then the SPIR-V words.
constexpr char kEntryMagic[8] = {'M', 'G', 'S', 'P', 'V', '0', '0', '1'};
constexpr size_t kEntryHeader = sizeof(kEntryMagic) + 32;
constexpr uint32_t kSpirvMagic = 0x07230203;

std::string options_text(const ShaderOptions& options) {
  std::ostringstream text;
  text << "vulkan1." << options.vulkan_minor << ";opt=" << options.optimize << ";debug=" << options.debug_info
       << ";defines=";
  for (const auto& [name, value] : options.defines) text << name.size() << ':' << name << '=' << value.size() << ':' << value << ';';
  return text.str();
}

// Parses "name:LINE: error: ..." lines of glslang's log and quotes those source lines.
std::string quote_offending_lines(std::string_view glsl, const std::string& log) {
  std::set<int> lines;
  std::istringstream messages(log);
  for (std::string message; std::getline(messages, message);) {
    const size_t error_at = message.find(": error");
    if (error_at == std::string::npos) continue;
    const size_t colon = message.rfind(':', error_at - 1);
    if (colon == std::string::npos) continue;
    const std::string digits = message.substr(colon + 1, error_at - colon - 1);
    if (!digits.empty() && std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      lines.insert(std::stoi(digits));
    }
  }
  std::vector<std::string_view> source;
  for (size_t start = 0; start <= glsl.size();) {
    const size_t end = std::min(glsl.find('\n', start), glsl.size());
    source.push_back(glsl.substr(start, end - start));
    start = end + 1;
  }
  std::set<int> shown;
  for (int line : lines) {
    for (int l = line - 1; l <= line + 1; ++l) {
      if (l >= 1 && l <= int(source.size())) shown.insert(l);
    }
  }
  std::ostringstream out;
  int previous = 0;
  for (int l : shown) {
    if (previous && l != previous + 1) out << "      ...\n";
    char prefix[32];
    std::snprintf(prefix, sizeof(prefix), "%s %4d | ", lines.count(l) ? ">" : " ", l);
    out << prefix << source[l - 1] << '\n';
    previous = l;
  }
  return out.str();
}

std::optional<std::vector<uint32_t>> parse_entry(const std::vector<std::byte>& entry) {
  if (entry.size() < kEntryHeader + 20 || (entry.size() - kEntryHeader) % 4 != 0) return std::nullopt;
  if (std::memcmp(entry.data(), kEntryMagic, sizeof(kEntryMagic)) != 0) return std::nullopt;
  const std::span<const std::byte> payload(entry.data() + kEntryHeader, entry.size() - kEntryHeader);
  const Sha256Digest digest = Sha256::of(payload);
  if (std::memcmp(digest.data(), entry.data() + sizeof(kEntryMagic), 32) != 0) return std::nullopt;
  std::vector<uint32_t> words(payload.size() / 4);
  std::memcpy(words.data(), payload.data(), payload.size());
  if (words[0] != kSpirvMagic) return std::nullopt;
  return words;
}

std::vector<std::byte> make_entry(const std::vector<uint32_t>& words) {
  const auto payload = std::as_bytes(std::span(words));
  const Sha256Digest digest = Sha256::of(payload);
  std::vector<std::byte> entry(kEntryHeader + payload.size());
  std::memcpy(entry.data(), kEntryMagic, sizeof(kEntryMagic));
  std::memcpy(entry.data() + sizeof(kEntryMagic), digest.data(), 32);
  std::memcpy(entry.data() + kEntryHeader, payload.data(), payload.size());
  return entry;
}

shaderc_env_version vulkan_env(uint32_t minor, const std::string& name) {
  switch (minor) {
    case 0: return shaderc_env_version_vulkan_1_0;
    case 1: return shaderc_env_version_vulkan_1_1;
    case 2: return shaderc_env_version_vulkan_1_2;
    case 3: return shaderc_env_version_vulkan_1_3;
    default:
      throw Error("shader \"" + name + "\": target Vulkan 1." + std::to_string(minor) +
                  " is not supported by this shader compiler (use 1.0 to 1.3)");
  }
}

}  // namespace

ShaderCompiler::ShaderCompiler(std::filesystem::path cache_dir)
    : cache_dir_(cache_dir.empty() ? cache_directory() : std::move(cache_dir)) {}

std::string ShaderCompiler::compiler_version() {
  unsigned spv_version = 0, spv_revision = 0;
  shaderc_get_spv_version(&spv_version, &spv_revision);
  return "shaderc (glslang " + std::to_string(GLSLANG_VERSION_MAJOR) + "." + std::to_string(GLSLANG_VERSION_MINOR) +
         "." + std::to_string(GLSLANG_VERSION_PATCH) + GLSLANG_VERSION_FLAVOR + ", SPIR-V " +
         std::to_string(spv_version >> 16) + "." + std::to_string((spv_version >> 8) & 0xff) + " rev " +
         std::to_string(spv_revision) + ")";
}

std::string ShaderCompiler::cache_key(std::string_view glsl, const ShaderOptions& options) const {
  Sha256 hash;
  // Length-prefixed fields, so that no two different inputs concatenate to the same text.
  const std::string version = compiler_version();
  const std::string settings = options_text(options);
  for (const std::string_view part : {std::string_view(version), std::string_view(settings),
                                      std::string_view(options.entry_point), glsl}) {
    hash.update(std::to_string(part.size()) + ":");
    hash.update(part);
  }
  const Sha256Digest digest = hash.finish();
  return to_hex(digest);
}

std::vector<uint32_t> ShaderCompiler::compile(std::string_view glsl, const ShaderOptions& options) {
  trace::Scope trace_scope("shader compilation", options.name);
  const std::filesystem::path entry_path = cache_dir_ / "spirv" / (cache_key(glsl, options) + ".spv");
  if (auto entry = read_file(entry_path)) {
    if (auto words = parse_entry(*entry)) {
      ++hits_;
      return *words;
    }
    ++rejected_;  // damaged or foreign: compile and overwrite below
  }

  shaderc::CompileOptions compile_options;
  compile_options.SetTargetEnvironment(shaderc_target_env_vulkan, vulkan_env(options.vulkan_minor, options.name));
  compile_options.SetOptimizationLevel(options.optimize ? shaderc_optimization_level_performance
                                                        : shaderc_optimization_level_zero);
  if (options.debug_info) compile_options.SetGenerateDebugInfo();
  for (const auto& [name, value] : options.defines) compile_options.AddMacroDefinition(name, value);
  shaderc::Compiler compiler;
  if (!compiler.IsValid()) throw Error("the shaderc compiler failed to initialize");
  const auto result = compiler.CompileGlslToSpv(glsl.data(), glsl.size(), shaderc_glsl_compute_shader,
                                                options.name.c_str(), options.entry_point.c_str(), compile_options);
  if (result.GetCompilationStatus() != shaderc_compilation_status_success) {
    const std::string log = result.GetErrorMessage();
    throw Error("GLSL compile error in shader \"" + options.name + "\":\n" + log + quote_offending_lines(glsl, log));
  }
  std::vector<uint32_t> words(result.cbegin(), result.cend());
  ++misses_;
  if (!write_file_atomically(entry_path, make_entry(words))) ++write_failures_;
  return words;
}

ShaderCacheStats ShaderCompiler::stats() const {
  return {hits_.load(), misses_.load(), rejected_.load(), write_failures_.load()};
}

}  // namespace meganeura::gpu
