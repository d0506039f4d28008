#include "gpu/validation.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>

namespace meganeura::gpu {
namespace {
std::mutex handler_mutex;
ValidationHandler current_handler = nullptr;
std::atomic<std::size_t> message_count{0};
}  // namespace

void set_validation_handler(ValidationHandler handler) {
  std::lock_guard lock(handler_mutex);
  current_handler = handler;
}

void report_validation_message(const std::string& message) {
  ++message_count;
  std::lock_guard lock(handler_mutex);
  if (current_handler) {
    current_handler(message);
  } else {
    std::cerr << "[vulkan validation] " << message << "\n";
  }
}

std::size_t validation_message_count() { return message_count.load(); }

bool validation_requested() {
  const char* value = std::getenv("MEGANEURA_VALIDATION");
  return value && std::strcmp(value, "1") == 0;
}

}  // namespace meganeura::gpu
