// Deployment with a real SQLite store, a real registry directory and the bundled digits model.
#include "app/deployment.hpp"

#include "cli/worker_args.hpp"
#include "state/sqlite_store.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace tandem::app {
namespace {

namespace fs = std::filesystem;

class DeploymentTest : public ::testing::Test {
protected:
  void SetUp() override {
    auto store = registry::open_sqlite_store(dir_.path() / "tandem.db");
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
    models_ = std::make_unique<registry::ModelRegistry>(
        *store_, dir_.path(), [] { return std::int64_t{1}; }, 1ULL << 30);
  }
  Config config(const std::string& endpoints) {
    auto parsed = parse_config("endpoints:\n" + endpoints, fs::path(TANDEM_SOURCE_DIR) / "examples",
                               {.worker_args = cli::worker_args_error});
    EXPECT_TRUE(parsed.ok()) << parsed.error().message;
    return parsed.ok() ? *parsed : Config{};
  }
  testing::TempDir dir_;
  SteadyClock clock_;
  std::unique_ptr<registry::StateStore> store_;
  std::unique_ptr<registry::ModelRegistry> models_;
};

TEST_F(DeploymentTest, EachEndpointsModelIsLoadedCheckedAndRecorded) {
  auto c = config("  digits: {model: ../models/digits}\n  again: {model: ../models/digits}\n");
  auto manifests = deploy_endpoints(c, *models_, *store_, clock_);
  ASSERT_TRUE(manifests.ok()) << manifests.error().message;
  ASSERT_EQ(manifests->size(), 2u);
  EXPECT_EQ((*manifests)[0].name, "digits");
  auto recorded = store_->list_deployments("digits", 10);
  ASSERT_TRUE(recorded.ok());
  ASSERT_EQ(recorded->size(), 1u);
  EXPECT_EQ(recorded->front().version, (*manifests)[0].version);
}

TEST_F(DeploymentTest, AModelThatDoesNotLoadNamesItsEndpointAndRecordsNothingAfterIt) {
  auto c = config("  good: {model: ../models/digits}\n  bad: {model: ../models/no-such-model}\n"
                  "  later: {model: ../models/digits}\n");
  auto manifests = deploy_endpoints(c, *models_, *store_, clock_);
  ASSERT_FALSE(manifests.ok());
  EXPECT_EQ(manifests.error().message.rfind("endpoints.bad.model: ", 0), 0u) << manifests.error().message;
  EXPECT_EQ(store_->list_deployments("later", 10)->size(), 0u);
}

TEST_F(DeploymentTest, AReferenceTheRegistryDoesNotHoldNamesItsEndpoint) {
  auto c = config("  digits: {model: digits@latest}\n");
  auto manifests = deploy_endpoints(c, *models_, *store_, clock_);
  ASSERT_FALSE(manifests.ok());
  EXPECT_EQ(manifests.error().message.rfind("endpoints.digits.model: ", 0), 0u) << manifests.error().message;
}

TEST(DeclaredRollout, EveryDeclaredFieldReachesTheRequestAndUnsetOnesKeepThePolicyDefaults) {
  auto parsed =
      parse_config("endpoints:\n  d:\n    model: m\n    rollout: {to: m@latest, strategy: blue-green, "
                   "min_requests: 7, max_p95_ratio: 2.5, worker_args: [--threads, '2']}\n",
                   "/etc/tandem", {});
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  const auto request = declared_rollout(parsed->endpoints.front());
  EXPECT_EQ(request.endpoint, "d");
  EXPECT_EQ(request.to, "m@latest");
  EXPECT_EQ(request.actor, "configuration");
  EXPECT_EQ(request.spec.strategy, policy::RolloutStrategy::blue_green);
  EXPECT_EQ(request.spec.min_requests, 7);
  EXPECT_DOUBLE_EQ(request.spec.thresholds.max_p95_ratio, 2.5);
  EXPECT_EQ(request.spec.steps_percent, policy::RolloutSpec{}.steps_percent);
  EXPECT_EQ(request.worker_args, (std::vector<std::string>{"--threads", "2"}));
}

} // namespace
} // namespace tandem::app
