// The `meganeura` command-line program.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "meganeura/error.h"

namespace meganeura::cli {
namespace {
struct Registration {
  std::string name;
  CommandSetup setup;
};
std::vector<Registration>& registry() {
  static std::vector<Registration> commands;
  return commands;
}
}  // namespace

bool register_command(const char* name, CommandSetup setup) {
  registry().push_back({name, setup});
  return true;
}

}  // namespace meganeura::cli

int main(int argc, char** argv) {
  CLI::App app{"Meganeura: train and run neural networks on any GPU through Vulkan"};
  app.require_subcommand(1);
  auto commands = meganeura::cli::registry();
  std::sort(commands.begin(), commands.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const auto& command : commands) command.setup(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const meganeura::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
