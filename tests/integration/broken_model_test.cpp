// Broken models are refused where they enter, with the engine's reason: at push, and at
// start-up, instead of workers that restart forever behind a server that is never ready.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace tandem::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The digits model with its artifact replaced by `artifact_bytes`.
fs::path broken_digits_model(const fs::path& into, const std::string& artifact_bytes) {
  fs::create_directories(into);
  fs::copy_file(source_dir() / "models/digits/tandem-model.yaml", into / "tandem-model.yaml",
                fs::copy_options::overwrite_existing);
  std::ofstream(into / "model.onnx", std::ios::binary) << artifact_bytes;
  return into;
}

std::string truncated_onnx() {
  std::ifstream in(source_dir() / "models/digits/model.onnx", std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str().substr(0, bytes.str().size() / 3);
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(BrokenModelTest, PushOfAnEmptyOrCorruptOnnxIsRefusedWithTheEnginesReason) {
  const fs::path dir = make_temp_dir();
  ServerProcess server(digits_endpoint(1), "", dir);
  const std::string url = "http://" + server.host() + ":" + std::to_string(server.port());
  for (const auto& [label, bytes] :
       {std::pair<std::string, std::string>{"empty", ""}, {"truncated", truncated_onnx()}}) {
    const auto model = broken_digits_model(dir / label, bytes);
    auto pushed = run_tandem({"models", "push", model.string(), "--name", "broken"}, url);
    EXPECT_NE(pushed.exit_code, 0) << label << ": " << pushed.out;
    EXPECT_NE(pushed.err.find("artifact: cannot load"), std::string::npos) << label << ": " << pushed.err;
  }
  auto list = run_tandem({"models", "list"}, url);
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.out.find("broken"), std::string::npos) << list.out;
  // The server is unharmed.
  auto rows = load_heldout();
  EXPECT_EQ(server.client().post("/v2/models/digits/infer", infer_body(rows, 0, 1)).status, 200);
  server.stop(SIGTERM);
  fs::remove_all(dir);
}

TEST(BrokenModelTest, AnEndpointWithNoCapacityStartsWithAWarningAndIsNotReady) {
  ServerProcess server(digits_endpoint(0));
  auto client = server.client();
  EXPECT_TRUE(wait_until([&] { return server.logs().find("endpoint digits: no capacity") != std::string::npos; }, 5s))
      << server.logs();
  EXPECT_NE(client.get("/v2/models/digits/ready").status, 200);
  auto rows = load_heldout();
  EXPECT_EQ(client.post("/v2/models/digits/infer", infer_body(rows, 0, 1)).status, 503);
}

// A serverless pool at min 0 is ready while it can start workers; once a start fails it is not
// (every inference would wait, then get 503), until a start succeeds or the failure is a minute old.
TEST(BrokenModelTest, AServerlessPoolWhoseWorkersCannotStartIsNotReady) {
  ServerProcess server("  digits:\n    model: " + (source_dir() / "models/digits").string() +
                       "\n    slo: {timeout_ms: 2000}\n    serverless: {min: 0, max: 1}\n"
                       "    worker: {command: [sh, -c, 'echo cannot load >&2; exit 3'], start_timeout: 2s}\n");
  auto client = server.client();
  EXPECT_EQ(client.get("/v2/health/ready").status, 200) << "no start has failed yet";
  auto inference = client.post("/v2/models/digits/infer", infer_body(load_heldout(), 0, 1));
  EXPECT_GE(inference.status, 500) << inference.body;
  EXPECT_TRUE(wait_until([&] { return client.get("/v2/health/ready").status == 503; }, 10s)) << server.logs();
  // The model's readiness says why, in the worker's own words.
  auto ready = client.get("/v2/models/digits/ready");
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find(R"("reason":"worker digits-)"), std::string::npos) << ready.body;
  EXPECT_NE(ready.body.find("exit code 3"), std::string::npos) << ready.body;
  EXPECT_NE(ready.body.find("cannot load"), std::string::npos) << ready.body;
  // The worker's line is still in the server's log, as it was when workers wrote to it directly.
  EXPECT_NE(server.logs().find("cannot load"), std::string::npos);
}

TEST(BrokenModelTest, AConfigWhoseModelIsCorruptFailsAtStartNamingTheEndpointAndTheReason) {
  const fs::path dir = make_temp_dir();
  const auto model = broken_digits_model(dir / "model", truncated_onnx());
  const std::string endpoints =
      "  digits:\n    model: " + model.string() + "\n    dedicated: {replicas: 1}\n";
  EXPECT_THROW(ServerProcess(endpoints, "", dir), std::runtime_error);
  const auto log = read_file(dir / "serve.log");
  EXPECT_NE(log.find("endpoints.digits.model: cannot load"), std::string::npos) << log;
  fs::remove_all(dir);
}

} // namespace
} // namespace tandem::testing
