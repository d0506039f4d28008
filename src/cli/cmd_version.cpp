#include <iostream>

#include "cli/command.h"

namespace {
void setup_version(CLI::App& app) {
  auto* sub = app.add_subcommand("version", "Print the library version");
  sub->callback([] { std::cout << "meganeura 0.1.0\n"; });
}
const bool registered = meganeura::cli::register_command("version", setup_version);
}  // namespace
