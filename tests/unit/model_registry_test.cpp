// The model registry with a real SQLite store, real blob files and the bundled digits model.
#include "state/model_registry.hpp"

#include "base/sha256.hpp"
#include "state/sqlite_store.hpp"

#include <gtest/gtest.h>
#include "support/temp_dir.hpp"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace tandem::registry {
namespace {

namespace fs = std::filesystem;

const fs::path kDigits = fs::path(TANDEM_SOURCE_DIR) / "models" / "digits";
constexpr std::int64_t kStartMs = 1'700'000'000'000;

using tandem::testing::TempDir;

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot read " << path;
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

class ModelRegistryTest : public ::testing::Test {
protected:
  void SetUp() override {
    manifest_text_ = read_bytes(kDigits / "tandem-model.yaml");
    artifact_bytes_ = read_bytes(kDigits / "model.onnx");
    artifact_sha256_ = sha256_hex(artifact_bytes_);
    open();
  }

  void open() {
    auto opened = open_sqlite_store(sqlite_path(dir_.path()));
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(*opened);
    // Each push reads the clock once; every reading is a second later than the one before.
    registry_ = std::make_unique<ModelRegistry>(*store_, dir_.path(), [this] { return now_ms_ += 1000; });
  }

  void close() {
    registry_.reset();
    store_.reset();
  }

  ModelRegistry& registry() { return *registry_; }

  void upload_artifact() {
    auto put = registry().blobs().put(artifact_bytes_, artifact_sha256_);
    ASSERT_TRUE(put.ok()) << put.error().message;
  }

  PushRequest digits_request() const {
    PushRequest request;
    request.name = "digits";
    request.manifest_text = manifest_text_;
    request.artifact_sha256 = artifact_sha256_;
    request.pushed_by = "alice";
    return request;
  }

  /// Pushes and expects success.
  PushResult push_ok(const PushRequest& request) {
    auto pushed = registry().push(request);
    EXPECT_TRUE(pushed.ok()) << (pushed.ok() ? "" : pushed.error().message);
    return pushed.ok() ? *pushed : PushResult{};
  }

  /// Pushes and expects a failure with `code`; returns its message.
  std::string push_error(const PushRequest& request, ErrorCode code) {
    auto pushed = registry().push(request);
    EXPECT_FALSE(pushed.ok()) << "accepted " << request.name;
    if (pushed.ok()) return {};
    EXPECT_EQ(pushed.error().code, code) << pushed.error().message;
    return pushed.error().message;
  }

  TempDir dir_;
  std::int64_t now_ms_ = kStartMs;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<ModelRegistry> registry_;
  std::string manifest_text_;
  std::string artifact_bytes_;
  std::string artifact_sha256_;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// --- push -------------------------------------------------------------------------------

TEST_F(ModelRegistryTest, PushCreatesAVersionAddressedLikeTheModelDirectory) {
  upload_artifact();
  const auto pushed = push_ok(digits_request());
  ASSERT_TRUE(pushed.created);
  const auto& r = pushed.record;

  auto manifest = load_model_manifest(kDigits);
  ASSERT_TRUE(manifest.ok()) << manifest.error().message;
  EXPECT_EQ(r.digest, manifest->digest);
  EXPECT_EQ(r.version, manifest->version);
  EXPECT_EQ(r.version, r.digest.substr(0, 12));
  EXPECT_EQ(r.digest.size(), 64u);
  EXPECT_EQ(r.manifest_sha256, manifest->manifest_sha256);
  EXPECT_EQ(r.artifact_sha256, manifest->artifact_sha256);
  EXPECT_EQ(r.digest, model_version_digest(r.manifest_sha256, r.artifact_sha256));
  EXPECT_EQ(r.name, "digits");
  EXPECT_EQ(r.artifact_name, "model.onnx");
  EXPECT_EQ(r.artifact_bytes, static_cast<std::int64_t>(fs::file_size(kDigits / "model.onnx")));
  EXPECT_EQ(r.format, "onnx");
  EXPECT_EQ(r.manifest_text, manifest_text_);
  EXPECT_EQ(r.created_unix_ms, kStartMs + 1000);
  EXPECT_EQ(r.pushed_by, "alice");
  EXPECT_EQ(r.parent_version, ""); // the first version of a name has none
}

TEST_F(ModelRegistryTest, PushTakesLineageFromTheManifest) {
  upload_artifact();
  const auto r = push_ok(digits_request()).record;
  EXPECT_EQ(r.dataset_name, "sklearn-digits");
  EXPECT_EQ(r.dataset_sha256, "46abec6b12486ad9e51943373abcf22bbea1b5a51a1619b361570d8893f1464a");
  EXPECT_EQ(r.training_code, "models/digits/train.py");
  EXPECT_EQ(r.tags,
            (std::map<std::string, std::string>{{"architecture", "mlp-64-64-10"}, {"framework", "numpy"}}));

  // And it is what the store holds.
  auto stored = store_->find_model_version("digits", r.digest);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->dataset_name, "sklearn-digits");
  EXPECT_EQ((*stored)->tags, r.tags);
}

TEST_F(ModelRegistryTest, PushMergesRequestTagsAndLineageOverrides) {
  upload_artifact();
  auto request = digits_request();
  request.tags = {{"team", "vision"}, {"framework", "numpy-2"}};
  request.dataset_name = "digits-v2";
  request.dataset_sha256 = std::string(64, 'e');
  request.training_code = "git+https://example.com/train@abc";
  const auto r = push_ok(request).record;
  EXPECT_EQ(r.tags, (std::map<std::string, std::string>{
                        {"architecture", "mlp-64-64-10"}, {"framework", "numpy-2"}, {"team", "vision"}}));
  EXPECT_EQ(r.dataset_name, "digits-v2");
  EXPECT_EQ(r.dataset_sha256, std::string(64, 'e'));
  EXPECT_EQ(r.training_code, "git+https://example.com/train@abc");
}

TEST_F(ModelRegistryTest, IdenticalPushIsANoOpReturningTheSameRecord) {
  upload_artifact();
  const auto first = push_ok(digits_request());
  ASSERT_TRUE(first.created);

  auto again_request = digits_request();
  again_request.pushed_by = "bob";
  const auto again = push_ok(again_request);
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.record.digest, first.record.digest);
  EXPECT_EQ(again.record.version, first.record.version);
  EXPECT_EQ(again.record.created_unix_ms, first.record.created_unix_ms);
  EXPECT_EQ(again.record.pushed_by, "alice");
  EXPECT_EQ(again.record.tags, first.record.tags);

  // Asking for exactly what is stored is not a change either.
  auto same_lineage = digits_request();
  same_lineage.dataset_name = "sklearn-digits";
  same_lineage.tags = {{"framework", "numpy"}};
  EXPECT_FALSE(push_ok(same_lineage).created);

  auto versions = store_->list_model_versions("digits");
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(versions->size(), 1u);
}

TEST_F(ModelRegistryTest, SameContentWithADifferentTagValueIsAConflict) {
  upload_artifact();
  auto request = digits_request();
  request.tags = {{"team", "vision"}};
  ASSERT_TRUE(push_ok(request).created);

  request.tags = {{"team", "speech"}};
  const auto message = push_error(request, ErrorCode::conflict);
  EXPECT_TRUE(contains(message, "immutable")) << message;
  EXPECT_TRUE(contains(message, "team=vision")) << message;

  // A value that differs from the manifest's own tag is a change too.
  request.tags = {{"framework", "torch"}};
  push_error(request, ErrorCode::conflict);

  auto stored = store_->find_model_version("digits", load_model_manifest(kDigits)->digest);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->tags.at("team"), "vision");
}

TEST_F(ModelRegistryTest, SameContentWithDifferentLineageIsAConflict) {
  upload_artifact();
  ASSERT_TRUE(push_ok(digits_request()).created);

  auto parent = digits_request();
  parent.parent = "digits@abcdef";
  EXPECT_TRUE(contains(push_error(parent, ErrorCode::conflict), "parent"));

  auto dataset = digits_request();
  dataset.dataset_name = "mnist";
  EXPECT_TRUE(contains(push_error(dataset, ErrorCode::conflict), "sklearn-digits"));

  auto dataset_hash = digits_request();
  dataset_hash.dataset_sha256 = std::string(64, '0');
  EXPECT_TRUE(contains(push_error(dataset_hash, ErrorCode::conflict), "dataset sha256"));

  auto code = digits_request();
  code.training_code = "other/train.py";
  EXPECT_TRUE(contains(push_error(code, ErrorCode::conflict), "training code"));
}

TEST_F(ModelRegistryTest, ChangedManifestCreatesANewVersionWhoseParentIsThePreviousLatest) {
  upload_artifact();
  const auto first = push_ok(digits_request()).record;

  auto changed = digits_request();
  changed.manifest_text = manifest_text_ + "# retrained: same weights, new notes\n";
  const auto second = push_ok(changed);
  ASSERT_TRUE(second.created);
  EXPECT_NE(second.record.digest, first.digest);
  EXPECT_EQ(second.record.artifact_sha256, first.artifact_sha256);
  EXPECT_NE(second.record.manifest_sha256, first.manifest_sha256);
  EXPECT_EQ(second.record.parent_version, "digits@" + first.version);

  auto third_request = digits_request();
  third_request.manifest_text = manifest_text_ + "# third\n";
  const auto third = push_ok(third_request).record;
  EXPECT_EQ(third.parent_version, "digits@" + second.record.version);

  auto latest = registry().resolve(ModelRef{"digits", "latest"});
  ASSERT_TRUE(latest.ok()) << latest.error().message;
  EXPECT_EQ(latest->digest, third.digest);
  EXPECT_EQ(store_->list_model_versions("digits")->size(), 3u);
}

TEST_F(ModelRegistryTest, ExplicitParentOnNewContentIsRecordedByItsFullVersion) {
  upload_artifact();
  const auto first = push_ok(digits_request()).record;
  auto second = digits_request();
  second.manifest_text = manifest_text_ + "# second\n";
  push_ok(second);
  auto fork = digits_request();
  fork.manifest_text = manifest_text_ + "# fork of the first\n";
  fork.parent = "digits@" + first.version.substr(0, 6);  // a unique prefix
  EXPECT_EQ(push_ok(fork).record.parent_version, "digits@" + first.version);
}

TEST_F(ModelRegistryTest, AParentThatIsNotInTheRegistryIsRefused) {
  upload_artifact();
  push_ok(digits_request());
  auto changed = digits_request();
  changed.manifest_text = manifest_text_ + "# fork\n";
  changed.parent = "upstream@0123456789ab";
  const std::string message = push_error(changed, ErrorCode::invalid_request);
  EXPECT_TRUE(contains(message, "parent: upstream@0123456789ab is not a version in the registry")) << message;
  EXPECT_EQ(store_->list_model_versions("digits")->size(), 1u);
}

TEST_F(ModelRegistryTest, MalformedParentIsRefused) {
  upload_artifact();
  auto request = digits_request();
  request.parent = "not a reference";
  EXPECT_TRUE(contains(push_error(request, ErrorCode::invalid_request), "parent"));
}

TEST_F(ModelRegistryTest, VersionIdTakenByOtherContentIsAConflict) {
  // Another record already holds the 12-digit version this content would get.
  const auto manifest = load_model_manifest(kDigits);
  ASSERT_TRUE(manifest.ok());
  ModelVersionRecord squatter;
  squatter.name = "digits";
  squatter.version = manifest->version;
  squatter.digest = manifest->version + std::string(52, manifest->digest[12] == '0' ? '1' : '0');
  squatter.created_unix_ms = 1;
  ASSERT_EQ(*store_->insert_model_version(squatter), InsertOutcome::created);

  upload_artifact();
  EXPECT_TRUE(contains(push_error(digits_request(), ErrorCode::conflict), "collision"));
}

TEST_F(ModelRegistryTest, PushBeforeTheBlobIsUploadedNamesThePut) {
  const auto message = push_error(digits_request(), ErrorCode::invalid_request);
  EXPECT_TRUE(contains(message, "PUT /admin/v1/blobs/sha256:" + artifact_sha256_)) << message;
  EXPECT_TRUE(store_->list_models()->empty());
}

TEST_F(ModelRegistryTest, MalformedArtifactDigestIsRefused) {
  for (const std::string& digest :
       {std::string(), std::string(63, 'a'), std::string(64, 'A'), std::string(64, 'g')}) {
    auto request = digits_request();
    request.artifact_sha256 = digest;
    EXPECT_TRUE(contains(push_error(request, ErrorCode::invalid_request), "artifact_sha256")) << digest;
  }
}

TEST_F(ModelRegistryTest, BadModelNamesAreRefused) {
  upload_artifact();
  for (const std::string& name :
       {std::string(), std::string(".hidden"), std::string("-dash"), std::string("a/b"), std::string(".."),
        std::string("../escape"), std::string("sp ace"), std::string("at@sign"), std::string(65, 'a')}) {
    auto request = digits_request();
    request.name = name;
    EXPECT_TRUE(contains(push_error(request, ErrorCode::invalid_request), "name")) << name;
  }
  EXPECT_TRUE(store_->list_models()->empty());
  EXPECT_FALSE(fs::exists(dir_.path() / "models"));
}

TEST_F(ModelRegistryTest, LongestValidNameIsAccepted) {
  upload_artifact();
  auto request = digits_request();
  request.name = std::string(64, 'a');
  EXPECT_TRUE(push_ok(request).created);
}

TEST_F(ModelRegistryTest, ArtifactNamesThatAreNotPlainFileNamesAreRefused) {
  upload_artifact();
  for (const char* artifact :
       {"../model.onnx", "sub/model.onnx", "/etc/passwd", "..", ".", "tandem-model.yaml", "\"\""}) {
    std::string manifest = manifest_text_;
    const auto at = manifest.find("artifact: model.onnx");
    ASSERT_NE(at, std::string::npos);
    manifest.replace(at, std::string("artifact: model.onnx").size(), std::string("artifact: ") + artifact);
    auto request = digits_request();
    request.manifest_text = manifest;
    EXPECT_TRUE(contains(push_error(request, ErrorCode::invalid_request), "plain file name")) << artifact;
  }
  EXPECT_TRUE(store_->list_models()->empty());
}

TEST_F(ModelRegistryTest, ManifestThatDoesNotParseIsRefused) {
  upload_artifact();
  auto request = digits_request();
  request.manifest_text = "name: digits\nartifact: model.onnx\n"; // no inputs or outputs
  EXPECT_TRUE(contains(push_error(request, ErrorCode::invalid_request), "inputs"));
  request.manifest_text = "{ this is: [not yaml";
  push_error(request, ErrorCode::invalid_request);
}

TEST_F(ModelRegistryTest, ManifestOverOneMebibyteIsRefused) {
  upload_artifact();
  auto request = digits_request();
  request.manifest_text = manifest_text_ + "# " + std::string(1u << 20, 'x') + "\n";
  push_error(request, ErrorCode::payload_too_large);
}

// --- blobs ------------------------------------------------------------------------------

TEST_F(ModelRegistryTest, BlobPutStoresBytesUnderTheirHash) {
  const std::string bytes = "some artifact bytes";
  const std::string hash = sha256_hex(bytes);
  auto& blobs = registry().blobs();
  EXPECT_FALSE(blobs.contains(hash));
  ASSERT_TRUE(blobs.put(bytes, hash).ok());
  EXPECT_TRUE(blobs.contains(hash));
  EXPECT_EQ(blobs.path_of(hash), dir_.path() / "blobs" / "sha256" / hash.substr(0, 2) / hash);
  EXPECT_EQ(read_bytes(blobs.path_of(hash)), bytes);
  // Idempotent.
  EXPECT_TRUE(blobs.put(bytes, hash).ok());
  EXPECT_EQ(read_bytes(blobs.path_of(hash)), bytes);
  // No temporary file is left beside it.
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(blobs.path_of(hash).parent_path()))
    ++files;
  EXPECT_EQ(files, 1u);
}

TEST_F(ModelRegistryTest, BlobPutWithTheWrongHashIsRefusedAndStoresNothing) {
  const std::string bytes = "some artifact bytes";
  const std::string wrong = sha256_hex("other bytes");
  auto put = registry().blobs().put(bytes, wrong);
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code, ErrorCode::invalid_request);
  EXPECT_TRUE(contains(put.error().message, sha256_hex(bytes))) << put.error().message;
  EXPECT_FALSE(registry().blobs().contains(wrong));
  EXPECT_FALSE(registry().blobs().contains(sha256_hex(bytes)));

  for (const std::string& id : {std::string("xyz"), std::string(64, 'G'), sha256_hex(bytes).substr(1)}) {
    auto malformed = registry().blobs().put(bytes, id);
    ASSERT_FALSE(malformed.ok()) << id;
    EXPECT_EQ(malformed.error().code, ErrorCode::invalid_request);
  }
  EXPECT_FALSE(registry().blobs().contains("not-a-hash"));
}

TEST_F(ModelRegistryTest, ConcurrentPutsOfTheSameBlobAllSucceed) {
  // "Concurrent writers of the same content are harmless" (BlobStore). Each round uses new
  // content, so every round races the first write of a blob.
  constexpr int kRounds = 20;
  constexpr int kThreads = 4;
  int failures = 0;
  std::string first_failure;
  for (int round = 0; round < kRounds; ++round) {
    const std::string bytes = "blob " + std::to_string(round) + std::string(256 * 1024, 'x');
    const std::string hash = sha256_hex(bytes);
    std::latch start(kThreads);
    std::vector<std::string> errors(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        BlobStore blobs(dir_.path());
        start.arrive_and_wait();
        if (auto put = blobs.put(bytes, hash); !put) errors[t] = put.error().message;
      });
    }
    for (auto& thread : threads) thread.join();
    for (const auto& e : errors)
      if (!e.empty() && failures++ == 0) first_failure = e;
    EXPECT_EQ(read_bytes(registry().blobs().path_of(hash)), bytes) << "round " << round;
  }
  EXPECT_EQ(failures, 0) << "first failure: " << first_failure;
}

// --- resolve and model directories ------------------------------------------------------

TEST_F(ModelRegistryTest, ResolveFindsLatestPrefixAndFullDigest) {
  upload_artifact();
  const auto r = push_ok(digits_request()).record;
  for (const std::string& version : {std::string("latest"), r.digest.substr(0, 6), r.version, r.digest}) {
    auto resolved = registry().resolve(ModelRef{"digits", version});
    ASSERT_TRUE(resolved.ok()) << version << ": " << resolved.error().message;
    EXPECT_EQ(resolved->digest, r.digest) << version;
    EXPECT_EQ(resolved->dataset_name, "sklearn-digits");
  }
}

TEST_F(ModelRegistryTest, ResolveOfAnUnknownNameOrVersionIsNotFound) {
  upload_artifact();
  const auto r = push_ok(digits_request()).record;
  std::string other_version = r.version;
  other_version[0] = other_version[0] == 'f' ? '0' : 'f';
  for (const auto& ref :
       {ModelRef{"nothing", "latest"}, ModelRef{"nothing", r.version}, ModelRef{"digits", other_version}}) {
    auto resolved = registry().resolve(ref);
    ASSERT_FALSE(resolved.ok()) << ref.name << "@" << ref.version;
    EXPECT_EQ(resolved.error().code, ErrorCode::not_found);
    EXPECT_TRUE(contains(resolved.error().message, ref.name + "@" + ref.version)) << resolved.error().message;
  }
}

TEST_F(ModelRegistryTest, VersionDirectoryHoldsTheManifestAndArtifactWithTheSameDigest) {
  upload_artifact();
  const auto r = push_ok(digits_request()).record;
  const fs::path dir = registry().version_directory(r);
  EXPECT_EQ(dir, dir_.path() / "models" / "digits" / r.version);
  ASSERT_TRUE(fs::is_regular_file(dir / "tandem-model.yaml"));
  ASSERT_TRUE(fs::is_regular_file(dir / "model.onnx"));
  EXPECT_EQ(read_bytes(dir / "tandem-model.yaml"), manifest_text_);
  EXPECT_EQ(read_bytes(dir / "model.onnx"), artifact_bytes_);

  auto copy = load_model_manifest(dir);
  ASSERT_TRUE(copy.ok()) << copy.error().message;
  EXPECT_EQ(copy->digest, r.digest);
  EXPECT_EQ(copy->version, r.version);
  EXPECT_EQ(copy->lineage.dataset_name, "sklearn-digits");
}

TEST_F(ModelRegistryTest, ResolveRecreatesAMissingVersionDirectory) {
  upload_artifact();
  const auto r = push_ok(digits_request()).record;
  const fs::path dir = registry().version_directory(r);
  fs::remove_all(dir);
  ASSERT_FALSE(fs::exists(dir));
  auto resolved = registry().resolve(ModelRef{"digits", "latest"});
  ASSERT_TRUE(resolved.ok()) << resolved.error().message;
  auto copy = load_model_manifest(dir);
  ASSERT_TRUE(copy.ok()) << copy.error().message;
  EXPECT_EQ(copy->digest, r.digest);
}

TEST_F(ModelRegistryTest, VersionsSurviveClosingAndReopeningTheStore) {
  upload_artifact();
  auto request = digits_request();
  request.tags = {{"team", "vision"}};
  const auto first = push_ok(request).record;
  auto changed = digits_request();
  changed.manifest_text = manifest_text_ + "# v2\n";
  const auto second = push_ok(changed).record;

  close();
  open();
  if (HasFatalFailure()) return;

  auto latest = registry().resolve(ModelRef{"digits", "latest"});
  ASSERT_TRUE(latest.ok()) << latest.error().message;
  EXPECT_EQ(latest->digest, second.digest);
  EXPECT_EQ(latest->parent_version, "digits@" + first.version);

  auto old = registry().resolve(ModelRef{"digits", first.version});
  ASSERT_TRUE(old.ok()) << old.error().message;
  EXPECT_EQ(old->tags.at("team"), "vision");
  EXPECT_EQ(old->created_unix_ms, first.created_unix_ms);
  EXPECT_EQ(old->pushed_by, "alice");

  // Still immutable and still idempotent after the restart.
  EXPECT_FALSE(push_ok(request).created);
  request.tags = {{"team", "speech"}};
  push_error(request, ErrorCode::conflict);
  EXPECT_TRUE(registry().blobs().contains(artifact_sha256_));
}

// --- blobs: quota, delete, sweep -----------------------------------------------------------

std::int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST_F(ModelRegistryTest, ANewBlobPastTheQuotaIsRefusedWith507AndCounted) {
  BlobStore blobs(dir_.path(), 3000);
  const std::string a(2000, 'a');
  const std::string b(1001, 'b');
  ASSERT_TRUE(blobs.put(a, sha256_hex(a)).ok());
  EXPECT_EQ(blobs.total_bytes(), 2000u);
  auto refused = blobs.put(b, sha256_hex(b));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::insufficient_storage);
  EXPECT_EQ(http_status(refused.error().code), 507);
  EXPECT_TRUE(contains(refused.error().message, "server.registry.max_blob_bytes (3000)")) << refused.error().message;
  EXPECT_EQ(blobs.refused_for_quota(), 1);
  EXPECT_FALSE(blobs.contains(sha256_hex(b)));
  // Uploading a blob already stored takes no more space: still accepted when full.
  EXPECT_TRUE(blobs.put(a, sha256_hex(a)).ok());
  // A fitting one still goes in, and the totals are counted again on reopening.
  const std::string c(1000, 'c');
  ASSERT_TRUE(blobs.put(c, sha256_hex(c)).ok());
  BlobStore reopened(dir_.path(), 3000);
  EXPECT_EQ(reopened.total_bytes(), 3000u);
  EXPECT_EQ(reopened.count(), 2);
}

TEST_F(ModelRegistryTest, ABlobAVersionUsesCannotBeDeletedAndAnUnusedOneCan) {
  upload_artifact();
  const auto pushed = push_ok(digits_request());
  auto refused = registry().delete_blob(artifact_sha256_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::conflict);
  EXPECT_TRUE(contains(refused.error().message, "digits@" + pushed.record.version)) << refused.error().message;
  EXPECT_TRUE(registry().blobs().contains(artifact_sha256_));

  const std::string stray = "bytes no version uses";
  ASSERT_TRUE(registry().blobs().put(stray, sha256_hex(stray)).ok());
  ASSERT_TRUE(registry().delete_blob(sha256_hex(stray)).ok());
  EXPECT_FALSE(registry().blobs().contains(sha256_hex(stray)));
  EXPECT_EQ(registry().blobs().count(), 1);
  EXPECT_EQ(registry().blobs_removed().removed, 1);
  auto again = registry().delete_blob(sha256_hex(stray));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::not_found);
}

TEST_F(ModelRegistryTest, TheSweepRemovesUnusedBlobsOlderThanTheGraceAndNothingAVersionUses) {
  upload_artifact();
  push_ok(digits_request());
  const std::string stray = "an upload whose push never came";
  ASSERT_TRUE(registry().blobs().put(stray, sha256_hex(stray)).ok());
  const fs::path leftover = registry().blobs().path_of(artifact_sha256_).parent_path() / "x.tmp-1-1";
  std::ofstream(leftover) << "half an upload";
  const std::int64_t one_hour_ms = 3'600'000;

  now_ms_ = wall_clock_ms();  // just uploaded: within the grace, nothing goes
  auto early = registry().sweep_unused_blobs(one_hour_ms);
  ASSERT_TRUE(early.ok()) << early.error().message;
  EXPECT_EQ(early->removed, 0);
  EXPECT_EQ(early->temporaries_removed, 0);
  EXPECT_TRUE(registry().blobs().contains(sha256_hex(stray)));

  now_ms_ = wall_clock_ms() + 2 * one_hour_ms;  // two hours later
  auto late = registry().sweep_unused_blobs(one_hour_ms);
  ASSERT_TRUE(late.ok()) << late.error().message;
  EXPECT_EQ(late->removed, 1);
  EXPECT_EQ(late->removed_bytes, stray.size());
  EXPECT_EQ(late->temporaries_removed, 1);
  EXPECT_FALSE(registry().blobs().contains(sha256_hex(stray)));
  EXPECT_FALSE(fs::exists(leftover));
  EXPECT_TRUE(registry().blobs().contains(artifact_sha256_));  // digits uses it
}

TEST_F(ModelRegistryTest, UploadingAStoredBlobAgainRenewsItsTimeSoThePushAfterItFindsIt) {
  const std::string bytes = "uploaded twice";
  ASSERT_TRUE(registry().blobs().put(bytes, sha256_hex(bytes)).ok());
  const fs::path path = registry().blobs().path_of(sha256_hex(bytes));
  fs::last_write_time(path, fs::file_time_type::clock::now() - std::chrono::hours(3));
  ASSERT_TRUE(registry().blobs().put(bytes, sha256_hex(bytes)).ok());
  now_ms_ = wall_clock_ms();
  auto swept = registry().sweep_unused_blobs(3'600'000);
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(swept->removed, 0);
  EXPECT_TRUE(registry().blobs().contains(sha256_hex(bytes)));
}

} // namespace
} // namespace tandem::registry
