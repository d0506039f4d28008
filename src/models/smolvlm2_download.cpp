// SmolVLM checkpoints from the Hugging Face Hub, apart from the rest so that programs which never
// download (benchmarks with random weights) do not link the HTTP client.
#include <filesystem>

#include "meganeura/error.h"
#include "meganeura/models/smolvlm2.h"
#include "meganeura/safetensors.h"

namespace meganeura::models {

SmolVlmCheckpoint SmolVlmCheckpoint::download(const std::string& repo_id, const std::string& revision) {
  return open(SafeTensorsModel::download(repo_id, revision).directory());
}

SmolVlmCheckpoint SmolVlmCheckpoint::open_or_download(const std::string& directory_or_repo_id) {
  if (std::filesystem::exists(directory_or_repo_id)) return open(directory_or_repo_id);
  if (directory_or_repo_id.find('/') == std::string::npos || directory_or_repo_id.front() == '.' ||
      directory_or_repo_id.front() == '/')
    throw Error("model \"" + directory_or_repo_id +
                "\" is neither an existing folder nor a Hub repository id such as "
                "HuggingFaceTB/SmolVLM2-256M-Video-Instruct");
  return download(directory_or_repo_id);
}

}  // namespace meganeura::models
