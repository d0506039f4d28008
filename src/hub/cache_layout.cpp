#include "hub/cache_layout.h"

#include <fstream>
#include <sstream>

#include "meganeura/error.h"

namespace meganeura::hub {
namespace fs = std::filesystem;
namespace {

bool safe_relative_path(const std::string& path) {
  if (path.empty() || path.front() == '/' || path.back() == '/') return false;
  if (path.find('\\') != std::string::npos || path.find('\0') != std::string::npos) return false;
  std::stringstream parts(path);
  for (std::string part; std::getline(parts, part, '/');)
    if (part.empty() || part == "." || part == "..") return false;
  for (unsigned char c : path)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

}  // namespace

void check_repo_id(const std::string& repo_id) {
  const auto slash = repo_id.find('/');
  bool ok = !repo_id.empty() && repo_id.size() <= 96 && repo_id.find('/', slash == std::string::npos ? 0 : slash + 1) == std::string::npos;
  for (char c : repo_id) ok = ok && (name_char(c) || c == '/');
  ok = ok && safe_relative_path(repo_id) && repo_id.find("--") == std::string::npos;
  if (!ok)
    throw Error("invalid repository id '" + repo_id +
                "': expected NAME or ORG/NAME of letters, digits, '-', '_' and '.' (for example HuggingFaceTB/SmolLM2-135M)");
}

void check_revision(const std::string& revision) {
  if (!safe_relative_path(revision))
    throw Error("invalid revision '" + revision + "': expected a branch, tag or commit hash such as main");
}

void check_repo_file_name(const std::string& repo_id, const std::string& filename) {
  if (!safe_relative_path(filename))
    throw Error("refusing file name '" + filename + "' of " + repo_id +
                ": it is not a plain path inside the repository and would escape the cache folder");
}

bool is_commit_hash(const std::string& revision) {
  if (revision.size() != 40) return false;
  for (char c : revision)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

RepoCache::RepoCache(const fs::path& cache_dir, const std::string& repo_id) {
  std::string name = "models--" + repo_id;
  for (size_t at = name.find('/'); at != std::string::npos; at = name.find('/', at)) name.replace(at, 1, "--");
  folder_ = cache_dir / name;
  lock_folder_ = cache_dir / ".locks" / name;
}

std::optional<std::string> RepoCache::cached_commit(const std::string& revision) const {
  if (is_commit_hash(revision)) return revision;
  std::ifstream ref(folder_ / "refs" / revision);
  std::string commit;
  if (!ref || !std::getline(ref, commit)) return std::nullopt;
  while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) commit.pop_back();
  if (!is_commit_hash(commit)) return std::nullopt;
  return commit;
}

void RepoCache::write_ref(const std::string& revision, const std::string& commit) const {
  if (revision == commit) return;
  const fs::path ref = folder_ / "refs" / revision;
  if (cached_commit(revision) == commit) return;
  fs::create_directories(ref.parent_path());
  const fs::path temporary = ref.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << commit;  // no newline, as huggingface_hub writes it
    if (!out) throw Error("cannot write " + temporary.string());
  }
  fs::rename(temporary, ref);
}

std::optional<fs::path> RepoCache::cached_file(const std::string& revision, const std::string& filename) const {
  const auto commit = cached_commit(revision);
  if (!commit) return std::nullopt;
  const fs::path pointer = snapshot(*commit) / filename;
  std::error_code ec;
  if (fs::exists(pointer, ec)) return pointer;  // follows the symlink: a dangling one does not count
  return std::nullopt;
}

fs::path RepoCache::link_snapshot(const std::string& commit, const std::string& filename, const std::string& etag) const {
  const fs::path pointer = snapshot(commit) / filename;
  fs::create_directories(pointer.parent_path());
  std::error_code ec;
  fs::remove(pointer, ec);
  fs::create_symlink(blob(etag).lexically_relative(pointer.parent_path()), pointer, ec);  // like os.path.relpath
  if (ec) fs::copy_file(blob(etag), pointer, fs::copy_options::overwrite_existing);
  return pointer;
}

}  // namespace meganeura::hub
