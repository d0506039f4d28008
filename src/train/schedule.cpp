// Learning-rate schedule and the mapping of the trainer's optimizers onto OptimizerSpec.
#include <cmath>
#include <numbers>

#include "meganeura/error.h"
#include "meganeura/train.h"

namespace meganeura::train {

double learning_rate_at(const Schedule& schedule, double lr, int64_t step, int64_t total_steps) {
  if (step < 0) throw Error("learning_rate_at: step " + std::to_string(step) + " is negative");
  if (step < schedule.warmup_steps) {
    return lr * static_cast<double>(step + 1) / static_cast<double>(schedule.warmup_steps);
  }
  if (!schedule.cosine) return lr;
  const int64_t span = schedule.decay_steps > 0 ? schedule.decay_steps : total_steps - schedule.warmup_steps;
  const double min_lr = lr * schedule.min_lr_ratio;
  const int64_t since = step - schedule.warmup_steps;
  if (span <= 0 || since >= span) return min_lr;
  const double progress = static_cast<double>(since) / static_cast<double>(span);
  return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

OptimizerSpec optimizer_spec(const TrainConfig& config) {
  OptimizerSpec spec = std::visit(
      [](const auto& o) -> OptimizerSpec {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, Sgd>) {
          OptimizerSpec s = OptimizerSpec::sgd(o.lr, o.momentum);
          s.weight_decay = o.weight_decay;
          return s;
        } else if constexpr (std::is_same_v<T, Adam>) {
          return OptimizerSpec::adam(o.lr, o.beta1, o.beta2, o.eps);
        } else {
          return OptimizerSpec::adamw(o.lr, o.weight_decay, o.beta1, o.beta2, o.eps);
        }
      },
      config.optimizer);
  spec.clip_global_norm = config.clip_global_norm;
  return spec;
}

}  // namespace meganeura::train
