#pragma once
// Integration test harness: starts the real `tandem serve` binary on port 0 with a temporary
// state directory and a generated configuration, and talks to it over real HTTP.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace tandem::testing {

namespace http = boost::beast::http;

std::filesystem::path source_dir();

/// Built with sanitizers (make test-asan, make test-tsan): code runs 2 to 20 times slower, so
/// a test whose outcome depends on the machine's speed skips.
#ifdef TANDEM_SANITIZED
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
std::filesystem::path tandem_binary();

/// Waits until `condition` is true or the deadline passes; polls every few milliseconds.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

struct HttpResult {
  int status = 0;  // 0: transport error
  std::string body;
  std::map<std::string, std::string> headers;  // lowercase names
  std::string error;
  [[nodiscard]] std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

/// A blocking keep-alive HTTP/1.1 client for one server. Not thread-safe: one per thread.
class HttpClient {
public:
  HttpClient(std::string host, unsigned short port);
  HttpResult request(http::verb method, const std::string& target, const std::string& body = {},
                     const std::map<std::string, std::string>& headers = {});
  HttpResult get(const std::string& target) { return request(http::verb::get, target); }
  HttpResult post(const std::string& target, const std::string& body,
                  const std::map<std::string, std::string>& headers = {}) {
    return request(http::verb::post, target, body, headers);
  }
  /// Sends raw bytes on a fresh connection and returns what comes back until close.
  std::string raw(const std::string& bytes);

private:
  void connect();
  std::string host_;
  unsigned short port_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::beast::tcp_stream> stream_;
  boost::beast::flat_buffer buffer_;
};

/// The value of one sample in Prometheus text, e.g. `name{a="b"}`; nullopt when absent.
std::optional<double> metric_value(const std::string& text, const std::string& sample);

struct WorkerRow {
  std::string id;
  std::string tier;
  std::string state;
  pid_t pid = 0;
  int restarts = 0;
};

/// A running `tandem serve`. The destructor stops it (SIGTERM, then SIGKILL).
class ServerProcess {
public:
  /// `endpoints_yaml` is the text under `endpoints:`; `server_yaml` extra keys under `server:`.
  /// `directory`: run in this existing directory (config, logs, state/) and leave it in place,
  /// so that a second server can start on the same state; empty: a fresh temporary one.
  explicit ServerProcess(const std::string& endpoints_yaml, const std::string& server_yaml = "",
                         const std::filesystem::path& directory = {});
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  [[nodiscard]] const std::string& host() const { return host_; }
  [[nodiscard]] unsigned short port() const { return port_; }
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] HttpClient client() const { return HttpClient(host_, port_); }
  [[nodiscard]] std::string url() const { return "http://" + host_ + ":" + std::to_string(port_); }
  [[nodiscard]] std::string logs() const;
  [[nodiscard]] const std::filesystem::path& directory() const { return dir_; }

  std::vector<WorkerRow> workers();
  /// Waits until `count` workers report state "ready".
  bool wait_ready(std::size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  /// Sends `signal` and waits for the process to exit; returns its wait status.
  std::optional<int> stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(15));

private:
  std::filesystem::path dir_;
  bool owns_dir_ = true;
  pid_t pid_ = -1;
  bool exited_ = false;
  std::string host_;
  unsigned short port_ = 0;
};

/// A fresh temporary directory (the caller removes it).
std::filesystem::path make_temp_dir();

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
/// Runs `tandem ARGS...` to completion with TANDEM_SERVER set to `server_url`.
CliResult run_tandem(const std::vector<std::string>& args, const std::string& server_url);

/// Starts `tandem ARGS...` in the background with TANDEM_SERVER set to `server_url` and its
/// stdout and stderr written to these files; returns its pid. It dies with the test process.
pid_t spawn_tandem(const std::vector<std::string>& args, const std::string& server_url,
                   const std::filesystem::path& out_path, const std::filesystem::path& err_path);
/// Waits for a child of this process to exit: its exit code, 128 + the signal that killed it,
/// or nullopt if it is still running after `timeout`.
std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout);

/// True while a process with this pid exists and is not a zombie.
bool process_alive(pid_t pid);

/// The digits held-out split: 64 pixel values and the label per row.
struct DigitRow {
  std::vector<int> pixels;
  int label = 0;
};
std::vector<DigitRow> load_heldout();

/// A v2 infer body for these rows.
std::string infer_body(const std::vector<DigitRow>& rows, std::size_t begin, std::size_t count);

/// The endpoint block most tests use: digits with `replicas` dedicated workers.
std::string digits_endpoint(int replicas, const std::string& extra = "");

} // namespace tandem::testing
