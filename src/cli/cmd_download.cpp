// `meganeura download REPO_ID [--revision R] [--include GLOB]...`: fetches a Hub repository (or the
// files matching the globs) into the Hugging Face cache and prints the snapshot folder.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "meganeura/error.h"
#include "meganeura/hub.h"

namespace {

struct DownloadArgs {
  std::string repo_id;
  std::string revision = "main";
  std::vector<std::string> include;
  std::vector<std::string> exclude;
};

void setup_download(CLI::App& app) {
  auto* sub = app.add_subcommand("download", "Download a Hugging Face Hub repository into the shared cache");
  auto args = std::make_shared<DownloadArgs>();
  sub->add_option("REPO_ID", args->repo_id, "repository, e.g. HuggingFaceTB/SmolLM2-135M")->required();
  sub->add_option("--revision", args->revision, "branch, tag or commit hash")->capture_default_str();
  sub->add_option("--include", args->include, "only files matching these globs (repeatable)");
  sub->add_option("--exclude", args->exclude, "skip files matching these globs (repeatable)");
  sub->footer("Honours HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE.");
  sub->callback([args] {
    try {
      std::cout << meganeura::hub::download_snapshot(args->repo_id, args->revision, args->include, args->exclude)
                << "\n";
    } catch (const meganeura::Error&) {
      throw;
    } catch (const std::exception& e) {  // filesystem errors and the like: still exit status 1
      throw meganeura::Error(args->repo_id + ": " + e.what());
    }
  });
}

const bool registered = meganeura::cli::register_command("download", setup_download);

}  // namespace
