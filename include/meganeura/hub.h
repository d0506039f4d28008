// meganeura/hub.h — download files from the Hugging Face Hub into the cache the Python tools use.
//
//   // ~/.cache/huggingface/hub/models--HuggingFaceTB--SmolLM2-135M/snapshots/<commit>/config.json
//   std::string config = meganeura::hub::download_file("HuggingFaceTB/SmolLM2-135M", "config.json");
//
//   // Every file of a revision matching the globs; returns the snapshot folder.
//   std::string folder = meganeura::hub::download_snapshot("HuggingFaceTB/SmolLM2-135M", "main",
//                                                          {"*.json", "*.safetensors"});
//
// The cache layout is exactly that of the Python huggingface_hub package
// ($HF_HOME/hub/models--ORG--NAME/{blobs,snapshots/COMMIT,refs/REVISION}), so each reuses what the
// other downloaded. HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE are honoured.
// Link meganeura::meganeura_http.
#pragma once

#include <string>
#include <vector>

namespace meganeura::hub {

struct HubOptions {
  std::string endpoint = "https://huggingface.co";
  std::string token;      // sent as "Authorization: Bearer" to the endpoint; empty for none
  std::string cache_dir;  // the "hub" folder itself
  bool offline = false;   // use only the cache, make no request
  bool progress = true;   // a progress bar on stderr, only when stderr is a terminal
  int max_attempts = 5;   // per file; each retry resumes where the previous attempt stopped
  long connect_timeout_seconds = 10;
  long stall_timeout_seconds = 60;  // abort a transfer that moves no byte for this long

  // endpoint from HF_ENDPOINT; token from HF_TOKEN or $HF_HOME/token; cache_dir from HF_HUB_CACHE,
  // $HF_HOME/hub or ~/.cache/huggingface/hub; offline from HF_HUB_OFFLINE (1, true, yes, on).
  static HubOptions from_environment();
};

struct RepoFiles {
  std::string commit;               // 40-hex commit the revision points to
  std::vector<std::string> files;   // paths relative to the repository root
};

// Lists the files of a revision (one request to /api/models/REPO/revision/REV).
RepoFiles list_files(const std::string& repo_id, const std::string& revision = "main",
                     const HubOptions& options = HubOptions::from_environment());

// Downloads one file (or finds it in the cache) and returns its path in the snapshot folder.
// A commit-hash revision already cached makes no request; a branch makes one light request.
std::string download_file(const std::string& repo_id, const std::string& filename,
                          const std::string& revision = "main",
                          const HubOptions& options = HubOptions::from_environment());

// Downloads every file of the revision that matches one of `include` (all when empty) and none of
// `exclude` (globs as in Python's fnmatch: `*` also matches `/`). Returns the snapshot folder.
std::string download_snapshot(const std::string& repo_id, const std::string& revision = "main",
                              const std::vector<std::string>& include = {},
                              const std::vector<std::string>& exclude = {},
                              const HubOptions& options = HubOptions::from_environment());

// The cache folder of a repository: CACHE/models--ORG--NAME.
std::string repo_cache_folder(const std::string& repo_id, const HubOptions& options);

}  // namespace meganeura::hub
