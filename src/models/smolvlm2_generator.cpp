// SmolVLM2 generation: the prompt (text and images) prefills on a vlm_decoding_graph session that
// borrows the text weights of a SmolLM2 Generator, which then decodes with its own session.
#include <map>
#include <tuple>

#include "meganeura/error.h"
#include "meganeura/models/smolvlm2.h"
#include "meganeura/session.h"

namespace meganeura::models {

struct VlmGenerator::Impl {
  const SmolVlmCheckpoint* checkpoint = nullptr;
  Generator text;  // owns the text weights; prefill sessions borrow them, so it is declared first
  std::map<std::tuple<int64_t, int64_t, bool>, Session> prefill;

  Impl(const SmolVlmCheckpoint& c, int64_t max_positions, DType weight_storage)
      : checkpoint(&c), text(c.text(), max_positions, weight_storage) {}

  // The session for this prompt and these images, its image inputs set.
  Session& prepare(std::span<const int32_t> ids, std::span<const float> pixel_values, int64_t images, bool all_logits) {
    const SmolVlmConfig& config = checkpoint->config();
    if (ids.empty()) throw Error("VlmGenerator: the prompt is empty; give at least one token");
    if (images <= 0) throw Error("VlmGenerator: at least one image is needed, got " + std::to_string(images));
    const SmolVlmVisionConfig& v = config.vision;
    const int64_t per_image = v.num_channels * v.image_size * v.image_size;
    if (static_cast<int64_t>(pixel_values.size()) != images * per_image)
      throw Error("VlmGenerator: pixel_values holds " + std::to_string(pixel_values.size()) + " values; " +
                  std::to_string(images) + " image(s) of [" + std::to_string(v.num_channels) + ", " +
                  std::to_string(v.image_size) + ", " + std::to_string(v.image_size) + "] need " +
                  std::to_string(images * per_image));
    const int64_t bucket = prefill_bucket(static_cast<int64_t>(ids.size()), text.max_positions());
    const std::vector<int32_t> merge_index = image_merge_index(config, ids, images, bucket);
    auto it = prefill.find({images, bucket, all_logits});
    if (it == prefill.end()) {
      Session session = text.build_prefill(vlm_decoding_graph(config, images, bucket, text.max_positions(), all_logits));
      checkpoint->upload_vision(session);
      it = prefill.emplace(std::tuple{images, bucket, all_logits}, std::move(session)).first;
    }
    Session& session = it->second;
    session.set_input("pixel_values", pixel_values);
    session.set_input("merge_index", std::span<const int32_t>(merge_index));
    return session;
  }
};

VlmGenerator::VlmGenerator(const SmolVlmCheckpoint& checkpoint, int64_t max_positions, DType weight_storage)
    : impl_(std::make_unique<Impl>(checkpoint, max_positions, weight_storage)) {}
VlmGenerator::VlmGenerator(VlmGenerator&&) noexcept = default;
VlmGenerator& VlmGenerator::operator=(VlmGenerator&&) noexcept = default;
VlmGenerator::~VlmGenerator() = default;

std::vector<int32_t> VlmGenerator::generate(std::span<const int32_t> ids, std::span<const float> pixel_values,
                                            int64_t images, const SamplingOptions& options) {
  Session& session = impl_->prepare(ids, pixel_values, images, false);
  return impl_->text.generate(session, ids, options);
}

std::vector<float> VlmGenerator::prompt_logits(std::span<const int32_t> ids, std::span<const float> pixel_values,
                                               int64_t images) {
  Session& session = impl_->prepare(ids, pixel_values, images, true);
  return impl_->text.prompt_logits(session, ids);
}

const GenerationStats& VlmGenerator::last_stats() const { return impl_->text.last_stats(); }
int64_t VlmGenerator::max_positions() const { return impl_->text.max_positions(); }
size_t VlmGenerator::prefill_sessions_built() const { return impl_->prefill.size(); }

}  // namespace meganeura::models
