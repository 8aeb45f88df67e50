// server.limits.max_inflight_body_bytes: request bodies of all connections together stay within
// the budget (large new bodies get a fast 503), every way out of a request releases its share,
// and transfer codings other than plain chunked are refused with 501.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

namespace tandem::testing {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kMiB = 1u << 20;

// A raw client connection: sends block (with a timeout) and never raise SIGPIPE; reads only take
// what has already arrived, so hundreds of connections can be watched from one thread.
class RawConnection {
public:
  RawConnection(const std::string& host, unsigned short port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval send_timeout{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    ::inet_pton(AF_INET, host.c_str(), &address.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~RawConnection() { close(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  [[nodiscard]] bool connected() const { return connected_; }

  /// False once the server has closed or reset the connection.
  bool send_all(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// Takes what has arrived without waiting.
  void poll() {
    if (fd_ < 0 || peer_closed_) return;
    char chunk[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n > 0) {
        received_.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) peer_closed_ = true;
      return;
    }
  }

  /// True once a whole response head has arrived.
  [[nodiscard]] bool answered() const { return received_.find("\r\n\r\n") != std::string::npos; }
  [[nodiscard]] const std::string& received() const { return received_; }

  /// Waits for a whole response and the server's close (or the deadline).
  std::string response(std::chrono::milliseconds timeout = 10s) {
    wait_until(
        [&] {
          poll();
          return peer_closed_;
        },
        timeout);
    return received_;
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

private:
  int fd_ = -1;
  bool connected_ = false;
  bool peer_closed_ = false;
  std::string received_;
};

std::string post_head(std::size_t content_length) {
  return "POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "Content-Length: " +
         std::to_string(content_length) + "\r\n\r\n";
}

std::string chunk(std::string_view data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return size + std::string(data) + "\r\n";
}

// A line of /proc/PID/status in bytes, e.g. "VmRSS" or "VmHWM" (the peak).
std::size_t proc_status_bytes(pid_t pid, const std::string& key) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1)) * 1024;
  return 0;
}

double metric(ServerProcess& server, const std::string& sample) {
  return metric_value(server.client().get("/metrics").body, sample).value_or(-1);
}

const std::string kBudgetRefusals = "tandem_http_rejected_total{reason=\"body_budget\"}";
const std::string kInFlight = "tandem_http_body_bytes_in_flight";

void expect_budget_refusal(const std::string& response) {
  EXPECT_EQ(response.rfind("HTTP/1.1 503 ", 0), 0u) << response;
  EXPECT_NE(response.find("\r\nRetry-After: 1\r\n"), std::string::npos) << response;
  EXPECT_NE(response.find("\r\nConnection: close\r\n"), std::string::npos) << response;
  EXPECT_NE(response.find("server.limits.max_inflight_body_bytes"), std::string::npos) << response;
}

// What docs/configuration.md promises bodies and connections add to the gateway's memory:
// the budget, the reserve for small bodies, the recycled strings, and per connection reading a
// request its buffer and parser.
std::size_t documented_bound_bytes(std::size_t budget_bytes, std::size_t connections) {
  return budget_bytes + 16 * kMiB + 32 * kMiB + connections * (200u << 10);
}

TEST(BodyBudget, StalledLargeBodiesStayWithinTheBudgetAndInferenceStillAnswers) {
  // The default limits: bodies up to 16 MiB, 256 MiB of them in flight.
  constexpr std::size_t budget_bytes = 256 * kMiB;
  constexpr std::size_t body_bytes = 16 * kMiB;
  constexpr int connections = 200;
  constexpr int admitted = static_cast<int>(budget_bytes / body_bytes);
  ServerProcess server(digits_endpoint(1));
  ASSERT_TRUE(server.wait_ready(1)) << server.logs();
  const auto rows = load_heldout();
  auto client = server.client();
  ASSERT_EQ(client.post("/v2/models/digits/infer", infer_body(rows, 0, 1)).status, 200);
  const std::size_t rest_bytes = proc_status_bytes(server.pid(), "VmRSS");
  const std::size_t bound_bytes = rest_bytes + documented_bound_bytes(budget_bytes, connections);

  // Each sends the head of a 16 MiB body and 1 MiB of it, then stalls.
  const std::string head = post_head(body_bytes);
  const std::string part(kMiB, '7');
  std::vector<std::unique_ptr<RawConnection>> stalled;
  for (int i = 0; i < connections; ++i) {
    stalled.push_back(std::make_unique<RawConnection>(server.host(), server.port()));
    ASSERT_TRUE(stalled.back()->connected()) << i;
    if (stalled.back()->send_all(head)) stalled.back()->send_all(part);
    // Stop early rather than take the machine's memory when nothing bounds it.
    const std::size_t rss_bytes = proc_status_bytes(server.pid(), "VmRSS");
    ASSERT_LE(rss_bytes, bound_bytes) << "after " << i + 1 << " connections: RSS " << rss_bytes / kMiB
                                      << " MiB, at rest " << rest_bytes / kMiB << " MiB";
  }

  // All but the bodies that fit are refused at once, before their bodies are read.
  std::size_t answered = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        answered = 0;
        for (auto& c : stalled) {
          c->poll();
          answered += c->answered() ? 1 : 0;
        }
        return answered >= static_cast<std::size_t>(connections - admitted);
      },
      15s))
      << answered << " refused";
  for (auto& c : stalled)
    if (c->answered()) expect_budget_refusal(c->received());
  EXPECT_EQ(metric(server, kBudgetRefusals), connections - admitted);
  EXPECT_EQ(metric(server, kInFlight), static_cast<double>(budget_bytes));

  // A small inference still answers while large bodies hold the whole budget.
  auto inference = client.post("/v2/models/digits/infer", infer_body(rows, 0, 1));
  EXPECT_EQ(inference.status, 200) << inference.body;
  const std::size_t peak_bytes = proc_status_bytes(server.pid(), "VmHWM");
  std::printf("gateway RSS: %zu MiB at rest, %zu MiB now, peak %zu MiB, bound %zu MiB\n", rest_bytes / kMiB,
              proc_status_bytes(server.pid(), "VmRSS") / kMiB, peak_bytes / kMiB, bound_bytes / kMiB);
  EXPECT_LE(peak_bytes, bound_bytes);

  // Clients that go away mid-body give their share back: nothing leaks.
  stalled.clear();
  EXPECT_TRUE(wait_until([&] { return metric(server, kInFlight) == 0; }, 10s)) << metric(server, kInFlight);
  auto large = client.post("/v2/models/digits/infer", std::string(body_bytes, '['));
  EXPECT_EQ(large.status, 400) << large.body; // admitted, and refused by the validator
  EXPECT_EQ(metric(server, kBudgetRefusals), connections - admitted);
  EXPECT_EQ(metric(server, kInFlight), 0);
}

TEST(BodyBudget, ABodyThatTimesOutGivesItsShareBack) {
  ServerProcess server(
      digits_endpoint(0),
      "  limits: {max_body_bytes: 1048576, max_inflight_body_bytes: 1048576, idle_timeout: 1s}\n");
  RawConnection slow(server.host(), server.port());
  ASSERT_TRUE(slow.send_all(post_head(kMiB) + std::string(1000, '7')));
  ASSERT_TRUE(wait_until([&] { return metric(server, kInFlight) == static_cast<double>(kMiB); }, 5s));
  RawConnection refused(server.host(), server.port());
  ASSERT_TRUE(refused.send_all(post_head(kMiB)));
  expect_budget_refusal(refused.response());

  EXPECT_TRUE(wait_until([&] { return metric(server, kInFlight) == 0; }, 5s)) << metric(server, kInFlight);
  EXPECT_GE(metric(server, "tandem_http_rejected_total{reason=\"read_timeout\"}"), 1);
  auto admitted = server.client().post("/v2/models/digits/infer", std::string(kMiB, '['));
  EXPECT_EQ(admitted.status, 400) << admitted.body;
  EXPECT_EQ(metric(server, kBudgetRefusals), 1);
}

class ChunkedBodies : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess(digits_endpoint(1),
                                "  limits: {max_body_bytes: 1048576, max_inflight_body_bytes: 1048576}\n");
    ASSERT_TRUE(server_->wait_ready(1)) << server_->logs();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static ServerProcess* server_;
};
ServerProcess* ChunkedBodies::server_ = nullptr;

TEST_F(ChunkedBodies, AChunkedBodyGrowsOnlyWithinTheBudget) {
  const double refusals_before = std::max(0.0, metric(*server_, kBudgetRefusals));
  auto holder = std::make_unique<RawConnection>(server_->host(), server_->port());
  ASSERT_TRUE(holder->send_all(post_head(kMiB) + "x")); // holds the whole budget
  ASSERT_TRUE(wait_until([&] { return metric(*server_, kInFlight) == static_cast<double>(kMiB); }, 5s));

  const std::string chunked_head =
      "POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  RawConnection growing(server_->host(), server_->port());
  // 32 KiB fits the reserve for small bodies; the next 64 KiB does not.
  ASSERT_TRUE(growing.send_all(chunked_head + chunk(std::string(32u << 10, ' '))));
  growing.send_all(chunk(std::string(64u << 10, ' ')));
  expect_budget_refusal(growing.response());
  EXPECT_EQ(metric(*server_, kBudgetRefusals), refusals_before + 1);

  holder.reset();
  EXPECT_TRUE(wait_until([&] { return metric(*server_, kInFlight) == 0; }, 5s))
      << metric(*server_, kInFlight);
  // With the budget free, a chunked inference is answered.
  const std::string body = infer_body(load_heldout(), 0, 1);
  RawConnection whole(server_->host(), server_->port());
  ASSERT_TRUE(whole.send_all("POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n" +
                             chunk(body.substr(0, 100)) + chunk(body.substr(100)) + "0\r\n\r\n"));
  const std::string response = whole.response();
  EXPECT_EQ(response.rfind("HTTP/1.1 200 ", 0), 0u) << response;
  EXPECT_EQ(metric(*server_, kInFlight), 0);
}

TEST(TransferCodings, AnyOtherThanPlainChunkedGets501) {
  ServerProcess server(digits_endpoint(0));
  const std::string sample = "tandem_http_rejected_total{reason=\"unsupported_transfer_encoding\"}";
  const double before = std::max(0.0, metric(server, sample));
  const std::string body = infer_body(load_heldout(), 0, 1);
  const std::vector<std::string> codings = {
      "Transfer-Encoding: gzip, chunked\r\n", "Transfer-Encoding: gzip\r\n",
      "Transfer-Encoding: chunked, chunked\r\n", "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"};
  for (const auto& coding : codings) {
    RawConnection c(server.host(), server.port());
    ASSERT_TRUE(c.send_all("POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\n" + coding + "\r\n" +
                           chunk(body) + "0\r\n\r\n"));
    const std::string response = c.response();
    EXPECT_EQ(response.rfind("HTTP/1.1 501 ", 0), 0u) << coding << response;
    EXPECT_NE(response.find("is not supported"), std::string::npos) << response;
    EXPECT_NE(response.find("\r\nConnection: close\r\n"), std::string::npos) << response;
  }
  EXPECT_EQ(metric(server, sample), before + static_cast<double>(codings.size()));
  EXPECT_EQ(metric(server, kInFlight), 0);
}

} // namespace
} // namespace tandem::testing
