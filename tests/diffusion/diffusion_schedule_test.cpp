// The DDPM noise schedule and the DDIM step against the formulas computed here in double precision.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "meganeura/error.h"
#include "meganeura/models/diffusion.h"

namespace meganeura::models {
namespace {

std::vector<float> random_values(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(count);
  for (float& v : values) v = normal(rng);
  return values;
}

// ᾱ_t by the definition, independently of the class.
std::vector<double> linear_alpha_cumprod(int64_t steps, double start, double end) {
  std::vector<double> abar;
  double product = 1;
  for (int64_t t = 0; t < steps; ++t) {
    product *= 1 - (start + (end - start) * static_cast<double>(t) / static_cast<double>(steps - 1));
    abar.push_back(product);
  }
  return abar;
}

TEST(DiffusionSchedule, LinearBetasAndTheirProducts) {
  const NoiseSchedule schedule;
  ASSERT_EQ(schedule.steps(), 1000);
  EXPECT_DOUBLE_EQ(schedule.beta(0), 1e-4);
  EXPECT_DOUBLE_EQ(schedule.beta(999), 0.02);
  EXPECT_NEAR(schedule.beta(500), 1e-4 + (0.02 - 1e-4) * 500.0 / 999.0, 1e-15);
  const std::vector<double> expected = linear_alpha_cumprod(1000, 1e-4, 0.02);
  for (int64_t t : {0, 1, 10, 250, 999}) EXPECT_NEAR(schedule.alpha_cumprod(t), expected[t], 1e-12) << t;
  EXPECT_DOUBLE_EQ(schedule.alpha_cumprod(-1), 1.0);
  // The last step leaves almost pure noise (DDPM's ᾱ_T ≈ 4e-5).
  EXPECT_LT(schedule.alpha_cumprod(999), 1e-4);
  EXPECT_GT(schedule.alpha_cumprod(999), 1e-5);
  EXPECT_THROW(schedule.beta(1000), Error);
  EXPECT_THROW(schedule.alpha_cumprod(-2), Error);
}

TEST(DiffusionSchedule, CosineFollowsTheSquaredCosine) {
  const NoiseSchedule schedule(BetaSchedule::cosine, 1000);
  auto f = [](double t) {
    const double angle = (t / 1000.0 + 0.008) / 1.008 * M_PI / 2;
    return std::cos(angle) * std::cos(angle);
  };
  for (int64_t t : {0, 100, 500, 900}) EXPECT_NEAR(schedule.alpha_cumprod(t), f(t + 1) / f(0), 1e-9) << t;
  for (int64_t t = 1; t < 1000; ++t) ASSERT_LT(schedule.alpha_cumprod(t), schedule.alpha_cumprod(t - 1)) << t;
  EXPECT_LE(schedule.beta(999), 0.999);
}

TEST(DiffusionSchedule, AddNoiseMixesEachRowAtItsTimestep) {
  const NoiseSchedule schedule;
  const size_t row = 12;
  const std::vector<int32_t> timesteps = {0, 420, 999};
  const std::vector<float> x0 = random_values(row * 3, 1);
  const std::vector<float> noise = random_values(row * 3, 2);
  std::vector<float> noisy(row * 3);
  schedule.add_noise(x0, noise, timesteps, noisy);
  const std::vector<double> abar = linear_alpha_cumprod(1000, 1e-4, 0.02);
  for (size_t r = 0; r < 3; ++r) {
    for (size_t i = r * row; i < (r + 1) * row; ++i) {
      const double expected = std::sqrt(abar[timesteps[r]]) * x0[i] + std::sqrt(1 - abar[timesteps[r]]) * noise[i];
      EXPECT_NEAR(noisy[i], expected, 1e-6) << "row " << r << " index " << i;
    }
  }
  std::vector<float> short_output(row);
  EXPECT_THROW(schedule.add_noise(x0, noise, timesteps, short_output), Error);
  const std::vector<int32_t> out_of_range = {0, 1, 1000};
  EXPECT_THROW(schedule.add_noise(x0, noise, out_of_range, noisy), Error);
}

TEST(DiffusionSchedule, DdimTimestepsUseLeadingSpacing) {
  const NoiseSchedule schedule;
  const std::vector<int32_t> fifty = schedule.ddim_timesteps(50);
  ASSERT_EQ(fifty.size(), 50u);
  EXPECT_EQ(fifty.front(), 980);
  EXPECT_EQ(fifty[1], 960);
  EXPECT_EQ(fifty.back(), 0);
  EXPECT_EQ(schedule.ddim_timesteps(3), (std::vector<int32_t>{666, 333, 0}));
  EXPECT_EQ(schedule.ddim_timesteps(1), (std::vector<int32_t>{0}));
  EXPECT_THROW(schedule.ddim_timesteps(0), Error);
  EXPECT_THROW(schedule.ddim_timesteps(1001), Error);
}

TEST(DiffusionSchedule, DdimStepMatchesTheFormula) {
  const NoiseSchedule schedule;
  const std::vector<double> abar = linear_alpha_cumprod(1000, 1e-4, 0.02);
  const std::vector<float> start = random_values(40, 3);
  const std::vector<float> eps = random_values(40, 4);
  for (auto [t, previous] : {std::pair<int64_t, int64_t>{980, 960}, {500, 250}, {20, 0}, {0, -1}}) {
    std::vector<float> x = start;
    schedule.ddim_step(x, eps, t, previous);
    const double abar_prev = previous < 0 ? 1.0 : abar[previous];
    for (size_t i = 0; i < x.size(); ++i) {
      const double x0 = (start[i] - std::sqrt(1 - abar[t]) * eps[i]) / std::sqrt(abar[t]);
      const double expected = std::sqrt(abar_prev) * x0 + std::sqrt(1 - abar_prev) * eps[i];
      EXPECT_NEAR(x[i], expected, 1e-5 * std::max(1.0, std::abs(expected))) << "t " << t << " index " << i;
    }
  }
}

// With the true noise, one DDIM step lands exactly on the noising of the same image at t_prev,
// and the final step returns the image itself.
TEST(DiffusionSchedule, DdimStepWithTheTrueNoiseIsExact) {
  const NoiseSchedule schedule;
  const std::vector<float> x0 = random_values(30, 5);
  const std::vector<float> noise = random_values(30, 6);
  std::vector<float> x(30), expected(30);
  const std::vector<int32_t> at_t = {700};
  const std::vector<int32_t> at_previous = {300};
  schedule.add_noise(x0, noise, at_t, x);
  schedule.add_noise(x0, noise, at_previous, expected);
  schedule.ddim_step(x, noise, 700, 300);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], expected[i], 2e-5) << i;
  schedule.ddim_step(x, noise, 300, -1);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], x0[i], 2e-5) << i;
}

TEST(DiffusionSchedule, ClippingBoundsThePredictedImage) {
  const NoiseSchedule schedule;
  std::vector<float> x = random_values(50, 7);
  for (float& v : x) v *= 4;
  const std::vector<float> eps = random_values(50, 8);
  schedule.ddim_step(x, eps, 100, -1, /*clip_x0=*/1.0);
  bool reached_the_bound = false;
  for (float v : x) {
    EXPECT_LE(std::abs(v), 1.0f + 1e-6f);
    reached_the_bound |= std::abs(v) == 1.0f;
  }
  EXPECT_TRUE(reached_the_bound);
  std::vector<float> wrong_size(49);
  EXPECT_THROW(schedule.ddim_step(x, wrong_size, 100, -1), Error);
  EXPECT_THROW(schedule.ddim_step(x, eps, 100, 100), Error);
  EXPECT_THROW(NoiseSchedule(BetaSchedule::linear, 1000, 0.02, 1e-4), Error);
  EXPECT_THROW(NoiseSchedule(BetaSchedule::linear, 1), Error);
}

}  // namespace
}  // namespace meganeura::models
