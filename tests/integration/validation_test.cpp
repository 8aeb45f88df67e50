// Every bad input gets a clear error with the right status and a JSON body naming the field,
// and nothing a client sends takes the gateway down.
#include "harness.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace tandem::testing {
namespace {

namespace json = boost::json;

class ValidationTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    // A second endpoint whose worker command exits at once: it never has a ready worker.
    std::string broken = "  broken:\n    model: " + (source_dir() / "models/digits").string() +
                         "\n    slo: {timeout_ms: 300}\n    worker: {command: [\"false\"]}\n"
                         "    dedicated: {replicas: 1}\n";
    server_ = new ServerProcess(digits_endpoint(1) + broken,
                                "  limits: {max_body_bytes: 65536, max_header_bytes: 4096}\n");
    ASSERT_TRUE(wait_until([] { return server_->client().get("/v2/models/digits/ready").status == 200; },
                           std::chrono::seconds(20)));
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  // Posts `body` to the digits endpoint and checks status and that the error names `field`.
  static void expect_error(const std::string& body, int status, const std::string& fragment) {
    auto res = server_->client().post("/v2/models/digits/infer", body);
    EXPECT_EQ(res.status, status) << body << "\n" << res.body;
    ASSERT_FALSE(res.body.empty());
    auto doc = json::parse(res.body);
    ASSERT_TRUE(doc.as_object().contains("error")) << res.body;
    std::string message(doc.at("error").as_string());
    EXPECT_NE(message.find(fragment), std::string::npos) << "error \"" << message << "\" should mention " << fragment;
    EXPECT_EQ(res.header("content-type"), "application/json");
  }

  static std::string pixels(const std::string& shape, const std::string& data, const std::string& name = "pixels",
                            const std::string& datatype = "FP32") {
    return R"({"inputs":[{"name":")" + name + R"(","datatype":")" + datatype + R"(","shape":)" + shape +
           R"(,"data":)" + data + "}]}";
  }

  static std::string zeros(int n) {
    std::string out = "[";
    for (int i = 0; i < n; ++i) out += i ? ",0" : "0";
    return out + "]";
  }

  static ServerProcess* server_;
};
ServerProcess* ValidationTest::server_ = nullptr;

TEST_F(ValidationTest, MalformedJsonIs400) {
  expect_error("{\"inputs\": [", 400, "malformed JSON");
  expect_error("not json at all", 400, "malformed JSON");
  expect_error("[1,2,3]", 400, "expected a JSON object");
}

TEST_F(ValidationTest, MissingOrUnknownInputNameIs400) {
  expect_error(R"({"id":"x"})", 400, "inputs");
  expect_error(R"({"inputs":[]})", 400, "inputs");
  expect_error(pixels("[1,64]", zeros(64), "pixel"), 400, "inputs[0].name: unknown input \"pixel\"");
}

TEST_F(ValidationTest, WrongDatatypeIs400) {
  expect_error(pixels("[1,64]", zeros(64), "pixels", "INT32"), 400, "inputs[0].datatype");
  expect_error(pixels("[1,64]", zeros(64), "pixels", "NOPE"), 400, "inputs[0].datatype");
}

TEST_F(ValidationTest, ShapeThatDoesNotMatchTheSchemaIs400) {
  expect_error(pixels("[1,63]", zeros(63)), 400, "inputs[0].shape");
  expect_error(pixels("[64]", zeros(64)), 400, "inputs[0].shape");
  expect_error(pixels("[1,64,1]", zeros(64)), 400, "inputs[0].shape");
  expect_error(pixels("[2000,64]", zeros(64)), 400, "max_batch_size");
}

TEST_F(ValidationTest, DataLengthThatDoesNotMatchTheShapeIs400) {
  expect_error(pixels("[2,64]", zeros(64)), 400, "inputs[0].data: has 64 elements but shape [2, 64] needs 128");
  expect_error(pixels("[1,64]", zeros(65)), 400, "inputs[0].data");
}

TEST_F(ValidationTest, NonNumericDataIs400) {
  std::string data = zeros(64);
  data.replace(1, 1, "\"a\"");
  expect_error(pixels("[1,64]", data), 400, "inputs[0].data[0]: expected a number");
  expect_error(pixels("[1,64]", "\"abc\""), 400, "inputs[0].data: expected an array");
  std::string with_null = zeros(64);
  with_null.replace(with_null.size() - 2, 1, "null");
  expect_error(pixels("[1,64]", with_null), 400, "inputs[0].data[63]");
}

TEST_F(ValidationTest, UnknownModelOrVersionIs404) {
  auto c = server_->client();
  auto res = c.post("/v2/models/nosuch/infer", pixels("[1,64]", zeros(64)));
  EXPECT_EQ(res.status, 404);
  EXPECT_NE(res.body.find("unknown model"), std::string::npos);
  EXPECT_EQ(c.post("/v2/models/digits/versions/ffffffffffff/infer", pixels("[1,64]", zeros(64))).status, 404);
  EXPECT_EQ(c.get("/v2/nothing-here").status, 404);
}

TEST_F(ValidationTest, WrongMethodIs405) {
  auto c = server_->client();
  auto res = c.get("/v2/models/digits/infer");
  EXPECT_EQ(res.status, 405);
  EXPECT_EQ(res.header("allow"), "POST");
  EXPECT_NE(res.body.find("\"error\""), std::string::npos);
  EXPECT_EQ(c.request(boost::beast::http::verb::delete_, "/v2/models/digits").status, 405);
  EXPECT_EQ(c.post("/v2/health/live", "{}").status, 405);
}

TEST_F(ValidationTest, BodyOverTheLimitIs413) {
  std::string big = pixels("[1,64]", "[" + std::string(70000, ' ') + "0]");
  auto res = server_->client().post("/v2/models/digits/infer", big);
  EXPECT_EQ(res.status, 413) << res.error;
  EXPECT_NE(res.body.find("max_body_bytes"), std::string::npos) << res.body;
}

TEST_F(ValidationTest, HeadersOverTheLimitAre431) {
  auto res = server_->client().request(boost::beast::http::verb::get, "/v2/health/live", "",
                                       {{"x-padding", std::string(8000, 'a')}});
  EXPECT_EQ(res.status, 431) << res.error;
}

TEST_F(ValidationTest, WorkerUnavailableIs503WithRetryAfter) {
  auto res = server_->client().post("/v2/models/broken/infer", pixels("[1,64]", zeros(64)));
  EXPECT_EQ(res.status, 503) << res.body;
  EXPECT_EQ(res.header("retry-after"), "1");
  EXPECT_NE(res.body.find("\"error\""), std::string::npos);
  EXPECT_EQ(server_->client().get("/v2/models/broken/ready").status, 503);
}

TEST_F(ValidationTest, GarbageNeverCrashesTheGateway) {
  auto c = server_->client();
  const std::vector<std::string> raw = {
      "GARBAGE\r\n\r\n",
      "POST /v2/models/digits/infer HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
      "POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      std::string("GET /v2/health/live HTTP/1.1\r\nHost: \x01\x02\r\n\r\n"),
  };
  for (const auto& bytes : raw) {
    auto reply = c.raw(bytes);
    EXPECT_TRUE(reply.empty() || reply.rfind("HTTP/1.1 4", 0) == 0) << reply;
  }
  const std::vector<std::string> bodies = {
      R"({"inputs":[{"name":"pixels","datatype":"FP32","shape":[1,64],"data":[[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]}]})",
      R"({"inputs":[{"name":"pixels","datatype":"FP32","shape":[-1,64],"data":[]}]})",
      R"({"inputs":[{"name":"pixels","datatype":"FP32","shape":[99999999999999,64],"data":[]}]})",
      R"({"inputs":[{"name":"pixels","datatype":"FP32","shape":[1,64],"data":[1e999]}]})",
      R"({"inputs":[{"name":"pixels","datatype":"FP32","shape":[0,64],"data":[]}]})",
      R"({"inputs":[{"name":"pixels","datatype":"FP32","shape":[1,64],"data":[1]},{"name":"pixels"}]})",
      R"({"inputs":[{"name":"pixels","datatype":"FP32","shape":[1,64],"data":[1]}],"outputs":[{"name":"x"}]})",
      "{\"inputs\":[{\"name\":\"\xff\xfe\"}]}",
      "",
  };
  for (const auto& body : bodies) {
    auto res = c.post("/v2/models/digits/infer", body);
    EXPECT_EQ(res.status, 400) << body << " -> " << res.body;
  }
  // Still serving.
  auto rows = load_heldout();
  EXPECT_EQ(c.post("/v2/models/digits/infer", infer_body(rows, 0, 1)).status, 200);
  EXPECT_TRUE(process_alive(server_->pid()));
}

} // namespace
} // namespace tandem::testing
