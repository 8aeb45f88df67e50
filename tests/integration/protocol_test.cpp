// The Open Inference Protocol routes of the gateway, answered from real workers.
#include "harness.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace tandem::testing {
namespace {

namespace json = boost::json;

class ProtocolTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() { server_ = new ServerProcess(digits_endpoint(1)); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static ServerProcess* server_;
};
ServerProcess* ProtocolTest::server_ = nullptr;

TEST_F(ProtocolTest, HealthAndServerMetadata) {
  auto c = server_->client();
  auto live = c.get("/v2/health/live");
  EXPECT_EQ(live.status, 200);
  EXPECT_EQ(json::parse(live.body).at("live").as_bool(), true);
  ASSERT_TRUE(wait_until([&] { return c.get("/v2/health/ready").status == 200; }, std::chrono::seconds(20)))
      << server_->logs();
  auto meta = c.get("/v2");
  ASSERT_EQ(meta.status, 200);
  EXPECT_EQ(json::parse(meta.body).at("name").as_string(), "tandem");
}

TEST_F(ProtocolTest, ModelMetadataReadyAndVersions) {
  auto c = server_->client();
  auto meta = c.get("/v2/models/digits");
  ASSERT_EQ(meta.status, 200) << meta.body;
  auto doc = json::parse(meta.body);
  EXPECT_EQ(doc.at("name").as_string(), "digits");
  std::string version(doc.at("versions").as_array().at(0).as_string());
  EXPECT_EQ(version.size(), 12u);
  EXPECT_EQ(doc.at("inputs").at(0).at("name").as_string(), "pixels");
  EXPECT_EQ(doc.at("inputs").at(0).at("datatype").as_string(), "FP32");
  EXPECT_EQ(doc.at("outputs").at(1).at("datatype").as_string(), "INT64");

  EXPECT_EQ(c.get("/v2/models/digits/versions/" + version).status, 200);
  ASSERT_TRUE(wait_until([&] { return c.get("/v2/models/digits/ready").status == 200; }, std::chrono::seconds(20)));
  EXPECT_EQ(c.get("/v2/models/digits/versions/" + version + "/ready").status, 200);
  auto wrong = c.get("/v2/models/digits/versions/000000000000");
  EXPECT_EQ(wrong.status, 404);
  EXPECT_NE(wrong.body.find("no version"), std::string::npos) << wrong.body;
}

TEST_F(ProtocolTest, InferReturnsPredictionWithHeaders) {
  auto rows = load_heldout();
  auto c = server_->client();
  auto res = c.post("/v2/models/digits/infer", infer_body(rows, 0, 1), {{"x-request-id", "client-id-1"}});
  ASSERT_EQ(res.status, 200) << res.body << server_->logs();
  auto doc = json::parse(res.body);
  const auto& outputs = doc.at("outputs").as_array();
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs.at(0).at("name").as_string(), "probabilities");
  EXPECT_EQ(outputs.at(0).at("data").as_array().size(), 10u);
  EXPECT_EQ(outputs.at(1).at("name").as_string(), "label");
  EXPECT_EQ(outputs.at(1).at("datatype").as_string(), "INT64");
  EXPECT_TRUE(outputs.at(1).at("data").at(0).is_int64()) << "labels are integers, not floats";

  EXPECT_EQ(res.header("x-client-request-id"), "client-id-1");
  EXPECT_EQ(res.header("x-request-id").size(), 32u);
  EXPECT_EQ(res.header("x-tandem-tier"), "dedicated");
  EXPECT_EQ(res.header("x-tandem-worker"), "digits-ded-0");
  EXPECT_EQ(res.header("x-tandem-model-version").size(), 12u);
  EXPECT_FALSE(res.header("x-tandem-queue-ms").empty());
  auto tp = res.header("traceparent");
  ASSERT_EQ(tp.size(), 55u) << tp;
  EXPECT_EQ(tp.substr(0, 3), "00-");

  // A caller's trace id is kept; a hostile request id is replaced.
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  auto traced = c.post("/v2/models/digits/infer", infer_body(rows, 0, 1),
                       {{"traceparent", "00-" + trace + "-00f067aa0ba902b7-01"}, {"x-request-id", "bad id\"x"}});
  ASSERT_EQ(traced.status, 200);
  EXPECT_EQ(traced.header("traceparent").substr(3, 32), trace);
  EXPECT_EQ(traced.header("x-request-id").size(), 32u);
  EXPECT_EQ(traced.header("x-client-request-id"), "");
}

TEST_F(ProtocolTest, RequestedOutputsOnly) {
  auto rows = load_heldout();
  auto body = infer_body(rows, 0, 2);
  body.insert(body.size() - 1, R"(,"outputs":[{"name":"label"}],"id":"abc")");
  auto res = server_->client().post("/v2/models/digits/infer", body);
  ASSERT_EQ(res.status, 200) << res.body;
  auto doc = json::parse(res.body);
  EXPECT_EQ(doc.at("id").as_string(), "abc");
  ASSERT_EQ(doc.at("outputs").as_array().size(), 1u);
  EXPECT_EQ(doc.at("outputs").at(0).at("shape").at(0).as_int64(), 2);
}

TEST_F(ProtocolTest, ExpectContinueIsAnsweredAndHeadHasNoBody) {
  auto rows = load_heldout();
  auto body = infer_body(rows, 0, 1);
  auto reply = server_->client().raw("POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                     "Content-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                                     std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(reply.rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 0), 0u) << reply;
  auto head = server_->client().raw("HEAD /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(head.find("Content-Length: 13\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n") << "no body after the head: " << head;
}

TEST_F(ProtocolTest, AdminWorkersListsTheFixedFields) {
  ASSERT_TRUE(server_->wait_ready(1));
  auto res = server_->client().get("/admin/v1/workers");
  ASSERT_EQ(res.status, 200);
  auto doc = json::parse(res.body);
  const auto& w = doc.at("workers").at(0).as_object();
  for (const char* key : {"id", "endpoint", "tier", "state", "pid", "address", "model_version"})
    EXPECT_TRUE(w.contains(key)) << key;
  EXPECT_EQ(w.at("endpoint").as_string(), "digits");
  EXPECT_EQ(w.at("tier").as_string(), "dedicated");
  EXPECT_TRUE(process_alive(static_cast<pid_t>(w.at("pid").as_int64())));
  EXPECT_EQ(std::string(w.at("address").as_string()).rfind("http://127.0.0.1:", 0), 0u);
}

TEST_F(ProtocolTest, KeepAliveServesManyRequestsOnOneConnection) {
  auto rows = load_heldout();
  auto c = server_->client();
  for (int i = 0; i < 50; ++i) ASSERT_EQ(c.post("/v2/models/digits/infer", infer_body(rows, 0, 1)).status, 200);
  auto metrics = c.get("/metrics").body;
  // The test client opened one connection for all of it (plus the harness's own probes).
  EXPECT_NE(metrics.find("tandem_http_connections_accepted_total"), std::string::npos);
}

} // namespace
} // namespace tandem::testing

namespace tandem::testing {
namespace {

namespace asio = boost::asio;

// A server whose connections may stay idle (or take to send a request) 300 ms, and a raw
// connection to it.
struct ShortIdleTimeout {
  ServerProcess server{digits_endpoint(1), "  limits: {idle_timeout: 300ms}\n"};
  asio::io_context io;
  asio::ip::tcp::socket socket{io};
  ShortIdleTimeout() { socket.connect({asio::ip::make_address(server.host()), server.port()}); }
};

TEST(Connections, IdleKeepAliveConnectionsAreClosedAfterTheIdleTimeout) {
  ShortIdleTimeout setup;
  auto& socket = setup.socket;
  const std::string request = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
  asio::write(socket, asio::buffer(request));
  char buffer[1024];
  boost::system::error_code ec;
  std::size_t n = socket.read_some(asio::buffer(buffer), ec);
  ASSERT_FALSE(ec);
  ASSERT_EQ(std::string(buffer, n).rfind("HTTP/1.1 200 OK", 0), 0u);
  // Now idle: the server must close it after about the idle timeout, not keep it forever.
  auto idle_since = std::chrono::steady_clock::now();
  socket.read_some(asio::buffer(buffer), ec);  // blocks until the server closes
  auto idle_for = std::chrono::steady_clock::now() - idle_since;
  EXPECT_EQ(ec, asio::error::eof);
  EXPECT_GE(idle_for, std::chrono::milliseconds(250));
  EXPECT_LT(idle_for, std::chrono::milliseconds(1500));
}

TEST(Connections, AClientThatStopsHalfwayThroughItsHeadersIsDroppedAfterTheIdleTimeout) {
  ShortIdleTimeout setup;
  auto& socket = setup.socket;
  // Part of a request, then nothing: the server must not wait for the rest forever.
  const std::string partial = "POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Le";
  asio::write(socket, asio::buffer(partial));
  auto since = std::chrono::steady_clock::now();
  char buffer[1024];
  boost::system::error_code ec;
  std::size_t n = socket.read_some(asio::buffer(buffer), ec);  // blocks until the server drops it
  auto waited = std::chrono::steady_clock::now() - since;
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message() << " after " << n << " bytes";
  EXPECT_GE(waited, std::chrono::milliseconds(250));
  EXPECT_LT(waited, std::chrono::milliseconds(1500));
  auto metrics = setup.server.client().get("/metrics").body;
  EXPECT_EQ(metric_value(metrics, "tandem_http_rejected_total{reason=\"read_timeout\"}").value_or(0), 1);
  // The connection limit's gauge counts it as closed.
  EXPECT_EQ(metric_value(metrics, "tandem_http_connections").value_or(-1), 1);  // the scrape's own
}

} // namespace
} // namespace tandem::testing
