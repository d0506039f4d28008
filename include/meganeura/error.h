// meganeura/error.h — the one exception type the library throws.
//
//   try {
//     session.set_input("x", data);
//   } catch (const meganeura::Error& e) {
//     std::cerr << e.what() << "\n";  // "set_input("x"): expected 25088 floats for shape [32, 784], got 784"
//   }
//
// Every message names what was wrong and, where possible, what to do about it.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace meganeura {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// The GPU ran out of memory, or an allocation exceeded a device limit.
class OutOfMemoryError : public Error {
 public:
  using Error::Error;
};

// The Vulkan device was lost (driver reset, hang); the session cannot continue.
class DeviceLostError : public Error {
 public:
  using Error::Error;
};

// "[32, 784]" — used in error messages throughout the library.
std::string format_shape(const std::vector<int64_t>& shape);

}  // namespace meganeura
