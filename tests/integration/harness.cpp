#include "harness.hpp"

#include "support/wait_until.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace tandem::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace json = boost::json;
using namespace std::chrono_literals;

std::filesystem::path source_dir() { return TANDEM_SOURCE_DIR; }
std::filesystem::path tandem_binary() { return TANDEM_BINARY; }

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  return wait_for_condition(condition, timeout);
}

// ---- HttpClient ------------------------------------------------------------------------------

HttpClient::HttpClient(std::string host, unsigned short port) : host_(std::move(host)), port_(port) {}

void HttpClient::connect() {
  stream_ = std::make_unique<beast::tcp_stream>(io_);
  stream_->expires_after(10s);
  stream_->connect(asio::ip::tcp::endpoint(asio::ip::make_address(host_), port_));
  buffer_.clear();
}

HttpResult HttpClient::request(http::verb method, const std::string& target, const std::string& body,
                               const std::map<std::string, std::string>& headers) {
  HttpResult result;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool fresh = false;
    try {
      if (!stream_) {
        connect();
        fresh = true;
      }
      http::request<http::string_body> req{method, target, 11};
      req.set(http::field::host, host_);
      for (const auto& [k, v] : headers) req.set(k, v);
      if (!body.empty() || method == http::verb::post) {
        if (req[http::field::content_type].empty()) req.set(http::field::content_type, "application/json");
        req.body() = body;
      }
      req.prepare_payload();
      stream_->expires_after(30s);
      http::write(*stream_, req);
      http::response_parser<http::string_body> parser;
      parser.body_limit(1u << 30);
      http::read(*stream_, buffer_, parser);
      auto res = parser.release();
      result.status = static_cast<int>(res.result_int());
      result.body = res.body();
      for (const auto& f : res) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        result.headers[name] = std::string(f.value());
      }
      if (!res.keep_alive()) stream_.reset();
      return result;
    } catch (const std::exception& e) {
      stream_.reset();
      result.error = e.what();
      if (fresh) break;  // a stale keep-alive connection gets one fresh retry, nothing else
    }
  }
  result.status = 0;
  return result;
}

std::string HttpClient::raw(const std::string& bytes) {
  beast::tcp_stream stream(io_);
  stream.expires_after(10s);
  stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address(host_), port_));
  asio::write(stream, asio::buffer(bytes));
  std::string out;
  char buf[4096];
  boost::system::error_code ec;
  for (;;) {
    std::size_t n = stream.read_some(asio::buffer(buf), ec);
    out.append(buf, n);
    if (ec) break;
  }
  return out;
}

// ---- ServerProcess ---------------------------------------------------------------------------

std::filesystem::path make_temp_dir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "tandem-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return pattern;
}

namespace {
std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
} // namespace

pid_t spawn_tandem(const std::vector<std::string>& args, const std::string& server_url,
                   const std::filesystem::path& out_path, const std::filesystem::path& err_path) {
  std::vector<std::string> argv_strings{tandem_binary().string()};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::setenv("TANDEM_SERVER", server_url.c_str(), 1);
    int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out_fd >= 0) ::dup2(out_fd, STDOUT_FILENO);
    if (err_fd >= 0) ::dup2(err_fd, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  int status = 0;
  if (!wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout)) return std::nullopt;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

CliResult run_tandem(const std::vector<std::string>& args, const std::string& server_url) {
  const auto dir = make_temp_dir();
  const auto out_path = dir / "out";
  const auto err_path = dir / "err";
  const pid_t pid = spawn_tandem(args, server_url, out_path, err_path);
  int status = 0;
  ::waitpid(pid, &status, 0);
  CliResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = read_all(out_path);
  result.err = read_all(err_path);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return result;
}

ServerProcess::ServerProcess(const std::string& endpoints_yaml, const std::string& server_yaml,
                             const std::filesystem::path& directory) {
  owns_dir_ = directory.empty();
  dir_ = owns_dir_ ? make_temp_dir() : directory;
  auto config = dir_ / "tandem.yaml";
  {
    std::ofstream out(config);
    out << "server:\n  listen: 127.0.0.1:0\n" << server_yaml << "endpoints:\n" << endpoints_yaml;
  }
  std::string binary = tandem_binary().string();
  std::string config_arg = config.string();
  std::string state_arg = (dir_ / "state").string();
  std::string log_path = (dir_ / "serve.log").string();
  std::string out_path = (dir_ / "serve.out").string();
  // A server run before in the same directory left its address here: never read that one.
  std::filesystem::remove(out_path);
  pid_ = ::fork();
  if (pid_ == 0) {
    // If this test process dies (a crash, a timeout kill), its server goes too.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out_fd >= 0) ::dup2(out_fd, STDOUT_FILENO);
    int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log_fd >= 0) ::dup2(log_fd, STDERR_FILENO);
    ::execl(binary.c_str(), binary.c_str(), "serve", "-c", config_arg.c_str(), "--listen", "127.0.0.1:0",
            "--state", state_arg.c_str(), "--shutdown-grace-ms", "3000", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Stdout goes to a file (never a pipe that could fill up or close): wait for the
  // "listening on http://HOST:PORT" line in it.
  std::string output;
  auto read_output = [&] {
    std::ifstream in(out_path);
    std::stringstream s;
    s << in.rdbuf();
    output = s.str();
    if (output.find('\n') != std::string::npos) return true;
    // A server that exits at start-up (a bad config) has nothing more to say.
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      return true;
    }
    return false;
  };
  wait_until(read_output, 20s);
  const std::string prefix = "listening on http://";
  auto at = output.find(prefix);
  if (at == std::string::npos) {
    stop(SIGKILL);
    throw std::runtime_error("tandem serve did not print its address; stdout: " + output + "\nlogs:\n" + logs());
  }
  auto address = output.substr(at + prefix.size());
  address = address.substr(0, address.find('\n'));
  auto colon = address.rfind(':');
  host_ = address.substr(0, colon);
  port_ = static_cast<unsigned short>(std::stoi(address.substr(colon + 1)));
}

ServerProcess::~ServerProcess() {
  if (!exited_ && pid_ > 0) stop(SIGTERM);
  std::error_code ec;
  if (owns_dir_ && !::testing::Test::HasFailure()) std::filesystem::remove_all(dir_, ec);
}

std::string ServerProcess::logs() const {
  std::ifstream in(dir_ / "serve.log");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::optional<int> ServerProcess::stop(int signal, std::chrono::milliseconds timeout) {
  if (exited_ || pid_ <= 0) return std::nullopt;
  ::kill(pid_, signal);
  int status = 0;
  bool done = wait_until([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, timeout);
  if (!done) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    exited_ = true;
    return std::nullopt;
  }
  exited_ = true;
  return status;
}

std::vector<WorkerRow> ServerProcess::workers() {
  auto res = client().get("/admin/v1/workers");
  std::vector<WorkerRow> rows;
  if (res.status != 200) return rows;
  auto doc = json::parse(res.body);
  for (const auto& w : doc.at("workers").as_array()) {
    WorkerRow row;
    row.id = std::string(w.at("id").as_string());
    row.state = std::string(w.at("state").as_string());
    row.tier = std::string(w.at("tier").as_string());
    row.pid = w.at("pid").is_null() ? 0 : static_cast<pid_t>(w.at("pid").to_number<std::int64_t>());
    row.restarts = static_cast<int>(w.at("restarts").to_number<std::int64_t>());
    rows.push_back(row);
  }
  return rows;
}

bool ServerProcess::wait_ready(std::size_t count, std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        std::size_t ready = 0;
        for (const auto& w : workers()) ready += w.state == "ready" ? 1 : 0;
        return ready >= count;
      },
      timeout);
}

std::optional<double> metric_value(const std::string& text, const std::string& sample) {
  std::size_t at = 0;
  while ((at = text.find(sample + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') {
      auto line_end = text.find('\n', at);
      return std::stod(text.substr(at + sample.size() + 1, line_end - at - sample.size() - 1));
    }
    at += sample.size();
  }
  return std::nullopt;
}

bool process_alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  std::string content;
  std::getline(stat, content);
  auto paren = content.rfind(')');
  if (paren == std::string::npos || paren + 2 >= content.size()) return false;
  return content[paren + 2] != 'Z' && content[paren + 2] != 'X';
}

std::vector<DigitRow> load_heldout() {
  std::ifstream in(source_dir() / "models/digits/heldout.csv");
  std::vector<DigitRow> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::stringstream s(line);
    std::string cell;
    std::vector<int> values;
    while (std::getline(s, cell, ',')) values.push_back(std::stoi(cell));
    if (values.size() != 65) throw std::runtime_error("heldout.csv: bad row");
    rows.push_back({std::vector<int>(values.begin(), values.begin() + 64), values[64]});
  }
  return rows;
}

std::string infer_body(const std::vector<DigitRow>& rows, std::size_t begin, std::size_t count) {
  std::string data;
  if (begin + count > rows.size())  // a caller's bug; indexing past the end crashed the test binary
    throw std::out_of_range("infer_body: rows " + std::to_string(begin) + ".." + std::to_string(begin + count) +
                            " of " + std::to_string(rows.size()));
  for (std::size_t r = begin; r < begin + count; ++r)
    for (int v : rows[r].pixels) {
      if (!data.empty()) data += ',';
      data += std::to_string(v);
    }
  return R"({"inputs":[{"name":"pixels","datatype":"FP32","shape":[)" + std::to_string(count) +
         R"(,64],"data":[)" + data + "]}]}";
}

std::string digits_endpoint(int replicas, const std::string& extra) {
  return "  digits:\n    model: " + (source_dir() / "models/digits").string() +
         "\n    slo: {timeout_ms: 3000}\n    dedicated: {replicas: " + std::to_string(replicas) +
         ", max_concurrency_per_worker: 4}\n" + extra;
}

} // namespace tandem::testing
