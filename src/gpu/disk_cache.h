// Files in the cache folder: where it is, and reading and writing entries so that several processes
// can share it (a writer never exposes a partial file).
//
//   auto dir = gpu::cache_directory();                      // $MEGANEURA_CACHE_DIR or ~/.cache/meganeura
//   gpu::write_file_atomically(dir / "spirv" / name, bytes); // temp file in the same folder + rename
//   std::optional<std::vector<std::byte>> back = gpu::read_file(dir / "spirv" / name);
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <vector>

namespace meganeura::gpu {

// $MEGANEURA_CACHE_DIR when set and non-empty, else $XDG_CACHE_HOME/meganeura, else
// $HOME/.cache/meganeura, else <temp>/meganeura-cache.
std::filesystem::path cache_directory();

// Creates the parent folders, writes to a unique temporary file beside `path`, then renames it over
// `path`. Returns false (and leaves no temporary file) when any step fails.
bool write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes);

// The whole file, or nothing when it does not exist or cannot be read.
std::optional<std::vector<std::byte>> read_file(const std::filesystem::path& path);

}  // namespace meganeura::gpu
