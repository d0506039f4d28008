// GoogleTest main shared by every test program. A Vulkan validation message fails the test that
// caused it: ctest runs each GoogleTest case as its own process (gtest_discover_tests), and this
// main exits non-zero when the validation layer spoke during the run, naming the test.
#include <gtest/gtest.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "gpu/validation.h"

namespace {

std::mutex messages_mutex;
std::vector<std::string> messages_of_current_test;

void collect(const std::string& message) {
  std::lock_guard lock(messages_mutex);
  messages_of_current_test.push_back(message);
}

class ValidationListener : public testing::EmptyTestEventListener {
 public:
  void OnTestStart(const testing::TestInfo&) override {
    std::lock_guard lock(messages_mutex);
    messages_of_current_test.clear();
  }
  void OnTestEnd(const testing::TestInfo& info) override {
    std::lock_guard lock(messages_mutex);
    for (const auto& message : messages_of_current_test) {
      std::fprintf(stderr, "[  FAILED  ] %s.%s: Vulkan validation layer: %s\n", info.test_suite_name(),
                   info.name(), message.c_str());
      failed = true;
    }
    messages_of_current_test.clear();
  }
  bool failed = false;
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  meganeura::gpu::set_validation_handler(collect);
  auto* listener = new ValidationListener;
  testing::UnitTest::GetInstance()->listeners().Append(listener);  // gtest owns it
  const int result = RUN_ALL_TESTS();
  return (result != 0 || listener->failed) ? 1 : 0;
}
