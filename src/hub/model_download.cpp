// SafeTensorsModel::download: the files a model needs (config, tokenizer, weights — sharded or
// not) from the top level of a Hub repository, then the snapshot opened as a checkpoint.
#include "meganeura/hub.h"
#include "meganeura/safetensors.h"

namespace meganeura {

SafeTensorsModel SafeTensorsModel::download(const std::string& repo_id, const std::string& revision) {
  const std::string folder = hub::download_snapshot(repo_id, revision, {"*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"},
                                                    {"*/*"}, hub::HubOptions::from_environment());
  return SafeTensorsModel::open(folder);
}

}  // namespace meganeura
