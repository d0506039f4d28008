#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "fake_hub.h"
#include "gpu/sha256.h"
#include "meganeura/error.h"
#include "meganeura/hub.h"
#include "meganeura/safetensors.h"

using namespace meganeura;
using meganeura::testing_hub::FakeHub;
namespace fs = std::filesystem;

namespace {

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string sha256_hex(const std::string& data) {
  return gpu::to_hex(gpu::Sha256::of(std::as_bytes(std::span(data.data(), data.size()))));
}

size_t count_matching(const std::vector<std::string>& lines, const std::string& prefix) {
  return static_cast<size_t>(std::count_if(lines.begin(), lines.end(), [&](const auto& l) { return l.rfind(prefix, 0) == 0; }));
}

std::string message_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A checkpoint repository: config, tokenizer, weights (served as LFS) and a file in a subfolder.
struct TinyRepo {
  std::string config = R"({"model_type": "llama", "hidden_size": 4})";
  std::string tokenizer = R"({"version": "1.0"})";
  std::vector<float> weights;
  std::string weights_file;

  explicit TinyRepo(FakeHub& hub, const std::string& repo = "org/tiny") {
    std::mt19937 rng(5);
    std::normal_distribution<float> normal;
    for (int i = 0; i < 4 * 300; ++i) weights.push_back(normal(rng));
    const fs::path staging = hub.repo_folder(repo) / "model.safetensors";
    fs::create_directories(staging.parent_path());
    save_safetensors(staging.string(), {tensor_view("model.norm.weight", {4, 300}, weights)}, {{"format", "pt"}});
    weights_file = read_file(staging);
    hub.add_file(repo, "config.json", config);
    hub.add_file(repo, "tokenizer.json", tokenizer);
    hub.add_file(repo, "onnx/model.onnx", random_bytes(64, 9));
  }
};

}  // namespace

TEST(Hub, DownloadsIntoThePythonCacheLayout) {
  FakeHub hub;
  TinyRepo repo(hub);
  hub.start();
  const auto options = hub.options();

  const fs::path config = hub::download_file("org/tiny", "config.json", "main", options);
  EXPECT_EQ(read_file(config), repo.config);
  const fs::path folder = hub.cache_dir() + "/models--org--tiny";
  const std::string commit = read_file(folder / "refs" / "main");
  ASSERT_EQ(commit.size(), 40u);
  EXPECT_EQ(config, folder / "snapshots" / commit / "config.json");
  ASSERT_TRUE(fs::is_symlink(config));
  // Small files are named by their git blob SHA-1, as the Hub's ETag gives it.
  EXPECT_EQ(fs::read_symlink(config).parent_path(), fs::path("../../blobs"));
  EXPECT_EQ(fs::read_symlink(config).filename().string().size(), 40u);

  const fs::path weights = hub::download_file("org/tiny", "model.safetensors", "main", options);
  EXPECT_EQ(fs::read_symlink(weights), fs::path("../../blobs") / sha256_hex(repo.weights_file));
  EXPECT_EQ(read_file(weights), repo.weights_file);
  EXPECT_EQ(SafeTensorsFile::open(weights.string()).to_f32("model.norm.weight"), repo.weights);
  // The large file went through the redirect to the blob store.
  const auto log = hub.requests();
  EXPECT_EQ(count_matching(log, "HEAD /org/tiny/resolve/main/model.safetensors"), 1u);
  EXPECT_EQ(count_matching(log, "GET /cdn/org/tiny/model.safetensors"), 1u);
  EXPECT_FALSE(fs::exists(folder / "blobs" / (sha256_hex(repo.weights_file) + ".incomplete")));
}

TEST(Hub, CachedFilesAreNeverDownloadedTwice) {
  FakeHub hub;
  TinyRepo repo(hub);
  hub.start();
  const auto options = hub.options();

  const fs::path snapshot = hub::download_snapshot("org/tiny", "main", {}, {}, options);
  EXPECT_EQ(read_file(snapshot / "tokenizer.json"), repo.tokenizer);
  EXPECT_TRUE(fs::exists(snapshot / "onnx" / "model.onnx"));
  const auto first = hub.requests();
  EXPECT_EQ(count_matching(first, "GET /api/models/org/tiny/revision/main"), 1u);
  EXPECT_EQ(count_matching(first, "GET /cdn/"), 1u);
  const std::string commit = snapshot.filename().string();

  // "main" again: one light request to learn the commit, no file transferred.
  hub.clear_log();
  EXPECT_EQ(hub::download_snapshot("org/tiny", "main", {}, {}, options), snapshot.string());
  EXPECT_EQ(hub.requests(), (std::vector<std::string>{"GET /api/models/org/tiny/revision/main -"}));

  // A single file of "main": one HEAD, no GET.
  hub.clear_log();
  EXPECT_EQ(read_file(hub::download_file("org/tiny", "model.safetensors", "main", options)), repo.weights_file);
  EXPECT_EQ(hub.requests(), (std::vector<std::string>{"HEAD /org/tiny/resolve/main/model.safetensors -"}));

  // A commit hash that is cached: no request at all.
  hub.clear_log();
  EXPECT_EQ(hub::download_snapshot("org/tiny", commit, {}, {}, options), snapshot.string());
  EXPECT_EQ(hub::download_snapshot("org/tiny", commit, {"*.json", "*.safetensors"}, {}, options), snapshot.string());
  hub::download_file("org/tiny", "config.json", commit, options);
  EXPECT_TRUE(hub.requests().empty());
}

TEST(Hub, ACachedCommitMissingWantedFilesIsCompleted) {
  FakeHub hub;
  TinyRepo repo(hub);
  hub.start();
  const auto options = hub.options();
  const fs::path snapshot = hub::download_snapshot("org/tiny", "main", {"*.json"}, {}, options);
  EXPECT_FALSE(fs::exists(snapshot / "model.safetensors"));
  hub.clear_log();
  const std::string commit = snapshot.filename().string();
  EXPECT_EQ(hub::download_snapshot("org/tiny", commit, {"*.safetensors"}, {}, options), snapshot.string());
  EXPECT_EQ(read_file(snapshot / "model.safetensors"), repo.weights_file);
  EXPECT_EQ(count_matching(hub.requests(), "GET /api/models/org/tiny/revision/" + commit), 1u);
  EXPECT_EQ(count_matching(hub.requests(), "GET /cdn/org/tiny/model.safetensors"), 1u);
}

TEST(Hub, ResumesADroppedDownloadWithARangeRequest) {
  FakeHub hub;
  TinyRepo repo(hub);
  hub.add_file("org/tiny", ".hub.json", R"({"drop_once": ["model.safetensors"]})");
  hub.start();
  const fs::path weights = hub::download_file("org/tiny", "model.safetensors", "main", hub.options());
  EXPECT_EQ(read_file(weights), repo.weights_file);
  const auto log = hub.requests();
  ASSERT_EQ(count_matching(log, "GET /cdn/org/tiny/model.safetensors"), 2u);
  const std::string resumed = "GET /cdn/org/tiny/model.safetensors bytes=" + std::to_string(repo.weights_file.size() / 2) + "-";
  EXPECT_EQ(count_matching(log, resumed), 1u) << "no resumed request; log:\n" << log.back();
}

TEST(Hub, ExplainsMissingReposFilesRevisionsAndGatedAccess) {
  FakeHub hub;
  TinyRepo repo(hub);
  TinyRepo gated(hub, "org/gated");
  hub.add_file("org/gated", ".hub.json", R"({"gated": true})");
  hub.start();
  auto options = hub.options();
  EXPECT_NE(message_of([&] { hub::download_file("org/nope", "config.json", "main", options); })
                .find("org/nope: repository not found"), std::string::npos);
  EXPECT_NE(message_of([&] { hub::download_file("org/tiny", "missing.json", "main", options); })
                .find("org/tiny: no file 'missing.json' at revision 'main'"), std::string::npos);
  EXPECT_NE(message_of([&] { hub::download_snapshot("org/tiny", "v9", {}, {}, options); })
                .find("org/tiny: no revision 'v9'"), std::string::npos);
  const std::string denied = message_of([&] { hub::download_file("org/gated", "config.json", "main", options); });
  EXPECT_NE(denied.find("access denied (HTTP 401)"), std::string::npos) << denied;
  EXPECT_NE(denied.find("set HF_TOKEN"), std::string::npos) << denied;
  EXPECT_FALSE(fs::exists(hub.cache_dir() + "/models--org--gated/snapshots"));

  options.token = FakeHub::token();
  EXPECT_EQ(read_file(hub::download_file("org/gated", "config.json", "main", options)), gated.config);
  EXPECT_EQ(read_file(fs::path(hub::download_snapshot("org/gated", "main", {"*.safetensors"}, {}, options)) /
                      "model.safetensors"),
            gated.weights_file);
}

TEST(Hub, OfflineModeAndNetworkFailuresUseOnlyTheCache) {
  FakeHub hub;
  TinyRepo repo(hub);
  hub.start();
  auto options = hub.options();
  const fs::path config = hub::download_file("org/tiny", "config.json", "main", options);
  hub.clear_log();

  options.offline = true;
  EXPECT_EQ(hub::download_file("org/tiny", "config.json", "main", options), config.string());
  EXPECT_EQ(hub::download_snapshot("org/tiny", "main", {}, {}, options), config.parent_path().string());
  const std::string refused = message_of([&] { hub::download_file("org/tiny", "tokenizer.json", "main", options); });
  EXPECT_NE(refused.find("not in the cache"), std::string::npos) << refused;
  EXPECT_NE(refused.find("HF_HUB_OFFLINE"), std::string::npos) << refused;
  EXPECT_TRUE(hub.requests().empty());

  // The environment variable switches it on too.
  ::setenv("HF_HUB_OFFLINE", "1", 1);
  EXPECT_TRUE(hub::HubOptions::from_environment().offline);
  ::unsetenv("HF_HUB_OFFLINE");
  EXPECT_FALSE(hub::HubOptions::from_environment().offline);

  // A server that went away: the cached revision still serves; anything else names the network.
  hub.stop();
  options.offline = false;
  EXPECT_EQ(hub::download_file("org/tiny", "config.json", "main", options), config.string());
  const std::string unreachable = message_of([&] { hub::download_file("org/tiny", "tokenizer.json", "main", options); });
  EXPECT_NE(unreachable.find("cannot reach " + options.endpoint), std::string::npos) << unreachable;
}

TEST(Hub, RefusesFileNamesThatEscapeTheCache) {
  FakeHub hub;
  TinyRepo repo(hub);
  hub.add_file("org/tiny", ".hub.json", R"({"extra_siblings": ["../../etc/x"]})");
  hub.start();
  const auto options = hub.options();
  const std::string message = message_of([&] { hub::download_snapshot("org/tiny", "main", {}, {}, options); });
  EXPECT_NE(message.find("refusing file name '../../etc/x'"), std::string::npos) << message;
  EXPECT_EQ(count_matching(hub.requests(), "HEAD"), 0u);  // refused before anything was fetched
  EXPECT_FALSE(fs::exists(fs::path(hub.cache_dir()).parent_path() / "etc"));
  EXPECT_THROW(hub::download_file("org/tiny", "../config.json", "main", options), Error);
  EXPECT_THROW(hub::download_file("org/tiny", "/etc/passwd", "main", options), Error);
  EXPECT_THROW(hub::download_file("../org/tiny", "config.json", "main", options), Error);
  EXPECT_THROW(hub::download_file("org/tiny", "config.json", "../../x", options), Error);
}

TEST(Hub, SafeTensorsModelDownloadsTopLevelModelFilesFromTheEnvironment) {
  FakeHub hub;
  TinyRepo repo(hub);
  hub.start();
  ::setenv("HF_ENDPOINT", hub.endpoint().c_str(), 1);
  ::setenv("HF_HOME", hub.hf_home().c_str(), 1);
  ::unsetenv("HF_HUB_CACHE");
  ::unsetenv("HF_TOKEN");
  const auto model = SafeTensorsModel::download("org/tiny");
  ::unsetenv("HF_ENDPOINT");
  ::unsetenv("HF_HOME");
  EXPECT_EQ(fs::path(model.directory()).parent_path().parent_path(), fs::path(hub.cache_dir()) / "models--org--tiny");
  EXPECT_TRUE(fs::exists(fs::path(model.directory()) / "config.json"));
  EXPECT_TRUE(fs::exists(fs::path(model.directory()) / "tokenizer.json"));
  EXPECT_FALSE(fs::exists(fs::path(model.directory()) / "onnx"));
  WeightMapping mapping;
  mapping.rename = {{"model.", ""}};
  const auto params = model.load({{"norm.weight", {4, 300}}}, mapping);
  EXPECT_EQ(params.at("norm.weight"), repo.weights);
}

TEST(Hub, DownloadsShardedCheckpoints) {
  FakeHub hub;
  std::vector<float> a(300), b(500);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  for (auto& x : a) x = normal(rng);
  for (auto& x : b) x = normal(rng);
  const fs::path staging = hub.repo_folder("org/sharded");
  fs::create_directories(staging);
  save_safetensors((staging / "model-00001-of-00002.safetensors").string(), {tensor_view("a", {300}, a)});
  save_safetensors((staging / "model-00002-of-00002.safetensors").string(), {tensor_view("b", {5, 100}, b)});
  hub.add_file("org/sharded", "model.safetensors.index.json",
               R"({"metadata": {"total_size": 3200}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                   "b": "model-00002-of-00002.safetensors"}})");
  hub.start();
  const fs::path folder = hub::download_snapshot("org/sharded", "main", {"*.json", "*.safetensors"}, {}, hub.options());
  const auto model = SafeTensorsModel::open(folder.string());
  EXPECT_EQ(model.tensors().shards().size(), 2u);
  EXPECT_EQ(model.tensors().to_f32("a"), a);
  EXPECT_EQ(model.tensors().to_f32("b"), b);
}

TEST(Hub, DownloadCommandPrintsTheSnapshotFolder) {
  const std::string cli = std::string(std::getenv("MEGANEURA_BIN_DIR") ? std::getenv("MEGANEURA_BIN_DIR")
                                                                        : MEGANEURA_BINARY_DIR "/bin") + "/meganeura";
  if (!fs::exists(cli)) GTEST_SKIP() << "build the meganeura_cli target first";
  FakeHub hub;
  TinyRepo repo(hub);
  hub.start();
  const std::string command = "HF_ENDPOINT=" + hub.endpoint() + " HF_HOME='" + hub.hf_home() + "' HF_HUB_CACHE= HF_TOKEN= '" +
                              cli + "' download org/tiny --include '*.json' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[512];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  EXPECT_EQ(::pclose(pipe), 0) << output;
  while (!output.empty() && output.back() == '\n') output.pop_back();
  EXPECT_EQ(read_file(fs::path(output) / "config.json"), repo.config);
  EXPECT_FALSE(fs::exists(fs::path(output) / "model.safetensors"));

  const std::string failing = "HF_ENDPOINT=" + hub.endpoint() + " HF_HOME='" + hub.hf_home() + "' '" + cli +
                              "' download org/missing >/dev/null 2>&1";
  const int status = std::system(failing.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1);
}

TEST(Hub, ReusesACacheLaidOutByThePythonTools) {
  FakeHub hub;
  TinyRepo repo(hub);
  hub.start();
  const auto options = hub.options();
  const std::string commit = hub::list_files("org/tiny", "main", options).commit;
  hub.clear_log();
  // What huggingface_hub leaves behind: the blob named by its SHA-256, a relative symlink in the
  // snapshot, and refs/main holding the commit without a newline.
  const fs::path folder = fs::path(hub.cache_dir()) / "models--org--tiny";
  const std::string etag = sha256_hex(repo.weights_file);
  fs::create_directories(folder / "blobs");
  fs::create_directories(folder / "snapshots" / commit);
  fs::create_directories(folder / "refs");
  std::ofstream(folder / "blobs" / etag, std::ios::binary) << repo.weights_file;
  fs::create_symlink(fs::path("../../blobs") / etag, folder / "snapshots" / commit / "model.safetensors");
  std::ofstream(folder / "refs" / "main") << commit;

  const fs::path weights = hub::download_file("org/tiny", "model.safetensors", "main", options);
  EXPECT_EQ(weights, folder / "snapshots" / commit / "model.safetensors");
  EXPECT_EQ(hub.requests(), (std::vector<std::string>{"HEAD /org/tiny/resolve/main/model.safetensors -"}));
  hub.clear_log();
  EXPECT_EQ(hub::download_file("org/tiny", "model.safetensors", commit, options), weights.string());
  EXPECT_TRUE(hub.requests().empty());
}

TEST(Hub, AFailingDownloadKeepsItsPartForTheNextRun) {
  FakeHub hub;
  TinyRepo repo(hub);
  hub.add_file("org/tiny", ".hub.json", R"({"drop_always": ["model.safetensors"]})");
  hub.start();
  auto options = hub.options();
  options.max_attempts = 2;
  const std::string message = message_of([&] { hub::download_file("org/tiny", "model.safetensors", "main", options); });
  EXPECT_NE(message.find("after 2 attempts; run again to resume"), std::string::npos) << message;
  const fs::path blobs = fs::path(hub.cache_dir()) / "models--org--tiny" / "blobs";
  const fs::path partial = blobs / (sha256_hex(repo.weights_file) + ".incomplete");
  ASSERT_TRUE(fs::exists(partial));
  const uint64_t kept = fs::file_size(partial);
  EXPECT_GT(kept, repo.weights_file.size() / 2);  // the second attempt resumed and added more
  EXPECT_FALSE(fs::exists(blobs / sha256_hex(repo.weights_file)));

  // The next run continues from the kept bytes.
  hub.add_file("org/tiny", ".hub.json", "{}");
  hub.clear_log();
  EXPECT_EQ(read_file(hub::download_file("org/tiny", "model.safetensors", "main", options)), repo.weights_file);
  EXPECT_EQ(count_matching(hub.requests(), "GET /cdn/org/tiny/model.safetensors bytes=" + std::to_string(kept) + "-"), 1u);
}

TEST(Hub, RejectsABlobWhoseSha256DoesNotMatch) {
  FakeHub hub;
  TinyRepo repo(hub);
  hub.add_file("org/tiny", ".hub.json", R"({"corrupt": ["model.safetensors"]})");
  hub.start();
  const std::string message =
      message_of([&] { hub::download_file("org/tiny", "model.safetensors", "main", hub.options()); });
  EXPECT_NE(message.find("does not match the Hub's " + sha256_hex(repo.weights_file)), std::string::npos) << message;
  const fs::path blobs = fs::path(hub.cache_dir()) / "models--org--tiny" / "blobs";
  EXPECT_FALSE(fs::exists(blobs / sha256_hex(repo.weights_file)));
  EXPECT_FALSE(fs::exists(blobs / (sha256_hex(repo.weights_file) + ".incomplete")));
}
