// Trainer checkpoints: one safetensors file with the parameters under their own names (so
// Session::load_parameters reads it too), the optimizer state under "optimizer_state.", and the
// counters in the metadata.
#include <cstdio>
#include <string>

#include "meganeura/error.h"
#include "meganeura/safetensors.h"
#include "meganeura/train.h"

namespace meganeura::train {

namespace {

const char* const kStatePrefix = "optimizer_state.";
const char* const kKindKey = "meganeura.checkpoint";

std::string optimizer_name(const Optimizer& optimizer) {
  switch (optimizer.index()) {
    case 0: return "sgd";
    case 1: return "adam";
    default: return "adamw";
  }
}

int64_t parse_count(const std::filesystem::path& path, const std::map<std::string, std::string>& metadata,
                    const std::string& key) {
  auto it = metadata.find(key);
  if (it == metadata.end()) {
    throw Error("load_checkpoint(" + path.string() + "): the metadata has no \"" + key + "\"");
  }
  try {
    size_t used = 0;
    const int64_t value = std::stoll(it->second, &used);
    if (used == it->second.size() && value >= 0) return value;
  } catch (const std::exception&) {
  }
  throw Error("load_checkpoint(" + path.string() + "): \"" + key + "\" is '" + it->second +
              "', not a non-negative integer");
}

}  // namespace

void Trainer::save_checkpoint(const std::filesystem::path& path, const data::DataLoader& loader) const {
  // The session knows the parameter shapes; its own writer gives them to us through a scratch file.
  const std::filesystem::path scratch = path.string() + ".parameters.tmp";
  session_->save_parameters(scratch.string());
  try {
    const SafeTensorsFile parameters = SafeTensorsFile::open(scratch.string());
    std::vector<TensorToSave> tensors;
    for (const TensorInfo& t : parameters.tensors()) tensors.push_back({t.name, t.dtype, t.shape, t.bytes});
    const std::map<std::string, std::vector<float>> state = session_->read_optimizer_state();
    for (const auto& [name, values] : state) {
      tensors.push_back(tensor_view(kStatePrefix + name, {static_cast<int64_t>(values.size())}, values));
    }
    save_safetensors(path.string(), tensors,
                     {{"format", "pt"},
                      {kKindKey, "trainer"},
                      {"optimizer", optimizer_name(config_.optimizer)},
                      {"step", std::to_string(step_)},
                      {"micro_step", std::to_string(micro_step_)},
                      {"loader", loader.position().to_string()}});
  } catch (...) {
    std::filesystem::remove(scratch);
    throw;
  }
  std::filesystem::remove(scratch);
}

void Trainer::load_checkpoint(const std::filesystem::path& path, data::DataLoader& loader) {
  const SafeTensorsFile file = SafeTensorsFile::open(path.string());
  const auto& metadata = file.metadata();
  auto kind = metadata.find(kKindKey);
  if (kind == metadata.end() || kind->second != "trainer") {
    throw Error("load_checkpoint(" + path.string() +
                "): not a trainer checkpoint (no \"meganeura.checkpoint\": \"trainer\" in the metadata); "
                "load plain parameter files with Session::load_parameters");
  }
  auto optimizer = metadata.find("optimizer");
  const std::string expected = optimizer_name(config_.optimizer);
  if (optimizer == metadata.end() || optimizer->second != expected) {
    throw Error("load_checkpoint(" + path.string() + "): saved with optimizer '" +
                (optimizer == metadata.end() ? std::string("?") : optimizer->second) + "', this trainer uses '" +
                expected + "'");
  }
  auto position_text = metadata.find("loader");
  if (position_text == metadata.end()) {
    throw Error("load_checkpoint(" + path.string() + "): the metadata has no \"loader\" position");
  }
  const data::LoaderPosition position = data::LoaderPosition::parse(position_text->second);
  const int64_t step = parse_count(path, metadata, "step");
  const int64_t micro_step = parse_count(path, metadata, "micro_step");

  std::map<std::string, std::vector<float>> state;
  const std::string prefix = kStatePrefix;
  for (const TensorInfo& t : file.tensors()) {
    if (t.name.compare(0, prefix.size(), prefix) == 0) state[t.name.substr(prefix.size())] = file.to_f32(t.name);
  }
  // The loader first: it checks the seed and range without changing anything when they are wrong.
  loader.restore(position);
  session_->load_parameters(path.string());
  session_->write_optimizer_state(state);
  step_ = step;
  micro_step_ = micro_step;
}

}  // namespace meganeura::train
