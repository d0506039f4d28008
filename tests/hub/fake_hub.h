// Starts tests/hub/fake_hub.py on a free loopback port for the duration of a test, with its own
// repository folder, request log and Hugging Face cache.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "meganeura/hub.h"

namespace meganeura::testing_hub {

class FakeHub {
 public:
  FakeHub() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = std::filesystem::path(::testing::TempDir()) /
            ("meganeura_hub_" + std::string(info->test_suite_name()) + "_" + info->name() + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_ / "repos");
    std::filesystem::create_directories(root_ / "cache");
  }
  ~FakeHub() {
    stop();
    std::filesystem::remove_all(root_);
  }

  // Writes a file of a repository (before or after start: the server reads the folder per request).
  void add_file(const std::string& repo, const std::string& name, const std::string& content) {
    const auto path = root_ / "repos" / repo / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
  }
  std::filesystem::path repo_folder(const std::string& repo) const { return root_ / "repos" / repo; }

  void start() {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const std::string script = std::string(MEGANEURA_SOURCE_DIR) + "/tests/hub/fake_hub.py";
    const std::string repos = (root_ / "repos").string(), log = log_path().string();
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      ::dup2(fds[1], STDOUT_FILENO);
      ::close(fds[0]);
      ::close(fds[1]);
      ::execlp("python3", "python3", script.c_str(), "--root", repos.c_str(), "--log", log.c_str(), "--token",
               token().c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(fds[1]);
    std::string line;
    char c;
    while (::read(fds[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(fds[0]);
    ASSERT_EQ(line.rfind("PORT ", 0), 0u) << "fake hub did not start: '" << line << "'";
    port_ = std::stoi(line.substr(5));
  }

  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  static std::string token() { return "secret-token"; }
  std::string cache_dir() const { return (root_ / "cache" / "hub").string(); }
  std::string hf_home() const { return (root_ / "cache").string(); }
  std::filesystem::path log_path() const { return root_ / "requests.log"; }

  hub::HubOptions options() const {
    hub::HubOptions options;
    options.endpoint = endpoint();
    options.cache_dir = cache_dir();
    options.progress = false;
    options.connect_timeout_seconds = 5;
    options.stall_timeout_seconds = 10;
    return options;
  }

  // Lines "METHOD PATH RANGE" of every request so far; clear_log() starts a new count.
  std::vector<std::string> requests() const {
    std::vector<std::string> lines;
    std::ifstream in(log_path());
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }
  void clear_log() const { std::filesystem::remove(log_path()); }

 private:
  std::filesystem::path root_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace meganeura::testing_hub
