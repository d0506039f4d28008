// The DDPM noise schedule and the DDIM reverse step, in double precision on the host: a sampling
// step touches a few hundred thousand values, far less than one UNet forward pass.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "meganeura/error.h"
#include "meganeura/models/diffusion.h"

namespace meganeura::models {

NoiseSchedule::NoiseSchedule(BetaSchedule kind, int64_t steps, double beta_start, double beta_end) {
  if (steps < 2) throw Error("NoiseSchedule: steps must be at least 2, got " + std::to_string(steps));
  if (kind == BetaSchedule::linear &&
      !(beta_start > 0 && beta_start <= beta_end && beta_end < 1)) {
    throw Error("NoiseSchedule: linear betas need 0 < beta_start <= beta_end < 1, got " + std::to_string(beta_start) +
                " and " + std::to_string(beta_end));
  }
  betas_.resize(static_cast<size_t>(steps));
  if (kind == BetaSchedule::linear) {
    for (int64_t t = 0; t < steps; ++t) {
      betas_[t] = beta_start + (beta_end - beta_start) * static_cast<double>(t) / static_cast<double>(steps - 1);
    }
  } else {
    // Nichol & Dhariwal (2021): ᾱ follows a squared cosine; the cap keeps the last steps finite.
    auto f = [steps](double t) {
      const double angle = (t / static_cast<double>(steps) + 0.008) / 1.008 * std::numbers::pi / 2;
      return std::cos(angle) * std::cos(angle);
    };
    for (int64_t t = 0; t < steps; ++t) {
      betas_[t] = std::min(1.0 - f(static_cast<double>(t + 1)) / f(static_cast<double>(t)), 0.999);
    }
  }
  alphas_cumprod_.resize(betas_.size());
  double product = 1.0;
  for (size_t t = 0; t < betas_.size(); ++t) {
    product *= 1.0 - betas_[t];
    alphas_cumprod_[t] = product;
  }
}

double NoiseSchedule::beta(int64_t t) const {
  if (t < 0 || t >= steps()) {
    throw Error("NoiseSchedule: timestep " + std::to_string(t) + " outside [0, " + std::to_string(steps()) + ")");
  }
  return betas_[static_cast<size_t>(t)];
}

double NoiseSchedule::alpha_cumprod(int64_t t) const {
  if (t == -1) return 1.0;
  if (t < -1 || t >= steps()) {
    throw Error("NoiseSchedule: timestep " + std::to_string(t) + " outside [-1, " + std::to_string(steps()) + ")");
  }
  return alphas_cumprod_[static_cast<size_t>(t)];
}

void NoiseSchedule::add_noise(std::span<const float> x0, std::span<const float> noise,
                              std::span<const int32_t> timesteps, std::span<float> noisy) const {
  const size_t rows = timesteps.size();
  if (rows == 0 || x0.size() % rows != 0 || noise.size() != x0.size() || noisy.size() != x0.size()) {
    throw Error("NoiseSchedule::add_noise: " + std::to_string(rows) + " timesteps for " + std::to_string(x0.size()) +
                " image values, " + std::to_string(noise.size()) + " noise values and " +
                std::to_string(noisy.size()) + " outputs; all three must hold the same whole number of rows");
  }
  const size_t row_size = x0.size() / rows;
  for (size_t row = 0; row < rows; ++row) {
    const double abar = alpha_cumprod(timesteps[row]);
    if (timesteps[row] < 0) throw Error("NoiseSchedule::add_noise: timestep -1 is not a noise level");
    const double signal_scale = std::sqrt(abar);
    const double noise_scale = std::sqrt(1.0 - abar);
    for (size_t i = row * row_size; i < (row + 1) * row_size; ++i) {
      noisy[i] = static_cast<float>(signal_scale * x0[i] + noise_scale * noise[i]);
    }
  }
}

std::vector<int32_t> NoiseSchedule::ddim_timesteps(int64_t count) const {
  if (count < 1 || count > steps()) {
    throw Error("NoiseSchedule: DDIM needs between 1 and " + std::to_string(steps()) + " sampling steps, got " +
                std::to_string(count));
  }
  const int64_t stride = steps() / count;
  std::vector<int32_t> timesteps;
  timesteps.reserve(static_cast<size_t>(count));
  for (int64_t i = count - 1; i >= 0; --i) timesteps.push_back(static_cast<int32_t>(i * stride));
  return timesteps;
}

void NoiseSchedule::ddim_step(std::span<float> x, std::span<const float> eps, int64_t t, int64_t t_prev,
                              double clip_x0) const {
  if (eps.size() != x.size()) {
    throw Error("NoiseSchedule::ddim_step: " + std::to_string(x.size()) + " values but " +
                std::to_string(eps.size()) + " noise predictions");
  }
  if (t < 0 || t_prev >= t) {
    throw Error("NoiseSchedule::ddim_step: steps go from t = " + std::to_string(t) + " down to an earlier t_prev, got " +
                std::to_string(t_prev));
  }
  const double abar = alpha_cumprod(t);
  const double abar_prev = alpha_cumprod(t_prev);
  const double sqrt_abar = std::sqrt(abar);
  const double sqrt_one_minus_abar = std::sqrt(1.0 - abar);
  const double sqrt_abar_prev = std::sqrt(abar_prev);
  const double sqrt_one_minus_abar_prev = std::sqrt(1.0 - abar_prev);
  for (size_t i = 0; i < x.size(); ++i) {
    double predicted_x0 = (x[i] - sqrt_one_minus_abar * eps[i]) / sqrt_abar;
    if (clip_x0 > 0) predicted_x0 = std::clamp(predicted_x0, -clip_x0, clip_x0);
    x[i] = static_cast<float>(sqrt_abar_prev * predicted_x0 + sqrt_one_minus_abar_prev * eps[i]);
  }
}

}  // namespace meganeura::models
