// Subcommands of the `meganeura` program register themselves: each lives in its own cmd_*.cpp with
//   static const bool registered = meganeura::cli::register_command("info", setup_info);
// where setup_info adds a CLI11 subcommand and its callback to the app.
#pragma once

#include <CLI/CLI.hpp>

namespace meganeura::cli {

using CommandSetup = void (*)(CLI::App& app);

bool register_command(const char* name, CommandSetup setup);

}  // namespace meganeura::cli
