// The model registry end to end: the real CLI pushing to the real server, the SQLite state
// surviving a restart, and an endpoint deployed from NAME@VERSION.
#include "harness.hpp"
#include "base/sha256.hpp"
#include "model/model_manifest.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace tandem::testing {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A private copy of the digits model that the test may change.
fs::path copy_digits_model(const fs::path& into) {
  fs::create_directories(into);
  for (const char* file : {"tandem-model.yaml", "model.onnx"})
    fs::copy_file(source_dir() / "models/digits" / file, into / file, fs::copy_options::overwrite_existing);
  return into;
}

json::object show(const std::string& what, const std::string& url) {
  auto r = run_tandem({"models", "show", what, "--json"}, url);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out).as_object();
}

TEST(RegistryTest, PushIsContentAddressedIdempotentImmutableAndSurvivesRestart) {
  const fs::path dir = make_temp_dir();
  const fs::path model = copy_digits_model(dir / "model");
  const auto local = load_model_manifest(model);
  ASSERT_TRUE(local.ok());
  std::string v1;
  {
    ServerProcess server(digits_endpoint(1), "", dir);
    const std::string url = "http://" + server.host() + ":" + std::to_string(server.port());

    auto pushed = run_tandem({"models", "push", model.string(), "--name", "digits", "--tag", "team=vision",
                              "--pushed-by", "alice"},
                             url);
    ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
    EXPECT_NE(pushed.out.find("pushed (new version)"), std::string::npos) << pushed.out;

    // The version is derived from the content: the same id the local directory hashes to.
    auto latest = show("digits@latest", url);
    v1 = std::string(latest.at("version").as_string());
    EXPECT_EQ(v1, local->version);
    EXPECT_EQ(latest.at("id").as_string(), local->digest);
    EXPECT_EQ(latest.at("artifact").at("sha256").as_string(), local->artifact_sha256);
    const auto& lineage = latest.at("lineage").as_object();
    EXPECT_EQ(lineage.at("dataset").at("name").as_string(), "sklearn-digits");
    EXPECT_EQ(lineage.at("dataset").at("sha256").as_string(),
              "46abec6b12486ad9e51943373abcf22bbea1b5a51a1619b361570d8893f1464a");
    EXPECT_EQ(lineage.at("training_code").as_string(), "models/digits/train.py");
    EXPECT_EQ(lineage.at("tags").at("team").as_string(), "vision");
    EXPECT_TRUE(lineage.at("parent").is_null());
    EXPECT_EQ(latest.at("pushed_by").as_string(), "alice");
    EXPECT_EQ(show("digits@" + v1.substr(0, 8), url).at("version").as_string(), v1);

    // Identical content again: a no-op returning the same version.
    auto again = run_tandem({"models", "push", model.string(), "--name", "digits", "--tag", "team=vision"}, url);
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_NE(again.out.find("digits@" + v1), std::string::npos) << again.out;
    EXPECT_NE(again.out.find("unchanged"), std::string::npos) << again.out;
    EXPECT_EQ(show("digits", url).at("versions").as_array().size(), 1u);

    // The same content with different tags would change an immutable version: 409.
    auto retag = run_tandem({"models", "push", model.string(), "--name", "digits", "--tag", "team=other"}, url);
    EXPECT_EQ(retag.exit_code, 1);
    EXPECT_NE(retag.err.find("HTTP 409"), std::string::npos) << retag.err;
    EXPECT_NE(retag.err.find("immutable"), std::string::npos) << retag.err;
    // So is any write to a version by its id.
    auto client = server.client();
    for (auto method : {http::verb::put, http::verb::patch, http::verb::delete_}) {
      auto res = client.request(method, "/admin/v1/models/digits/versions/" + v1, R"({"tags":{}})");
      EXPECT_EQ(res.status, 409) << res.body;
      EXPECT_NE(res.body.find("immutable"), std::string::npos) << res.body;
    }

    // Changed content: a new version, whose parent is the previous latest.
    {
      std::ofstream manifest(model / "tandem-model.yaml", std::ios::app);
      manifest << "# retrained with more epochs\n";
    }
    auto changed = run_tandem({"models", "push", model.string(), "--name", "digits"}, url);
    ASSERT_EQ(changed.exit_code, 0) << changed.err;
    auto v2_record = show("digits@latest", url);
    const std::string v2(v2_record.at("version").as_string());
    EXPECT_NE(v2, v1);
    EXPECT_EQ(v2_record.at("lineage").at("parent").as_string(), "digits@" + v1);
    EXPECT_EQ(v2_record.at("artifact").at("sha256").as_string(), local->artifact_sha256);  // stored once

    auto list = run_tandem({"models", "list"}, url);
    ASSERT_EQ(list.exit_code, 0) << list.err;
    EXPECT_NE(list.out.find("digits"), std::string::npos);
    EXPECT_NE(list.out.find(v2), std::string::npos) << list.out;

    // Bad input gets a clear error.
    auto missing = client.get("/admin/v1/models/nosuch/versions/latest");
    EXPECT_EQ(missing.status, 404);
    auto bad = client.post("/admin/v1/models", R"({"name":"x","manifest":"name: x","artifact_sha256":"00"})");
    EXPECT_EQ(bad.status, 400) << bad.body;
    EXPECT_NE(bad.body.find("artifact_sha256"), std::string::npos) << bad.body;
    auto wrong_blob = client.request(http::verb::put, "/admin/v1/blobs/sha256:" + std::string(64, 'a'), "bytes");
    EXPECT_EQ(wrong_blob.status, 400) << wrong_blob.body;
  }

  // A restart on the same state directory, deploying the first version by reference.
  const std::string endpoint = "  digits:\n    model: digits@" + v1 +
                               "\n    slo: {timeout_ms: 3000}\n    dedicated: {replicas: 1}\n";
  ServerProcess server(endpoint, "", dir);
  const std::string url = "http://" + server.host() + ":" + std::to_string(server.port());
  auto versions = show("digits", url).at("versions").as_array();
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(show("digits@" + v1, url).at("pushed_by").as_string(), "alice");
  ASSERT_TRUE(server.wait_ready(1));
  auto client = server.client();
  auto rows = load_heldout();
  auto res = client.post("/v2/models/digits/infer", infer_body(rows, 0, 1));
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.header("x-tandem-model-version"), v1);
  auto deployments = client.get("/admin/v1/deployments?endpoint=digits");
  ASSERT_EQ(deployments.status, 200);
  EXPECT_NE(deployments.body.find("\"model\":\"digits@" + v1 + "\""), std::string::npos) << deployments.body;
  server.stop(SIGTERM);
  std::error_code ec;
  if (!::testing::Test::HasFailure()) fs::remove_all(dir, ec);
}

TEST(RegistryTest, UnknownRegistryReferenceFailsAtStartWithAClearMessage) {
  const fs::path dir = make_temp_dir();
  EXPECT_THROW(ServerProcess("  digits:\n    model: digits@latest\n    dedicated: {replicas: 1}\n", "", dir),
               std::runtime_error);
  std::ifstream log(dir / "serve.log");
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_NE(text.str().find("is not in the registry"), std::string::npos) << text.str();
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// A manifest whose artifact points outside its directory is refused by the CLI before it sends
// anything: the server holds no blob afterwards.
TEST(RegistryTest, PushOfAManifestPointingOutsideItsDirectoryUploadsNothing) {
  const fs::path dir = make_temp_dir();
  const fs::path model = copy_digits_model(dir / "model");
  {
    std::ifstream in(model / "tandem-model.yaml");
    std::stringstream text;
    text << in.rdbuf();
    std::string manifest = text.str();
    const auto at = manifest.find("artifact: model.onnx");
    ASSERT_NE(at, std::string::npos) << manifest;
    manifest.replace(at, std::string("artifact: model.onnx").size(), "artifact: ../../../../../../etc/passwd");
    std::ofstream(model / "tandem-model.yaml") << manifest;
  }
  ServerProcess server(digits_endpoint(1), "", dir);
  auto pushed = run_tandem({"models", "push", model.string(), "--name", "digits"}, server.url());
  EXPECT_NE(pushed.exit_code, 0) << pushed.out;
  EXPECT_NE(pushed.err.find("outside the model directory"), std::string::npos) << pushed.err;
  auto blobs = server.client().get("/admin/v1/blobs");
  ASSERT_EQ(blobs.status, 200) << blobs.body;
  EXPECT_TRUE(json::parse(blobs.body).at("blobs").as_array().empty()) << blobs.body;
  EXPECT_FALSE(fs::exists(dir / "state" / "blobs" / "sha256")) << "a blob directory was created";
}

// DELETE takes a blob no version uses (409 for one a version uses), the sweep takes the ones
// left behind once they are older than the grace, and the quota refuses a blob past it.
TEST(RegistryTest, UnusedBlobsAreDeletedOnRequestSweptAfterTheGraceAndBoundedByTheQuota) {
  const fs::path dir = make_temp_dir();
  const fs::path model = copy_digits_model(dir / "model");
  const auto local = load_model_manifest(model);
  ASSERT_TRUE(local.ok());
  const std::uint64_t artifact_bytes = fs::file_size(model / "model.onnx");
  // Room for the artifact and one small blob; a sweep every 200 ms of blobs older than 1 s.
  const std::string registry_yaml = "  registry: {max_blob_bytes: " + std::to_string(artifact_bytes + (1 << 20)) +
                                    ", unused_blob_grace: 1s, blob_sweep_interval: 200ms}\n";
  ServerProcess server(digits_endpoint(1), registry_yaml, dir);
  auto pushed = run_tandem({"models", "push", model.string(), "--name", "digits"}, server.url());
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  auto client = server.client();
  const std::string used = "/admin/v1/blobs/sha256:" + local->artifact_sha256;
  auto refused = client.request(http::verb::delete_, used, "");
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_NE(refused.body.find("digits@" + local->version), std::string::npos) << refused.body;

  const std::string small(1000, 's');
  const std::string small_path = "/admin/v1/blobs/sha256:" + sha256_hex(small);
  ASSERT_EQ(client.request(http::verb::put, small_path, small).status, 201);
  auto listed = json::parse(client.get("/admin/v1/blobs").body).as_object();
  EXPECT_EQ(listed.at("blobs").as_array().size(), 2u) << listed;
  EXPECT_EQ(listed.at("total_bytes").as_int64(), static_cast<std::int64_t>(artifact_bytes + small.size()));
  auto deleted = client.request(http::verb::delete_, small_path, "");
  EXPECT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(client.get(small_path).status, 404);

  // Past the quota: 507, counted.
  const std::string big((1 << 20) + 1, 'b');
  auto full = client.request(http::verb::put, "/admin/v1/blobs/sha256:" + sha256_hex(big), big);
  EXPECT_EQ(full.status, 507) << full.body;
  EXPECT_NE(full.body.find("server.registry.max_blob_bytes"), std::string::npos) << full.body;

  // Uploaded and never pushed: swept once older than the grace. The version's blob stays.
  ASSERT_EQ(client.request(http::verb::put, small_path, small).status, 201);
  EXPECT_TRUE(wait_until([&] { return client.get(small_path).status == 404; }, 10s)) << server.logs();
  EXPECT_EQ(client.get(used).status, 200);
  auto metrics = client.get("/metrics").body;
  EXPECT_EQ(metric_value(metrics, "tandem_blob_uploads_refused_total"), 1.0) << metrics;
  EXPECT_EQ(metric_value(metrics, "tandem_blobs_removed_total"), 2.0) << metrics;
  EXPECT_EQ(metric_value(metrics, "tandem_blobs"), 1.0) << metrics;
  EXPECT_EQ(metric_value(metrics, "tandem_blob_bytes"), static_cast<double>(artifact_bytes)) << metrics;
}

} // namespace
} // namespace tandem::testing
