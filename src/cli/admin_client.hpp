#pragma once
// A small blocking HTTP client for the admin subcommands (`tandem models ...`,
// `tandem requests ...`). The server is --server URL, else $TANDEM_SERVER, else
// http://127.0.0.1:8080, the server's default listen address.
#include "base/status.hpp"

#include <chrono>
#include <map>
#include <string>

namespace tandem::cli {

struct AdminResponse {
  int status = 0;
  std::string body;
  std::string content_type;
};

class AdminClient {
public:
  /// `server` empty: $TANDEM_SERVER, else http://127.0.0.1:8080. Only http:// URLs.
  static Result<AdminClient> create(const std::string& server, std::chrono::milliseconds timeout_ms);

  /// One request on a fresh connection. A transport failure is an error naming the server.
  Result<AdminResponse> request(const std::string& method, const std::string& target, const std::string& body = {},
                                const std::string& content_type = "application/json");
  [[nodiscard]] const std::string& base() const { return base_; }

private:
  AdminClient(std::string base, std::string host, std::string port, std::string prefix,
              std::chrono::milliseconds timeout_ms);
  std::string base_;
  std::string host_;
  std::string port_;
  std::string prefix_;  // a path the server is mounted under, without the trailing slash
  std::chrono::milliseconds timeout_ms_;
};

/// The "error" field of a JSON error body, else the body itself (trimmed).
std::string error_message(const AdminResponse& response);

} // namespace tandem::cli
