// The Session calls the trainer builds on: the step split into compute_gradients + apply_update (for
// accumulation) and optimizer state read/write (for checkpoints).
#include <random>

#include "meganeura/error.h"
#include "meganeura/session.h"
#include "train/train_test_util.h"

namespace meganeura {
namespace {

using train_testing::feed_random_batch;
using train_testing::tiny_mlp;

TEST(SessionSplitStep, GradientsThenUpdateEqualsStep) {
  Session whole = build_session(tiny_mlp(4), {.seed = 4, .optimizer = OptimizerSpec::adamw(0.05, 0.1)});
  Session split = build_session(tiny_mlp(4), {.seed = 4, .optimizer = OptimizerSpec::adamw(0.05, 0.1)});
  for (uint32_t step = 0; step < 3; ++step) {
    feed_random_batch(whole, step);
    feed_random_batch(split, step);
    whole.step();
    split.compute_gradients();
    EXPECT_EQ(split.read_gradient("fc1.weight"), whole.read_gradient("fc1.weight"));
    split.apply_update();
    EXPECT_EQ(split.read_loss(), whole.read_loss());
    for (const std::string& name : whole.parameter_names()) {
      EXPECT_EQ(split.read_parameter(name), whole.read_parameter(name)) << name << ", step " << step;
    }
  }
  EXPECT_EQ(split.read_optimizer_state(), whole.read_optimizer_state());
}

TEST(SessionSplitStep, SetGradientReplacesWhatTheUpdateUses) {
  Session session = build_session(tiny_mlp(4), {.seed = 4, .optimizer = OptimizerSpec::sgd(0.5)});
  feed_random_batch(session, 1);
  session.compute_gradients();
  const std::vector<float> before = session.read_parameter("fc2.bias");
  session.set_gradient("fc2.bias", std::vector<float>{1.0f, -2.0f, 0.5f});
  session.apply_update();
  const std::vector<float> after = session.read_parameter("fc2.bias");
  EXPECT_FLOAT_EQ(after[0], before[0] - 0.5f);
  EXPECT_FLOAT_EQ(after[1], before[1] + 1.0f);
  EXPECT_FLOAT_EQ(after[2], before[2] - 0.25f);
  EXPECT_THROW(session.set_gradient("fc2.bias", std::vector<float>{1.0f}), Error);
  EXPECT_THROW(session.set_gradient("x", std::vector<float>{1.0f}), Error);
}

TEST(SessionOptimizerState, RestoredStateContinuesExactly) {
  Session first = build_session(tiny_mlp(4), {.seed = 8, .optimizer = OptimizerSpec::adam(0.03)});
  for (uint32_t step = 0; step < 3; ++step) {
    feed_random_batch(first, step);
    first.step();
  }
  const auto state = first.read_optimizer_state();
  EXPECT_EQ(state.at("optimizer.scalars").size(), 11u);
  EXPECT_EQ(state.at("fc1.weight.m").size(), 30u);
  EXPECT_EQ(state.at("fc1.weight.v").size(), 30u);

  Session second = build_session(tiny_mlp(4), {.seed = 99, .optimizer = OptimizerSpec::adam(0.03)});
  for (const std::string& name : first.parameter_names()) second.set_parameter(name, first.read_parameter(name));
  second.write_optimizer_state(state);
  feed_random_batch(first, 7);
  feed_random_batch(second, 7);
  first.step();
  second.step();
  for (const std::string& name : first.parameter_names()) {
    EXPECT_EQ(second.read_parameter(name), first.read_parameter(name)) << name;
  }
}

TEST(SessionOptimizerState, MismatchesAreErrorsThatChangeNothing) {
  Session adam = build_session(tiny_mlp(4), {.seed = 8, .optimizer = OptimizerSpec::adam(0.03)});
  feed_random_batch(adam, 1);
  adam.step();
  const auto saved = adam.read_optimizer_state();

  Session sgd = build_session(tiny_mlp(4), {.seed = 8, .optimizer = OptimizerSpec::sgd(0.1, 0.9)});
  auto missing = saved;
  missing.erase("fc2.weight.m");
  try {
    sgd.write_optimizer_state(missing);
    FAIL() << "state without fc2.weight.m accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fc2.weight.m"), std::string::npos) << e.what();
  }
  auto wrong_size = saved;
  wrong_size["fc1.bias.m"].push_back(1.0f);
  const auto before = adam.read_optimizer_state();
  EXPECT_THROW(adam.write_optimizer_state(wrong_size), Error);
  EXPECT_EQ(adam.read_optimizer_state(), before);

  Session no_optimizer = build_session(tiny_mlp(4), {.seed = 8});
  EXPECT_THROW(no_optimizer.read_optimizer_state(), Error);
  EXPECT_THROW(no_optimizer.compute_gradients(), Error);
  Session inference = build_inference_session(tiny_mlp(4));
  EXPECT_THROW(inference.apply_update(), Error);
}

}  // namespace
}  // namespace meganeura
