#include "hub/http_client.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <memory>
#include <mutex>

#include "meganeura/error.h"

namespace meganeura::hub {
namespace {

struct Transfer {
  const HttpRequest* request = nullptr;
  HttpResponse* response = nullptr;
  CURL* curl = nullptr;
  bool checked_restart = false;
  std::chrono::steady_clock::time_point last_draw{};
  bool drew = false;
};

void ensure_curl_initialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw Error("libcurl could not be initialized");
  });
}

long current_status(CURL* curl) {
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string line(data, size * count);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.rfind("HTTP/", 0) == 0) {
    t->response->headers.clear();  // a new response (after a redirect or a 100 Continue)
    return size * count;
  }
  const auto colon = line.find(':');
  if (colon == std::string::npos) return size * count;
  std::string name = line.substr(0, colon);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  size_t start = colon + 1;
  while (start < line.size() && (line[start] == ' ' || line[start] == '\t')) ++start;
  t->response->headers[name] = line.substr(start);
  return size * count;
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  const long status = current_status(t->curl);
  FILE* sink = t->request->sink;
  if (!sink || status < 200 || status >= 300) {
    t->response->body.append(data, n);
    return n;
  }
  if (!t->checked_restart) {
    t->checked_restart = true;
    // A server that ignores the range sends the whole file again: start the file over.
    if (t->request->resume_from > 0 && status == 200) {
      std::fflush(sink);
      if (::ftruncate(::fileno(sink), 0) != 0) return 0;
    }
  }
  return std::fwrite(data, 1, n, sink);
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int unit = 0;
  while (bytes >= 1000 && unit < 4) bytes /= 1000, ++unit;
  char text[32];
  std::snprintf(text, sizeof text, unit ? "%.1f %s" : "%.0f %s", bytes, units[unit]);
  return text;
}

int on_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  const auto clock = std::chrono::steady_clock::now();
  if (t->drew && clock - t->last_draw < std::chrono::milliseconds(200) && !(total > 0 && now == total)) return 0;
  if (total <= 0) return 0;
  t->last_draw = clock;
  t->drew = true;
  const double done = static_cast<double>(t->request->resume_from + now);
  const double all = static_cast<double>(t->request->resume_from + total);
  const int width = 30;
  const int filled = static_cast<int>(width * done / all);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "\r%s [%s] %3.0f%% %s / %s", t->request->progress_label.c_str(), bar.c_str(), 100 * done / all,
               human_bytes(done).c_str(), human_bytes(all).c_str());
  std::fflush(stderr);
  return 0;
}

}  // namespace

std::string HttpResponse::header(const std::string& lower_case_name) const {
  const auto it = headers.find(lower_case_name);
  return it == headers.end() ? std::string() : it->second;
}

std::string escape_segment(const std::string& text) {
  ensure_curl_initialized();
  std::unique_ptr<char, decltype(&curl_free)> escaped(
      curl_easy_escape(nullptr, text.data(), static_cast<int>(text.size())), &curl_free);
  if (!escaped) throw Error("cannot URL-encode '" + text + "'");
  return escaped.get();
}

HttpResponse perform(const HttpRequest& request) {
  ensure_curl_initialized();
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  if (!curl) throw Error("libcurl could not create a transfer handle");
  HttpResponse response;
  Transfer transfer{&request, &response, curl.get()};

  curl_slist* header_list = nullptr;
  for (const auto& h : request.headers) header_list = curl_slist_append(header_list, h.c_str());
  // An explicit Range header (rather than CURLOPT_RESUME_FROM) lets a 200 reply through, which
  // on_body handles by starting the file over.
  const std::string range = "Range: bytes=" + std::to_string(request.resume_from) + "-";
  if (request.resume_from > 0) header_list = curl_slist_append(header_list, range.c_str());
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(header_list, &curl_slist_free_all);

  CURL* c = curl.get();
  char error_text[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_text);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_USERAGENT, "meganeura/0.1.0");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, request.follow_redirects ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, request.connect_timeout_seconds);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, request.stall_timeout_seconds);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &transfer);
  if (request.method == "HEAD") curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  const bool progress = !request.progress_label.empty();
  if (progress) {
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &transfer);
  }

  const CURLcode code = curl_easy_perform(c);
  if (progress && transfer.drew) std::fputc('\n', stderr);
  response.status = current_status(c);
  if (code != CURLE_OK) {
    response.curl_code = static_cast<int>(code);
    response.curl_error = error_text[0] ? error_text : curl_easy_strerror(code);
  }
  char* redirect = nullptr;
  if (curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &redirect) == CURLE_OK && redirect) response.redirect_url = redirect;
  return response;
}

}  // namespace meganeura::hub
