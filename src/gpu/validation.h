// Routing of Vulkan validation-layer messages. The layer is enabled when MEGANEURA_VALIDATION=1
// (the test suite sets it); each message it emits is passed to the installed handler, so a test can
// fail when the layer reports anything.
#pragma once

#include <cstddef>
#include <string>

namespace meganeura::gpu {

using ValidationHandler = void (*)(const std::string& message);

// Installs the handler (nullptr restores the default, which prints to stderr).
void set_validation_handler(ValidationHandler handler);

// Called by the debug-utils messenger for every warning or error the layer emits.
void report_validation_message(const std::string& message);

// Total messages reported in this process.
std::size_t validation_message_count();

// True when MEGANEURA_VALIDATION=1 asks for the validation layer.
bool validation_requested();

}  // namespace meganeura::gpu
