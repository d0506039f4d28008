// A small blocking HTTP client over libcurl, with what the Hub protocol needs: HEAD without
// following redirects, GET into a file with a resumed range, response headers, a progress bar.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace meganeura::hub {

struct HttpRequest {
  std::string method = "GET";  // "GET" or "HEAD"
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  bool follow_redirects = true;
  FILE* sink = nullptr;       // a 2xx body is appended here; otherwise it is kept in the response
  uint64_t resume_from = 0;   // asks for "Range: bytes=N-"; a 200 reply empties the sink first
  std::string progress_label; // non-empty: draw a progress bar on stderr
  long connect_timeout_seconds = 10;
  long stall_timeout_seconds = 60;
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // of the last response, names in lower case
  std::string body;                            // when there was no sink, or the reply was not 2xx
  std::string redirect_url;                    // absolute Location of a 3xx not followed
  int curl_code = 0;                           // non-zero: the transfer failed (network)
  std::string curl_error;

  bool network_failed() const { return curl_code != 0; }
  std::string header(const std::string& lower_case_name) const;
};

HttpResponse perform(const HttpRequest& request);

// Percent-encodes one URL path segment (`/` included).
std::string escape_segment(const std::string& text);

}  // namespace meganeura::hub
