// Downloads from the Hugging Face Hub into the shared cache, speaking the Hub's protocol:
// HEAD resolve/REV/FILE for the commit and etag, a redirect with X-Linked-Etag/X-Linked-Size for
// large (LFS) files, GET into blobs/ETAG.incomplete resumed with Range, checked, renamed.
#include <fnmatch.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "gpu/sha256.h"
#include "hub/cache_layout.h"
#include "hub/http_client.h"
#include "meganeura/error.h"
#include "meganeura/hub.h"

namespace meganeura::hub {
namespace fs = std::filesystem;
namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

bool truthy(std::string value) {
  std::transform(value.begin(), value.end(), value.begin(), [](unsigned char c) { return std::tolower(c); });
  return value == "1" || value == "true" || value == "yes" || value == "on";
}

std::vector<std::string> request_headers(const HubOptions& options) {
  std::vector<std::string> headers = {"Accept-Encoding: identity"};
  if (!options.token.empty()) headers.push_back("Authorization: Bearer " + options.token);
  return headers;
}

HttpRequest make_request(const HubOptions& options, std::string method, std::string url) {
  HttpRequest request;
  request.method = std::move(method);
  request.url = std::move(url);
  request.headers = request_headers(options);
  request.connect_timeout_seconds = options.connect_timeout_seconds;
  request.stall_timeout_seconds = options.stall_timeout_seconds;
  return request;
}

std::string file_url(const HubOptions& options, const std::string& repo_id, const std::string& revision,
                     const std::string& filename) {
  std::string path;
  size_t start = 0;
  for (size_t slash; (slash = filename.find('/', start)) != std::string::npos; start = slash + 1)
    path += escape_segment(filename.substr(start, slash - start)) + "/";
  path += escape_segment(filename.substr(start));
  return options.endpoint + "/" + repo_id + "/resolve/" + escape_segment(revision) + "/" + path;
}

// The Hub could not be reached (as opposed to an answer that refused the request).
class NetworkError : public Error {
 public:
  using Error::Error;
};

[[noreturn]] void throw_network_error(const HubOptions& options, const std::string& what, const HttpResponse& response) {
  throw NetworkError(what + ": cannot reach " + options.endpoint + " (" + response.curl_error +
              "); check the network connection or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only the cache");
}

[[noreturn]] void throw_http_error(const HubOptions& options, const std::string& repo_id, const std::string& revision,
                                   const std::string& filename, const HttpResponse& response) {
  const std::string code = response.header("x-error-code");
  const std::string subject = filename.empty() ? repo_id : filename + " of " + repo_id;
  if (response.status == 401 || response.status == 403)
    throw Error(subject + ": access denied (HTTP " + std::to_string(response.status) + "): the repository is gated or private; " +
                (options.token.empty() ? "set HF_TOKEN to a token that has access"
                                       : "the token in HF_TOKEN does not grant access") +
                " and accept the model's terms on its page at " + options.endpoint + "/" + repo_id);
  if (response.status == 404) {
    if (code == "RevisionNotFound") throw Error(repo_id + ": no revision '" + revision + "' (HTTP 404); check the branch, tag or commit");
    if (code == "EntryNotFound") throw Error(repo_id + ": no file '" + filename + "' at revision '" + revision + "' (HTTP 404)");
    throw Error(repo_id + ": repository not found on " + options.endpoint +
                " (HTTP 404); check the name, and set HF_TOKEN if it is private");
  }
  throw Error(subject + ": the Hub answered HTTP " + std::to_string(response.status) +
              (code.empty() ? "" : " (" + code + ")") + "; try again later");
}

std::string normalized_etag(std::string etag) {
  if (etag.rfind("W/", 0) == 0) etag.erase(0, 2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  return etag;
}

bool is_sha256_hex(const std::string& text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

struct FileMetadata {
  std::string commit;
  std::string etag;
  std::optional<uint64_t> size;
  std::string download_url;
};

std::optional<uint64_t> parse_size(const std::string& text) {
  if (text.empty() || !std::all_of(text.begin(), text.end(), ::isdigit)) return std::nullopt;
  return std::stoull(text);
}

// One HEAD request (plus hops for relative redirects of renamed repositories).
FileMetadata fetch_metadata(const std::string& repo_id, const std::string& filename, const std::string& revision,
                            const HubOptions& options, HttpResponse& response) {
  std::string url = file_url(options, repo_id, revision, filename);
  for (int hop = 0; hop < 5; ++hop) {
    auto request = make_request(options, "HEAD", url);
    request.follow_redirects = false;
    response = perform(request);
    if (response.network_failed()) return {};
    const bool redirect = response.status >= 300 && response.status < 400;
    if (redirect && response.header("x-linked-etag").empty() && !response.redirect_url.empty()) {
      url = response.redirect_url;
      continue;
    }
    if (!redirect && (response.status < 200 || response.status >= 300))
      throw_http_error(options, repo_id, revision, filename, response);
    FileMetadata meta;
    meta.commit = response.header("x-repo-commit");
    const std::string linked = response.header("x-linked-etag");
    meta.etag = normalized_etag(linked.empty() ? response.header("etag") : linked);
    meta.size = parse_size(response.header("x-linked-size"));
    if (!meta.size) meta.size = parse_size(response.header("content-length"));
    meta.download_url = redirect ? response.redirect_url : url;
    if (!is_commit_hash(meta.commit) || meta.etag.empty() || meta.etag.find('/') != std::string::npos ||
        meta.etag.find("..") != std::string::npos)
      throw Error(filename + " of " + repo_id + ": the server at " + options.endpoint +
                  " sent no usable X-Repo-Commit or ETag header; is HF_ENDPOINT a Hugging Face Hub?");
    return meta;
  }
  throw Error(filename + " of " + repo_id + ": too many redirects from " + options.endpoint);
}

// Holds an exclusive flock() on a lock file (the same lock the Python tools take).
class FileLock {
 public:
  explicit FileLock(const fs::path& path) {
    fs::create_directories(path.parent_path());
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error("cannot create lock file " + path.string() + " (" + std::strerror(errno) + ")");
    while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  ~FileLock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

std::string sha256_of_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  gpu::Sha256 hash;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    hash.update(std::as_bytes(std::span(buffer.data(), static_cast<size_t>(in.gcount()))));
  }
  const auto digest = hash.finish();
  return gpu::to_hex(digest);
}

uint64_t size_or_zero(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  return ec ? 0 : size;
}

// Fetches the blob into blobs/ETAG.incomplete, resuming after dropped connections, then checks it
// and renames it into place.
void download_blob(const RepoCache& cache, const std::string& repo_id, const std::string& filename,
                   const FileMetadata& meta, const HubOptions& options) {
  const fs::path blob = cache.blob(meta.etag);
  const fs::path partial = blob.string() + ".incomplete";
  fs::create_directories(blob.parent_path());
  HttpResponse last;
  bool complete = false;
  for (int attempt = 1; attempt <= std::max(1, options.max_attempts) && !complete; ++attempt) {
    uint64_t have = size_or_zero(partial);
    if (meta.size && have > *meta.size) {
      fs::resize_file(partial, 0);
      have = 0;
    }
    if (meta.size && have == *meta.size) break;
    FILE* out = std::fopen(partial.c_str(), "ab");
    if (!out) throw Error("cannot write " + partial.string() + " (" + std::strerror(errno) + ")");
    auto request = make_request(options, "GET", meta.download_url);
    request.sink = out;
    request.resume_from = have;
    if (options.progress && ::isatty(STDERR_FILENO)) request.progress_label = filename;
    last = perform(request);
    const bool flushed = std::fclose(out) == 0;
    if (!flushed) throw Error("writing " + partial.string() + " failed (disk full?)");
    if (last.network_failed()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * attempt));
      continue;
    }
    if (last.status == 416) {  // our partial file is not a prefix the server recognises
      fs::resize_file(partial, 0);
      continue;
    }
    if (last.status >= 500) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * attempt));
      continue;
    }
    if (last.status < 200 || last.status >= 300) throw_http_error(options, repo_id, meta.commit, filename, last);
    complete = !meta.size || size_or_zero(partial) == *meta.size;
  }
  const uint64_t got = size_or_zero(partial);
  if (meta.size ? got != *meta.size : !complete) {
    const std::string progress = meta.size ? std::to_string(got) + " of " + std::to_string(*meta.size) + " bytes"
                                           : std::to_string(got) + " bytes";
    if (last.network_failed())
      throw_network_error(options, filename + " of " + repo_id + " (" + progress + " after " +
                                       std::to_string(options.max_attempts) + " attempts; run again to resume)",
                          last);
    if (last.status >= 500) throw_http_error(options, repo_id, meta.commit, filename, last);
    throw Error(filename + " of " + repo_id + ": got " + progress + (meta.size ? "" : " of an unknown size") +
                "; run again to resume");
  }
  if (is_sha256_hex(meta.etag)) {
    const std::string actual = sha256_of_file(partial);
    if (actual != meta.etag) {
      fs::remove(partial);
      throw Error(filename + " of " + repo_id + ": SHA-256 " + actual + " does not match the Hub's " + meta.etag +
                  "; the download was corrupted and has been discarded, run again");
    }
  }
  fs::rename(partial, blob);
}

fs::path resolved_cache_dir(const HubOptions& options) {
  if (options.cache_dir.empty()) throw Error("HubOptions::cache_dir is empty; use HubOptions::from_environment()");
  return fs::path(options.cache_dir);
}

bool matches(const std::vector<std::string>& patterns, const std::string& name) {
  for (std::string pattern : patterns) {
    if (!pattern.empty() && pattern.back() == '/') pattern += "*";  // a folder means everything in it
    if (::fnmatch(pattern.c_str(), name.c_str(), 0) == 0) return true;
  }
  return false;
}

bool covers(const fs::path& snapshot, const std::vector<std::string>& include, const std::vector<std::string>& exclude) {
  std::vector<bool> found(include.size(), false);
  bool any = false;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(snapshot, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_directory(ec) || !fs::exists(it->path(), ec)) continue;  // skips dangling links
    const std::string name = it->path().lexically_relative(snapshot).generic_string();  // keeps symlinks
    if (matches(exclude, name)) continue;
    any = true;
    for (size_t i = 0; i < include.size(); ++i) found[i] = found[i] || matches({include[i]}, name);
  }
  return any && std::all_of(found.begin(), found.end(), [](bool f) { return f; });
}

}  // namespace

HubOptions HubOptions::from_environment() {
  HubOptions options;
  if (const std::string endpoint = env("HF_ENDPOINT"); !endpoint.empty()) options.endpoint = endpoint;
  while (!options.endpoint.empty() && options.endpoint.back() == '/') options.endpoint.pop_back();
  std::string home = env("HF_HOME");
  if (home.empty()) {
    const std::string xdg = env("XDG_CACHE_HOME");
    home = !xdg.empty() ? xdg + "/huggingface" : env("HOME") + "/.cache/huggingface";
  }
  options.cache_dir = env("HF_HUB_CACHE");
  if (options.cache_dir.empty()) options.cache_dir = env("HUGGINGFACE_HUB_CACHE");
  if (options.cache_dir.empty()) options.cache_dir = home + "/hub";
  options.token = env("HF_TOKEN");
  if (options.token.empty()) {
    const std::string token_path = env("HF_TOKEN_PATH").empty() ? home + "/token" : env("HF_TOKEN_PATH");
    std::ifstream token_file(token_path);
    std::getline(token_file, options.token);
  }
  while (!options.token.empty() && std::isspace(static_cast<unsigned char>(options.token.back()))) options.token.pop_back();
  options.offline = truthy(env("HF_HUB_OFFLINE"));
  return options;
}

std::string repo_cache_folder(const std::string& repo_id, const HubOptions& options) {
  check_repo_id(repo_id);
  return RepoCache(resolved_cache_dir(options), repo_id).folder().string();
}

RepoFiles list_files(const std::string& repo_id, const std::string& revision, const HubOptions& options) {
  check_repo_id(repo_id);
  check_revision(revision);
  if (options.offline)
    throw Error(repo_id + ": cannot list files at revision '" + revision + "' in offline mode (HF_HUB_OFFLINE)");
  const std::string url = options.endpoint + "/api/models/" + repo_id + "/revision/" + escape_segment(revision);
  const HttpResponse response = perform(make_request(options, "GET", url));
  if (response.network_failed()) throw_network_error(options, repo_id, response);
  if (response.status != 200) throw_http_error(options, repo_id, revision, "", response);
  RepoFiles files;
  try {
    const auto info = nlohmann::json::parse(response.body);
    files.commit = info.at("sha").get<std::string>();
    for (const auto& sibling : info.at("siblings")) files.files.push_back(sibling.at("rfilename").get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    throw Error(repo_id + ": unexpected answer from " + url + " (" + e.what() + ")");
  }
  if (!is_commit_hash(files.commit)) throw Error(repo_id + ": the Hub sent an invalid commit '" + files.commit + "'");
  for (const auto& file : files.files) check_repo_file_name(repo_id, file);
  return files;
}

std::string download_file(const std::string& repo_id, const std::string& filename, const std::string& revision,
                          const HubOptions& options) {
  check_repo_id(repo_id);
  check_revision(revision);
  check_repo_file_name(repo_id, filename);
  const RepoCache cache(resolved_cache_dir(options), repo_id);

  // A commit never changes: if its file is cached there is nothing to ask.
  if (is_commit_hash(revision))
    if (const auto cached = cache.cached_file(revision, filename)) return cached->string();
  if (options.offline) {
    if (const auto cached = cache.cached_file(revision, filename)) return cached->string();
    throw Error(filename + " of " + repo_id + " at revision '" + revision + "' is not in the cache (" +
                cache.folder().string() + ") and offline mode (HF_HUB_OFFLINE) forbids downloading it");
  }

  HttpResponse head;
  const FileMetadata meta = fetch_metadata(repo_id, filename, revision, options, head);
  if (head.network_failed()) {
    // As the Python tools do: without a network, a cached copy of the revision still serves.
    if (const auto cached = cache.cached_file(revision, filename)) return cached->string();
    throw_network_error(options, filename + " of " + repo_id, head);
  }
  cache.write_ref(revision, meta.commit);
  const fs::path pointer = cache.snapshot(meta.commit) / filename;
  std::error_code ec;
  if (fs::exists(pointer, ec)) return pointer.string();

  const FileLock lock(cache.lock_file(meta.etag));
  if (!fs::exists(cache.blob(meta.etag), ec)) download_blob(cache, repo_id, filename, meta, options);
  return cache.link_snapshot(meta.commit, filename, meta.etag).string();
}

std::string download_snapshot(const std::string& repo_id, const std::string& revision,
                              const std::vector<std::string>& include, const std::vector<std::string>& exclude,
                              const HubOptions& options) {
  check_repo_id(repo_id);
  check_revision(revision);
  const RepoCache cache(resolved_cache_dir(options), repo_id);
  std::error_code ec;
  const auto cached_snapshot = [&]() -> std::optional<fs::path> {
    const auto commit = cache.cached_commit(revision);
    if (commit && fs::is_directory(cache.snapshot(*commit), ec)) return cache.snapshot(*commit);
    return std::nullopt;
  };
  if (is_commit_hash(revision) || options.offline) {
    // Without the file list only the cache can say whether the wanted files are there: every
    // include pattern (or, with none, the snapshot as a whole) must match a cached file.
    if (const auto folder = cached_snapshot(); folder && (options.offline || covers(*folder, include, exclude)))
      return folder->string();
    if (options.offline)
      throw Error(repo_id + " at revision '" + revision + "' is not in the cache (" + cache.folder().string() +
                  ") and offline mode (HF_HUB_OFFLINE) forbids downloading it");
  }

  RepoFiles listing;
  try {
    listing = list_files(repo_id, revision, options);
  } catch (const NetworkError&) {
    // As the Python tools do: without a network, a cached snapshot of the revision still serves.
    if (const auto folder = cached_snapshot()) return folder->string();
    throw;
  }
  for (const auto& file : listing.files) {
    if (!include.empty() && !matches(include, file)) continue;
    if (matches(exclude, file)) continue;
    download_file(repo_id, file, listing.commit, options);
  }
  cache.write_ref(revision, listing.commit);
  const fs::path folder = cache.snapshot(listing.commit);
  fs::create_directories(folder);
  return folder.string();
}

}  // namespace meganeura::hub
