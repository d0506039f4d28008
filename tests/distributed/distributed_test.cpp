// Data-parallel training over MPI: mpirun starts this very program as 2 or 3 ranks (the
// DistributedWorker case), and the results must equal one process training on the combined batch.
// A rank that dies or hangs must make the run fail within a bounded time.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "meganeura/distributed.h"
#include "meganeura/error.h"
#include "meganeura/train.h"
#include "train/train_test_util.h"

namespace meganeura {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kRowsPerRank = 4;
constexpr int64_t kEpochs = 2;

struct RunResult {
  std::vector<float> losses;
  std::map<std::string, std::vector<float>> parameters;
};

// The same run, as one process (reducer == nullptr, the whole combined batch in one session) or as
// one rank of `ranks`. Ranks other than 0 start from other seeds: the broadcast must fix that.
RunResult train_run(int ranks, train::GradientReducer* reducer, int64_t accumulation_steps = 1,
                    const std::function<void(int64_t)>& after_step = {}) {
  const data::Dataset dataset = train_testing::synthetic_dataset(48, 11);
  const int rank = reducer ? reducer->rank() : 0;
  Session session = build_session(train_testing::tiny_mlp(reducer ? kRowsPerRank : kRowsPerRank * ranks),
                                  {.seed = 3 + 100 * static_cast<uint64_t>(rank)});
  train::TrainConfig config;
  config.optimizer = train::Sgd{.lr = 0.2, .momentum = 0.9};
  config.progress = train::Progress::off;
  config.reducer = reducer;
  config.accumulation_steps = accumulation_steps;
  train::Trainer trainer(session, config);
  if (after_step) trainer.on_step([&](const train::StepInfo& info) { after_step(info.step); });
  data::DataLoader loader(dataset, {.batch_size = kRowsPerRank * ranks, .drop_last = true, .seed = 5});
  RunResult result;
  result.losses = trainer.train(loader, kEpochs).losses;
  for (const std::string& name : session.parameter_names()) result.parameters[name] = session.read_parameter(name);
  return result;
}

void write_result(const RunResult& result, const fs::path& path) {
  std::ofstream file(path);
  file.precision(9);
  file << "losses";
  for (float loss : result.losses) file << ' ' << loss;
  file << '\n';
  for (const auto& [name, values] : result.parameters) {
    file << name;
    for (float v : values) file << ' ' << v;
    file << '\n';
  }
}

RunResult read_result(const fs::path& path) {
  std::ifstream file(path);
  if (!file) throw Error("no result file " + path.string());
  RunResult result;
  std::string line;
  while (std::getline(file, line)) {
    std::istringstream fields(line);
    std::string name;
    fields >> name;
    std::vector<float> values;
    for (float v; fields >> v;) values.push_back(v);
    if (name == "losses") {
      result.losses = values;
    } else {
      result.parameters[name] = values;
    }
  }
  return result;
}

double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += double(want[i]) * want[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

struct Launch {
  int exit_code = 0;
  std::string output;
  double seconds = 0;
};

// mpirun with this program as every rank, running the DistributedWorker case in `mode`.
Launch launch(int ranks, const std::string& mode, const fs::path& out_dir, const std::string& extra_env = "") {
  const fs::path self = fs::read_symlink("/proc/self/exe");
  // As root (CI) Open MPI wants both the flag and the variables; more ranks than cores need
  // --oversubscribe; single-copy shared memory is off because containers often forbid it.
  const std::string command = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 MEGANEURA_DISTRIBUTED_MODE=" +
                              mode + " MEGANEURA_DISTRIBUTED_OUT='" + out_dir.string() + "' " + extra_env +
                              " timeout 240 mpirun --oversubscribe --allow-run-as-root"
                              " --mca btl_vader_single_copy_mechanism none -np " +
                              std::to_string(ranks) + " '" + self.string() +
                              "' --gtest_filter=DistributedWorker.Run 2>&1";
  const auto start = std::chrono::steady_clock::now();
  Launch result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw Error("cannot start mpirun");
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("meganeura_distributed_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// The rank side: runs only under mpirun, started by the tests below.
TEST(DistributedWorker, Run) {
  const char* mode = std::getenv("MEGANEURA_DISTRIBUTED_MODE");
  const char* out = std::getenv("MEGANEURA_DISTRIBUTED_OUT");
  if (!mode || !out || !distributed::launched_by_mpi()) GTEST_SKIP() << "started by the Distributed tests via mpirun";
  const std::string how = mode;
  // "accumulate": two micro-batches per update, and buckets of 64 bytes so that every step reduces
  // many buckets on the reducer thread while the next gradients are read back.
  const bool accumulate = how == "accumulate";
  distributed::MpiReducer mpi({.bucket_bytes = accumulate ? 64u : size_t{4} << 20});
  std::function<void(int64_t)> after_step;
  if (how == "die" && mpi.rank() == 1) {
    after_step = [](int64_t step) {
      if (step == 2) std::_Exit(3);  // a crash: no cleanup, no MPI_Finalize
    };
  } else if (how == "hang" && mpi.rank() == 1) {
    after_step = [](int64_t step) {
      if (step == 2) std::this_thread::sleep_for(std::chrono::seconds(200));
    };
  }
  const RunResult result = train_run(mpi.world_size(), &mpi, accumulate ? 2 : 1, after_step);
  write_result(result, fs::path(out) / ("rank" + std::to_string(mpi.rank()) + ".txt"));
}

void expect_matches_single_process(int ranks, const std::string& mode = "train") {
  const fs::path dir = fresh_dir(mode + std::to_string(ranks));
  const Launch run = launch(ranks, mode, dir);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const int64_t accumulation = mode == "accumulate" ? 2 : 1;
  const RunResult single = train_run(ranks, nullptr, accumulation);
  ASSERT_EQ(single.losses.size(), static_cast<size_t>(kEpochs * 48 / (kRowsPerRank * ranks * accumulation)));
  const RunResult rank0 = read_result(dir / "rank0.txt");
  EXPECT_LT(relative_error(rank0.losses, single.losses), 1e-4);
  ASSERT_EQ(rank0.parameters.size(), single.parameters.size());
  for (const auto& [name, values] : single.parameters) {
    EXPECT_LT(relative_error(rank0.parameters.at(name), values), 1e-4) << name;
  }
  // Training moved the parameters, so the comparison above says something.
  EXPECT_LT(single.losses.back(), single.losses.front());
  // Every rank holds exactly the same parameters: they were broadcast and saw the same averages.
  for (int r = 1; r < ranks; ++r) {
    const RunResult other = read_result(dir / ("rank" + std::to_string(r) + ".txt"));
    EXPECT_EQ(other.parameters, rank0.parameters) << "rank " << r;
    EXPECT_EQ(other.losses, rank0.losses) << "rank " << r;
  }
  fs::remove_all(dir);
}

TEST(Distributed, TwoRanksMatchOneProcessOnTheCombinedBatch) { expect_matches_single_process(2); }

TEST(Distributed, ThreeRanksMatchOneProcessOnTheCombinedBatch) { expect_matches_single_process(3); }

TEST(Distributed, ManySmallBucketsAndAccumulationMatchOneProcess) { expect_matches_single_process(2, "accumulate"); }

TEST(Distributed, RunIsDeterministicForASeed) {
  const fs::path first = fresh_dir("first"), second = fresh_dir("second");
  const Launch a = launch(2, "train", first);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  const Launch b = launch(2, "train", second);
  ASSERT_EQ(b.exit_code, 0) << b.output;
  const RunResult x = read_result(first / "rank0.txt"), y = read_result(second / "rank0.txt");
  EXPECT_EQ(x.losses, y.losses);
  EXPECT_EQ(x.parameters, y.parameters);
  fs::remove_all(first);
  fs::remove_all(second);
}

TEST(Distributed, ARankThatDiesEndsTheRunWithAnError) {
  const fs::path dir = fresh_dir("die");
  const Launch run = launch(2, "die", dir, "MEGANEURA_MPI_TIMEOUT=20");
  EXPECT_NE(run.exit_code, 0) << run.output;
  EXPECT_LT(run.seconds, 120) << run.output;
  EXPECT_FALSE(fs::exists(dir / "rank0.txt")) << "rank 0 finished training without its peer";
  // mpirun names the rank that left, or rank 0's deadline names the stuck all-reduce.
  EXPECT_TRUE(run.output.find("exited with non-zero status") != std::string::npos ||
              run.output.find("did not finish") != std::string::npos ||
              run.output.find("Another rank has probably died") != std::string::npos)
      << run.output;
  fs::remove_all(dir);
}

TEST(Distributed, ARankThatHangsMakesTheOthersFailAfterTheTimeout) {
  const fs::path dir = fresh_dir("hang");
  const Launch run = launch(2, "hang", dir, "MEGANEURA_MPI_TIMEOUT=3");
  EXPECT_NE(run.exit_code, 0) << run.output;
  EXPECT_LT(run.seconds, 120) << run.output;
  EXPECT_NE(run.output.find("MPI gradient all-reduce did not finish within 3"), std::string::npos) << run.output;
  EXPECT_FALSE(fs::exists(dir / "rank0.txt"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace meganeura
