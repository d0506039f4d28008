// The Hugging Face cache layout, as the Python huggingface_hub package writes it:
//   CACHE/models--ORG--NAME/blobs/ETAG                 file contents, named by their hash
//   CACHE/models--ORG--NAME/snapshots/COMMIT/PATH      relative symlinks to ../../blobs/ETAG
//   CACHE/models--ORG--NAME/refs/REVISION              the commit a branch or tag pointed to
//   CACHE/.locks/models--ORG--NAME/ETAG.lock           flock()ed while a blob is written
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace meganeura::hub {

// Throw Error for names that could leave their folder or break a URL.
void check_repo_id(const std::string& repo_id);
void check_revision(const std::string& revision);
void check_repo_file_name(const std::string& repo_id, const std::string& filename);

bool is_commit_hash(const std::string& revision);

class RepoCache {
 public:
  RepoCache(const std::filesystem::path& cache_dir, const std::string& repo_id);

  const std::filesystem::path& folder() const { return folder_; }
  std::filesystem::path blob(const std::string& etag) const { return folder_ / "blobs" / etag; }
  std::filesystem::path snapshot(const std::string& commit) const { return folder_ / "snapshots" / commit; }
  std::filesystem::path lock_file(const std::string& etag) const { return lock_folder_ / (etag + ".lock"); }

  // The commit a revision resolves to from the cache alone (a commit hash is itself).
  std::optional<std::string> cached_commit(const std::string& revision) const;
  void write_ref(const std::string& revision, const std::string& commit) const;
  // The snapshot entry of a file if it is present in the cache for that revision.
  std::optional<std::filesystem::path> cached_file(const std::string& revision, const std::string& filename) const;
  // Points snapshots/COMMIT/FILENAME at the blob (a relative symlink, or a copy where symlinks fail).
  std::filesystem::path link_snapshot(const std::string& commit, const std::string& filename, const std::string& etag) const;

 private:
  std::filesystem::path folder_;
  std::filesystem::path lock_folder_;
};

}  // namespace meganeura::hub
