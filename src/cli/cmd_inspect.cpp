// `meganeura inspect FILE`: lists the tensors and metadata of a SafeTensors checkpoint (a file, a
// model.safetensors.index.json, or a folder holding either). A malformed file prints the reason and
// exits with status 1.
#include <algorithm>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <memory>
#include <string>

#include "cli/command.h"
#include "meganeura/error.h"
#include "meganeura/safetensors.h"

namespace {

void print_checkpoint(const std::string& path) {
  const meganeura::ShardedSafeTensors tensors = meganeura::SafeTensorsModel::open(path).tensors();
  const auto names = tensors.names();
  size_t name_width = 4;
  uint64_t total_bytes = 0;
  for (const auto& name : names) {
    name_width = std::max(name_width, name.size());
    total_bytes += tensors.tensor(name).bytes.size();
  }
  std::cout << path << ": " << names.size() << " tensors, " << total_bytes << " bytes in " << tensors.shards().size()
            << " file(s)\n";
  if (!tensors.metadata().empty()) {
    std::cout << "metadata:\n";
    for (const auto& [key, value] : tensors.metadata()) std::cout << "  " << key << ": " << value << "\n";
  }
  std::cout << std::left << std::setw(static_cast<int>(name_width)) << "name" << "  " << std::setw(5) << "dtype"
            << "  " << std::setw(16) << "shape" << "  bytes\n";
  for (const auto& name : names) {
    const auto& t = tensors.tensor(name);
    std::cout << std::left << std::setw(static_cast<int>(name_width)) << name << "  " << std::setw(5)
              << meganeura::dtype_name(t.dtype) << "  " << std::setw(16) << meganeura::format_shape(t.shape) << "  "
              << t.bytes.size() << "\n";
  }
}

void setup_inspect(CLI::App& app) {
  auto* sub = app.add_subcommand("inspect", "List the tensors (name, dtype, shape, bytes) and metadata of a SafeTensors file");
  auto path = std::make_shared<std::string>();
  sub->add_option("FILE", *path, "a .safetensors file, model.safetensors.index.json, or a folder holding one")->required();
  sub->callback([path] {
    try {
      print_checkpoint(*path);
    } catch (const meganeura::Error&) {
      throw;
    } catch (const std::exception& e) {  // e.g. out of memory: still a clean exit with status 1
      throw meganeura::Error(*path + ": " + e.what());
    }
  });
}

const bool registered = meganeura::cli::register_command("inspect", setup_inspect);

}  // namespace
