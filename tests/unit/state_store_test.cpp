// The SQLite state store against real database files, one fresh temporary directory per test.
#include "state/sqlite_store.hpp"

#include "base/ids.hpp"
#include "state/audit_blocks.hpp"

#include <gtest/gtest.h>
#include "support/audit_record.hpp"
#include "support/store_fixture.hpp"
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <string>
#include <thread>
#include <vector>

namespace tandem::registry {
namespace {

namespace fs = std::filesystem;

/// A fresh directory under the system temporary directory, removed with everything in it.
using tandem::testing::TempDir;

/// Runs SQL on its own raw connection (what another program, or an older or newer tandem,
/// would do to the file). Returns the first column of the last row, if any.
std::string raw_sql(const fs::path& file, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  std::string last;
  char* message = nullptr;
  const int rc = sqlite3_exec(
      db, sql.c_str(),
      [](void* out, int columns, char** values, char**) {
        if (columns > 0) *static_cast<std::string*>(out) = values[0] ? values[0] : "";
        return 0;
      },
      &last, &message);
  EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (message ? message : "");
  sqlite3_free(message);
  sqlite3_close_v2(db);
  return last;
}

using StateStoreTest = tandem::testing::FreshStoreTest;

/// A constraint another tool might add: it refuses the block that holds the record 'poison'.
constexpr const char* kRefusePoisonTrigger =
    "CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_blocks "
    "WHEN NEW.records_json LIKE '%[\"poison\",%' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END";

ModelVersionRecord version_record(const std::string& name, const std::string& digest,
                                  std::int64_t created_ms) {
  ModelVersionRecord r;
  r.name = name;
  r.digest = digest;
  r.version = digest.substr(0, 12);
  r.manifest_sha256 = std::string(64, '1');
  r.artifact_sha256 = std::string(64, '2');
  r.artifact_name = "model.onnx";
  r.artifact_bytes = 12345;
  r.format = "onnx";
  r.manifest_text = "name: " + name + "\nartifact: model.onnx\n";
  r.dataset_name = "sklearn-digits";
  r.dataset_sha256 = std::string(64, '3');
  r.training_code = "models/digits/train.py";
  r.parent_version = "";
  r.tags = {{"framework", "numpy"}, {"quote", "say \"hi\", \\ ok"}, {"unicode", "caf\xc3\xa9"}};
  r.created_unix_ms = created_ms;
  r.pushed_by = "alice";
  return r;
}

/// A 64-digit digest made of `prefix` followed by `fill`.
std::string digest_of(const std::string& prefix, char fill) {
  return prefix + std::string(64 - prefix.size(), fill);
}

using tandem::testing::audit_record;

using Ids = std::vector<std::string>;

std::vector<std::string> ids_of(const std::vector<AuditRecord>& records) {
  std::vector<std::string> out;
  out.reserve(records.size());
  for (const auto& r : records) out.push_back(r.request_id);
  return out;
}

// --- migrations -------------------------------------------------------------------------

TEST_F(StateStoreTest, NewStoreReachesLatestSchemaVersion) {
  auto version = store().schema_version();
  ASSERT_TRUE(version.ok()) << version.error().message;
  EXPECT_EQ(*version, latest_schema_version());
  EXPECT_GE(latest_schema_version(), 1);
  EXPECT_EQ(raw_sql(file_, "SELECT COUNT(*) FROM schema_migrations"),
            std::to_string(latest_schema_version()));
}

TEST_F(StateStoreTest, StoreFileIsInWalMode) {
  EXPECT_EQ(file_, dir_.path() / "tandem.db");
  EXPECT_EQ(raw_sql(file_, "PRAGMA journal_mode"), "wal");
}

TEST_F(StateStoreTest, ReopeningAnUpToDateStoreAppliesNoMigration) {
  const std::string before = raw_sql(file_, "SELECT group_concat(version || ':' || applied_unix_ms) FROM "
                                            "(SELECT * FROM schema_migrations ORDER BY version)");
  store_.reset();
  auto reopened = open_sqlite_store(file_);
  ASSERT_TRUE(reopened.ok()) << reopened.error().message;
  EXPECT_EQ(*(*reopened)->schema_version(), latest_schema_version());
  const std::string after = raw_sql(file_, "SELECT group_concat(version || ':' || applied_unix_ms) FROM "
                                           "(SELECT * FROM schema_migrations ORDER BY version)");
  EXPECT_EQ(before, after);
}

TEST(StateStoreMigration, ConnectionsOpenedAtOnceOnANewFileAllSucceed) {
  // Several rounds on fresh files: each round races the creation and migration of one file.
  constexpr int kRounds = 20;
  constexpr int kThreads = 2;
  for (int round = 0; round < kRounds; ++round) {
    TempDir dir;
    const fs::path file = sqlite_path(dir.path());
    std::latch start(kThreads);
    std::vector<std::string> errors(kThreads);
    std::vector<int> versions(kThreads, -1);
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        auto opened = open_sqlite_store(file);
        if (!opened) {
          errors[t] = opened.error().message;
          return;
        }
        auto version = (*opened)->schema_version();
        versions[t] = version ? *version : -1;
      });
    }
    for (auto& thread : threads) thread.join();
    for (int t = 0; t < kThreads; ++t) {
      EXPECT_EQ(errors[t], "") << "round " << round << ", connection " << t;
      EXPECT_EQ(versions[t], latest_schema_version()) << "round " << round << ", connection " << t;
    }
    EXPECT_EQ(raw_sql(file, "SELECT COUNT(*) FROM schema_migrations"),
              std::to_string(latest_schema_version()));
  }
}

TEST_F(StateStoreTest, StoreFromANewerSchemaIsRefusedNamingBothVersions) {
  const int newer = latest_schema_version() + 1;
  store_.reset();
  raw_sql(file_, "INSERT INTO schema_migrations (version, description, applied_unix_ms) VALUES (" +
                     std::to_string(newer) + ", 'from the future', 0)");
  auto reopened = open_sqlite_store(file_);
  ASSERT_FALSE(reopened.ok());
  const std::string& message = reopened.error().message;
  EXPECT_NE(message.find("schema version " + std::to_string(newer)), std::string::npos) << message;
  EXPECT_NE(message.find("(" + std::to_string(latest_schema_version()) + ")"), std::string::npos) << message;
  EXPECT_NE(message.find("newer"), std::string::npos) << message;
}

TEST(StateStoreMigration, AuditRowsOfAnOlderStoreMoveIntoBlocksAndStayFindable) {
  // A store at schema version 4 kept one row per request; the audit part of it is enough here.
  TempDir dir;
  const fs::path file = dir.path() / "tandem.db";
  IdGenerator ids(3);
  const std::string gateway_id = ids.next_time_ordered(2000);
  { const std::ofstream empty(file); }  // an empty file is an empty database
  raw_sql(file, "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                "applied_unix_ms BIGINT NOT NULL);"
                "INSERT INTO schema_migrations VALUES (1, 'a', 0), (2, 'b', 0), (3, 'c', 0), (4, 'd', 0);"
                "CREATE TABLE audit_requests (seq INTEGER PRIMARY KEY, request_id TEXT NOT NULL, trace_id TEXT NOT NULL, "
                "time_unix_ms BIGINT NOT NULL, endpoint TEXT NOT NULL, model_version TEXT NOT NULL, "
                "input_sha256 TEXT NOT NULL, tier TEXT NOT NULL, worker TEXT NOT NULL, status INTEGER NOT NULL, "
                "error_code TEXT NOT NULL, attempts INTEGER NOT NULL, queue_ms DOUBLE PRECISION NOT NULL, "
                "cold_start_ms DOUBLE PRECISION NOT NULL, upstream_ms DOUBLE PRECISION NOT NULL, "
                "total_ms DOUBLE PRECISION NOT NULL, cost_usd DOUBLE PRECISION NOT NULL);"
                "CREATE INDEX audit_by_request_id ON audit_requests (request_id);"
                "INSERT INTO audit_requests (request_id, trace_id, time_unix_ms, endpoint, model_version, input_sha256, "
                "tier, worker, status, error_code, attempts, queue_ms, cold_start_ms, upstream_ms, total_ms, cost_usd) "
                "VALUES ('late', 't1', 3000, 'digits', 'v1', 'h1', 'dedicated', 'w-1', 200, '', 1, 0.5, 0, 1.5, 2.0, 1e-6),"
                " ('" + gateway_id + "', 't2', 2000, 'other', 'v1', 'h2', 'serverless', 'w-2', 503, 'upstream_error', 2, "
                "0.25, 900.5, 3.0, 904.0, 2.5e-6),"
                " ('tie', 't3', 3000, 'digits', 'v1', 'h3', 'dedicated', 'w-1', 200, '', 1, 0, 0, 1, 1, 0)");
  auto opened = open_sqlite_store(file);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  StateStore& store = **opened;
  EXPECT_EQ(*store.schema_version(), latest_schema_version());
  EXPECT_EQ(raw_sql(file, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_requests'"), "0");
  // Equal times keep the old rows' order: 'tie' was written after 'late'.
  EXPECT_EQ(ids_of(*store.query_audit({})), (Ids{"tie", "late", gateway_id}));
  auto moved = store.find_audit(gateway_id);
  ASSERT_TRUE(moved.ok() && moved->has_value());
  EXPECT_EQ((*moved)->tier, "serverless");
  EXPECT_EQ((*moved)->error_code, "upstream_error");
  EXPECT_DOUBLE_EQ((*moved)->cold_start_ms, 900.5);
  EXPECT_DOUBLE_EQ((*moved)->cost_usd, 2.5e-6);
  EXPECT_TRUE(store.find_audit("late")->has_value());
}

TEST(StateStoreMigration, FileThatIsNotADatabaseGivesAClearError) {
  TempDir dir;
  const fs::path file = dir.path() / "tandem.db";
  const std::string line = "this is not an SQLite database, just text\n";
  {
    std::ofstream out(file, std::ios::binary);
    for (int i = 0; i < 512; ++i) out << line;
  }
  auto opened = open_sqlite_store(file);
  ASSERT_FALSE(opened.ok());
  const std::string& message = opened.error().message;
  EXPECT_EQ(opened.error().code, ErrorCode::internal);
  EXPECT_NE(message.find(file.string()), std::string::npos) << message;
  EXPECT_NE(message.find("not a database"), std::string::npos) << message;
  // The file is left as it was: nothing was written over it.
  EXPECT_EQ(fs::file_size(file), 512u * line.size());
}

TEST(StateStoreMigration, MissingDirectoryGivesAnErrorNamingTheFile) {
  TempDir dir;
  const fs::path file = dir.path() / "no" / "such" / "dir" / "tandem.db";
  auto opened = open_sqlite_store(file);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().message.find(file.string()), std::string::npos) << opened.error().message;
}

// --- model versions ---------------------------------------------------------------------

TEST_F(StateStoreTest, InsertedModelVersionRoundTripsEveryField) {
  const auto r = version_record("digits", digest_of("0123456789abcdef", '7'), 1'700'000'000'123);
  auto inserted = store().insert_model_version(r);
  ASSERT_TRUE(inserted.ok()) << inserted.error().message;
  EXPECT_EQ(*inserted, InsertOutcome::created);

  auto found = store().find_model_version("digits", r.version);
  ASSERT_TRUE(found.ok()) << found.error().message;
  ASSERT_TRUE(found->has_value());
  const auto& f = **found;
  EXPECT_EQ(f.name, r.name);
  EXPECT_EQ(f.version, "0123456789ab");
  EXPECT_EQ(f.digest, r.digest);
  EXPECT_EQ(f.manifest_sha256, r.manifest_sha256);
  EXPECT_EQ(f.artifact_sha256, r.artifact_sha256);
  EXPECT_EQ(f.artifact_name, r.artifact_name);
  EXPECT_EQ(f.artifact_bytes, r.artifact_bytes);
  EXPECT_EQ(f.format, r.format);
  EXPECT_EQ(f.manifest_text, r.manifest_text);
  EXPECT_EQ(f.dataset_name, r.dataset_name);
  EXPECT_EQ(f.dataset_sha256, r.dataset_sha256);
  EXPECT_EQ(f.training_code, r.training_code);
  EXPECT_EQ(f.parent_version, r.parent_version);
  EXPECT_EQ(f.tags, r.tags);
  EXPECT_EQ(f.created_unix_ms, r.created_unix_ms);
  EXPECT_EQ(f.pushed_by, r.pushed_by);
}

TEST_F(StateStoreTest, FindsModelVersionByVersionDigestAndSixDigitPrefix) {
  const auto r = version_record("digits", digest_of("0123456789abcdef", '7'), 1000);
  ASSERT_TRUE(store().insert_model_version(r).ok());
  for (const std::string& key : {r.version, r.digest, r.digest.substr(0, 6), r.digest.substr(0, 20)}) {
    auto found = store().find_model_version("digits", key);
    ASSERT_TRUE(found.ok()) << key << ": " << found.error().message;
    ASSERT_TRUE(found->has_value()) << key;
    EXPECT_EQ((*found)->digest, r.digest) << key;
  }
}

TEST_F(StateStoreTest, FindModelVersionMissesOtherNamesAndOtherDigits) {
  const auto r = version_record("digits", digest_of("0123456789abcdef", '7'), 1000);
  ASSERT_TRUE(store().insert_model_version(r).ok());
  for (const auto& [name, key] : std::vector<std::pair<std::string, std::string>>{
           {"other", r.version}, {"digits", "123456"}, {"digits", "0123456789ac"}, {"nothing", "012345"}}) {
    auto found = store().find_model_version(name, key);
    ASSERT_TRUE(found.ok()) << found.error().message;
    EXPECT_FALSE(found->has_value()) << name << "@" << key;
  }
}

TEST_F(StateStoreTest, AmbiguousVersionPrefixIsAnErrorAndLongerPrefixesResolve) {
  const auto a = version_record("digits", digest_of("abcdef0", '1'), 1000);
  const auto b = version_record("digits", digest_of("abcdef1", '2'), 2000);
  ASSERT_TRUE(store().insert_model_version(a).ok());
  ASSERT_TRUE(store().insert_model_version(b).ok());

  auto ambiguous = store().find_model_version("digits", "abcdef");
  ASSERT_FALSE(ambiguous.ok());
  EXPECT_EQ(ambiguous.error().code, ErrorCode::invalid_request);
  EXPECT_NE(ambiguous.error().message.find("ambiguous"), std::string::npos) << ambiguous.error().message;
  EXPECT_NE(ambiguous.error().message.find("abcdef"), std::string::npos) << ambiguous.error().message;

  auto first = store().find_model_version("digits", "abcdef0");
  ASSERT_TRUE(first.ok() && first->has_value());
  EXPECT_EQ((*first)->digest, a.digest);
  auto second = store().find_model_version("digits", "abcdef1");
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_EQ((*second)->digest, b.digest);
}

TEST_F(StateStoreTest, LatestModelVersionIsTheNewestByCreatedTime) {
  auto latest = store().latest_model_version("digits");
  ASSERT_TRUE(latest.ok());
  EXPECT_FALSE(latest->has_value());

  // Inserted out of time order: the created time decides, not the insertion order or digest.
  ASSERT_TRUE(store().insert_model_version(version_record("digits", digest_of("bb", '1'), 2000)).ok());
  ASSERT_TRUE(store().insert_model_version(version_record("digits", digest_of("cc", '1'), 3000)).ok());
  ASSERT_TRUE(store().insert_model_version(version_record("digits", digest_of("aa", '1'), 1000)).ok());
  ASSERT_TRUE(store().insert_model_version(version_record("other", digest_of("dd", '1'), 9000)).ok());

  latest = store().latest_model_version("digits");
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->digest, digest_of("cc", '1'));

  auto versions = store().list_model_versions("digits");
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 3u);
  EXPECT_EQ((*versions)[0].created_unix_ms, 3000);
  EXPECT_EQ((*versions)[1].created_unix_ms, 2000);
  EXPECT_EQ((*versions)[2].created_unix_ms, 1000);
}

TEST_F(StateStoreTest, ListModelsSummarisesEachName) {
  auto empty = store().list_models();
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());

  ASSERT_TRUE(store().insert_model_version(version_record("digits", digest_of("aa", '1'), 1000)).ok());
  ASSERT_TRUE(store().insert_model_version(version_record("digits", digest_of("bb", '1'), 3000)).ok());
  ASSERT_TRUE(store().insert_model_version(version_record("digits", digest_of("cc", '1'), 2000)).ok());
  ASSERT_TRUE(store().insert_model_version(version_record("alpha", digest_of("dd", '1'), 500)).ok());

  auto models = store().list_models();
  ASSERT_TRUE(models.ok()) << models.error().message;
  ASSERT_EQ(models->size(), 2u);
  EXPECT_EQ((*models)[0].name, "alpha"); // by name
  EXPECT_EQ((*models)[0].versions, 1);
  EXPECT_EQ((*models)[0].latest_version, digest_of("dd", '1').substr(0, 12));
  EXPECT_EQ((*models)[0].updated_unix_ms, 500);
  EXPECT_EQ((*models)[1].name, "digits");
  EXPECT_EQ((*models)[1].versions, 3);
  EXPECT_EQ((*models)[1].latest_version, digest_of("bb", '1').substr(0, 12));
  EXPECT_EQ((*models)[1].updated_unix_ms, 3000);
}

TEST_F(StateStoreTest, InsertingTheSameNameAndDigestTwiceReportsAlreadyExistsAndKeepsTheFirst) {
  auto first = version_record("digits", digest_of("0123456789", '5'), 1000);
  ASSERT_EQ(*store().insert_model_version(first), InsertOutcome::created);
  auto second = first;
  second.pushed_by = "mallory";
  second.tags = {{"overwritten", "yes"}};
  second.created_unix_ms = 2000;
  auto outcome = store().insert_model_version(second);
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_EQ(*outcome, InsertOutcome::already_exists);

  auto stored = store().find_model_version("digits", first.digest);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->pushed_by, "alice");
  EXPECT_EQ((*stored)->tags, first.tags);
  EXPECT_EQ((*stored)->created_unix_ms, 1000);
  EXPECT_EQ(store().list_model_versions("digits")->size(), 1u);

  // The same digest under another name is another model's version.
  auto other = first;
  other.name = "digits-copy";
  EXPECT_EQ(*store().insert_model_version(other), InsertOutcome::created);
}

// --- deployments ------------------------------------------------------------------------

TEST_F(StateStoreTest, DeploymentsAreListedNewestFirstPerEndpointWithALimit) {
  ASSERT_TRUE(store().record_deployment({"digits", "digits@latest", "digits", "aaaaaaaaaaaa", 1000}).ok());
  ASSERT_TRUE(store().record_deployment({"other", "/models/other", "other", "bbbbbbbbbbbb", 1500}).ok());
  ASSERT_TRUE(store().record_deployment({"digits", "digits@cccccc", "digits", "cccccccccccc", 2000}).ok());
  ASSERT_TRUE(store().record_deployment({"digits", "digits@latest", "digits", "dddddddddddd", 3000}).ok());

  auto digits = store().list_deployments("digits", 10);
  ASSERT_TRUE(digits.ok()) << digits.error().message;
  ASSERT_EQ(digits->size(), 3u);
  EXPECT_EQ((*digits)[0].version, "dddddddddddd");
  EXPECT_EQ((*digits)[0].model_ref, "digits@latest");
  EXPECT_EQ((*digits)[0].model_name, "digits");
  EXPECT_EQ((*digits)[0].endpoint, "digits");
  EXPECT_EQ((*digits)[0].deployed_unix_ms, 3000);
  EXPECT_EQ((*digits)[1].version, "cccccccccccc");
  EXPECT_EQ((*digits)[2].version, "aaaaaaaaaaaa");

  auto limited = store().list_deployments("digits", 2);
  ASSERT_TRUE(limited.ok());
  ASSERT_EQ(limited->size(), 2u);
  EXPECT_EQ((*limited)[1].version, "cccccccccccc");

  auto all = store().list_deployments("", 10);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[2].endpoint, "other");

  auto none = store().list_deployments("missing", 10);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

// --- audit ------------------------------------------------------------------------------

class AuditStoreTest : public StateStoreTest {
protected:
  void SetUp() override {
    StateStoreTest::SetUp();
    if (HasFatalFailure()) return;
    const std::vector<AuditRecord> records = {
        audit_record("r1", 1000, "digits", 200), audit_record("r2", 2000, "other", 404),
        audit_record("r3", 3000, "digits", 503), audit_record("r4", 4000, "digits", 200),
        audit_record("r5", 5000, "other", 429),  audit_record("r6", 5000, "digits", 201),
    };
    auto appended = store().append_audit(records);
    ASSERT_TRUE(appended.ok()) << appended.error().message;
  }

  std::vector<std::string> query(const AuditQuery& q) {
    auto rows = store().query_audit(q);
    EXPECT_TRUE(rows.ok()) << (rows.ok() ? "" : rows.error().message);
    return rows.ok() ? ids_of(*rows) : std::vector<std::string>{};
  }
};

TEST_F(AuditStoreTest, RecordRoundTripsEveryField) {
  auto found = store().find_audit("r3");
  ASSERT_TRUE(found.ok()) << found.error().message;
  ASSERT_TRUE(found->has_value());
  const auto expected = audit_record("r3", 3000, "digits", 503);
  const auto& f = **found;
  EXPECT_EQ(f.request_id, expected.request_id);
  EXPECT_EQ(f.trace_id, expected.trace_id);
  EXPECT_EQ(f.time_unix_ms, expected.time_unix_ms);
  EXPECT_EQ(f.endpoint, expected.endpoint);
  EXPECT_EQ(f.model_version, expected.model_version);
  EXPECT_EQ(f.input_sha256, expected.input_sha256);
  EXPECT_EQ(f.tier, expected.tier);
  EXPECT_EQ(f.worker, expected.worker);
  EXPECT_EQ(f.status, expected.status);
  EXPECT_EQ(f.error_code, expected.error_code);
  EXPECT_EQ(f.attempts, expected.attempts);
  EXPECT_DOUBLE_EQ(f.queue_ms, expected.queue_ms);
  EXPECT_DOUBLE_EQ(f.cold_start_ms, expected.cold_start_ms);
  EXPECT_DOUBLE_EQ(f.upstream_ms, expected.upstream_ms);
  EXPECT_DOUBLE_EQ(f.total_ms, expected.total_ms);
  EXPECT_DOUBLE_EQ(f.cost_usd, expected.cost_usd);
}

TEST_F(AuditStoreTest, QueryWithoutFiltersReturnsNewestFirst) {
  // Equal times keep insertion order reversed (r6 was appended after r5).
  EXPECT_EQ(query({}), (Ids{"r6", "r5", "r4", "r3", "r2", "r1"}));
}

TEST_F(AuditStoreTest, QueryOldestFirst) {
  AuditQuery q;
  q.oldest_first = true;
  EXPECT_EQ(query(q), (Ids{"r1", "r2", "r3", "r4", "r5", "r6"}));
}

TEST_F(AuditStoreTest, QueryByEndpoint) {
  AuditQuery q;
  q.endpoint = "other";
  EXPECT_EQ(query(q), (Ids{"r5", "r2"}));
  q.endpoint = "missing";
  EXPECT_EQ(query(q), Ids{});
}

TEST_F(AuditStoreTest, QuerySinceIsInclusiveAndBeforeIsExclusive) {
  AuditQuery q;
  q.since_unix_ms = 2000;
  EXPECT_EQ(query(q), (Ids{"r6", "r5", "r4", "r3", "r2"}));
  q.before_unix_ms = 4000;
  EXPECT_EQ(query(q), (Ids{"r3", "r2"}));
  q.since_unix_ms = 0;
  q.before_unix_ms = 1000;
  EXPECT_EQ(query(q), Ids{});
}

TEST_F(AuditStoreTest, QueryByExactStatus) {
  AuditQuery q;
  q.status = 200;
  EXPECT_EQ(query(q), (Ids{"r4", "r1"}));
  q.status = 429;
  EXPECT_EQ(query(q), (Ids{"r5"}));
  q.status = 500;
  EXPECT_EQ(query(q), Ids{});
}

TEST_F(AuditStoreTest, QueryByStatusClass) {
  AuditQuery q;
  q.status = 2;
  EXPECT_EQ(query(q), (Ids{"r6", "r4", "r1"}));
  q.status = 4;
  EXPECT_EQ(query(q), (Ids{"r5", "r2"}));
  q.status = 5;
  EXPECT_EQ(query(q), (Ids{"r3"}));
  q.status = 3;
  EXPECT_EQ(query(q), Ids{});
}

TEST_F(AuditStoreTest, QueryLimitKeepsTheFirstInTheChosenOrder) {
  AuditQuery q;
  q.limit = 2;
  EXPECT_EQ(query(q), (Ids{"r6", "r5"}));
  q.oldest_first = true;
  EXPECT_EQ(query(q), (Ids{"r1", "r2"}));
}

TEST_F(AuditStoreTest, QueryFiltersCombine) {
  AuditQuery q;
  q.endpoint = "digits";
  q.status = 2;
  q.since_unix_ms = 2000;
  q.before_unix_ms = 6000;
  q.oldest_first = true;
  EXPECT_EQ(query(q), (Ids{"r4", "r6"}));
}

TEST_F(AuditStoreTest, FindAuditOfAnUnknownIdIsEmpty) {
  auto found = store().find_audit("nope");
  ASSERT_TRUE(found.ok()) << found.error().message;
  EXPECT_FALSE(found->has_value());
}

TEST_F(AuditStoreTest, FindAuditWithDuplicateIdsReturnsTheNewest) {
  auto again = audit_record("r2", 7000, "other", 200);
  again.worker = "w-2";
  ASSERT_TRUE(store().append_audit(std::vector<AuditRecord>{again}).ok());
  auto found = store().find_audit("r2");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->time_unix_ms, 7000);
  EXPECT_EQ((*found)->worker, "w-2");
  EXPECT_EQ((*found)->status, 200);
}

TEST_F(AuditStoreTest, AClientsIdFindsEveryRecordSentWithItNewestFirstButIsNoKey) {
  auto first = audit_record("019a2241a278933f8a0c677f67227b63", 0x019a2241a278LL, "digits", 200);
  first.client_request_id = "shared";
  auto second = audit_record("019a2241a279933f8a0c677f67227b63", 0x019a2241a279LL, "digits", 400);
  second.client_request_id = "shared";
  // A client may send a record's own id as its id: that names a second record, not the first.
  auto forged = audit_record("019a2241a27a933f8a0c677f67227b63", 0x019a2241a27aLL, "digits", 400);
  forged.client_request_id = first.request_id;
  ASSERT_TRUE(store().append_audit(std::vector<AuditRecord>{first, second, forged}).ok());

  auto own = store().find_audit(first.request_id);
  ASSERT_TRUE(own.ok() && own->has_value());
  EXPECT_EQ((*own)->status, 200);
  EXPECT_FALSE(store().find_audit("shared")->has_value());
  auto sent = store().find_audit_by_client_id("shared", 10);
  ASSERT_TRUE(sent.ok()) << sent.error().message;
  ASSERT_EQ(sent->size(), 2u);
  EXPECT_EQ((*sent)[0].request_id, second.request_id);
  EXPECT_EQ((*sent)[1].request_id, first.request_id);
  EXPECT_EQ(store().find_audit_by_client_id("shared", 1)->size(), 1u);
  auto by_forged = store().find_audit_by_client_id(first.request_id, 10);
  ASSERT_EQ(by_forged->size(), 1u);
  EXPECT_EQ(by_forged->front().request_id, forged.request_id);
}

TEST_F(AuditStoreTest, DeleteAuditBeforeReturnsHowManyAndKeepsTheRest) {
  auto deleted = store().delete_audit_before(3000);
  ASSERT_TRUE(deleted.ok()) << deleted.error().message;
  EXPECT_EQ(*deleted, 2); // r1, r2; r3 is at the cutoff and stays
  EXPECT_EQ(query({}), (Ids{"r6", "r5", "r4", "r3"}));
  EXPECT_EQ(*store().delete_audit_before(3000), 0);
  EXPECT_EQ(*store().delete_audit_before(10'000), 4);
  EXPECT_EQ(query({}), Ids{});
}

TEST_F(StateStoreTest, AppendingAnEmptyBatchIsANoOp) {
  ASSERT_TRUE(store().append_audit({}).ok());
  EXPECT_TRUE(store().query_audit({})->empty());
}

TEST_F(StateStoreTest, AuditBatchIsAllOrNothing) {
  // A trigger (as a constraint another tool might add) makes one row of the batch fail.
  raw_sql(file_, kRefusePoisonTrigger);
  const std::vector<AuditRecord> batch = {audit_record("ok-1", 1000, "digits", 200),
                                          audit_record("poison", 2000, "digits", 200),
                                          audit_record("ok-2", 3000, "digits", 200)};
  auto appended = store().append_audit(batch);
  ASSERT_FALSE(appended.ok());
  EXPECT_NE(appended.error().message.find("poisoned row"), std::string::npos) << appended.error().message;
  EXPECT_TRUE(store().query_audit({})->empty());

  // The connection is usable again afterwards: no transaction was left open.
  const std::vector<AuditRecord> good = {audit_record("ok-3", 4000, "digits", 200)};
  auto retried = store().append_audit(good);
  ASSERT_TRUE(retried.ok()) << retried.error().message;
  EXPECT_EQ(ids_of(*store().query_audit({})), Ids{"ok-3"});
}

TEST_F(StateStoreTest, ABatchKeepsEveryFieldOfEveryRecordExactly) {
  // Every record differs in every field, so a column written at the wrong place cannot go
  // unnoticed.
  std::vector<AuditRecord> batch;
  for (int i = 0; i < 70; ++i) {
    auto r = audit_record("req-" + std::to_string(i), 1000 + i, i % 2 == 0 ? "digits" : "other", 200 + i);
    r.trace_id = std::string(31, 'a') + static_cast<char>('a' + i % 26);
    r.model_version = "v" + std::to_string(i);
    r.input_sha256 = std::string(63, 'c') + static_cast<char>('0' + i % 10);
    r.tier = i % 3 == 0 ? "serverless" : "dedicated";
    r.worker = "w-" + std::to_string(i);
    r.error_code = "e" + std::to_string(i);
    r.attempts = 1 + i % 4;
    r.queue_ms = i * 0.5;
    r.cold_start_ms = i * 0.25;
    r.upstream_ms = i * 1.5;
    r.total_ms = i * 2.0;
    r.cost_usd = i * 1e-6;
    batch.push_back(r);
  }
  auto appended = store().append_audit(batch);
  ASSERT_TRUE(appended.ok()) << appended.error().message;
  AuditQuery q;
  q.limit = 1000;
  q.oldest_first = true;
  auto rows = store().query_audit(q);
  ASSERT_TRUE(rows.ok()) << rows.error().message;
  ASSERT_EQ(rows->size(), batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& got = (*rows)[i];
    const auto& want = batch[i];
    EXPECT_EQ(got.request_id, want.request_id) << i;
    EXPECT_EQ(got.trace_id, want.trace_id) << i;
    EXPECT_EQ(got.time_unix_ms, want.time_unix_ms) << i;
    EXPECT_EQ(got.endpoint, want.endpoint) << i;
    EXPECT_EQ(got.model_version, want.model_version) << i;
    EXPECT_EQ(got.input_sha256, want.input_sha256) << i;
    EXPECT_EQ(got.tier, want.tier) << i;
    EXPECT_EQ(got.worker, want.worker) << i;
    EXPECT_EQ(got.status, want.status) << i;
    EXPECT_EQ(got.error_code, want.error_code) << i;
    EXPECT_EQ(got.attempts, want.attempts) << i;
    EXPECT_DOUBLE_EQ(got.queue_ms, want.queue_ms) << i;
    EXPECT_DOUBLE_EQ(got.cold_start_ms, want.cold_start_ms) << i;
    EXPECT_DOUBLE_EQ(got.upstream_ms, want.upstream_ms) << i;
    EXPECT_DOUBLE_EQ(got.total_ms, want.total_ms) << i;
    EXPECT_DOUBLE_EQ(got.cost_usd, want.cost_usd) << i;
  }
}

TEST_F(StateStoreTest, AFailingBlockAfterGoodOnesFailsTheWholeBatch) {
  raw_sql(file_, kRefusePoisonTrigger);
  // 600 records make three blocks; the poisoned record is in the last, after two were written.
  std::vector<AuditRecord> batch;
  batch.reserve(600);
  for (int i = 0; i < 600; ++i) batch.push_back(audit_record(i == 590 ? "poison" : "ok-" + std::to_string(i), 1000 + i, "digits", 200));
  ASSERT_FALSE(store().append_audit(batch).ok());
  EXPECT_TRUE(store().query_audit({})->empty());
  EXPECT_EQ(raw_sql(file_, "SELECT COUNT(*) FROM audit_blocks"), "0");
}

TEST_F(StateStoreTest, AuditRecordsAreStoredInTimeOrderedBlocksOfBoundedSizeAndSpan) {
  // Appended in completion order: every tenth request took 30 s and arrived that much earlier.
  std::vector<AuditRecord> batch;
  for (int i = 0; i < 700; ++i) {
    const std::int64_t arrived = 100'000 + i * 10 - (i % 10 == 0 ? 30'000 : 0);
    batch.push_back(audit_record("req-" + std::to_string(i), arrived, i % 3 == 0 ? "other" : "digits", 200));
  }
  ASSERT_TRUE(store().append_audit(batch).ok());
  EXPECT_EQ(raw_sql(file_, "SELECT SUM(records) FROM audit_blocks"), "700");
  EXPECT_EQ(raw_sql(file_, "SELECT MAX(records) FROM audit_blocks"), std::to_string(kAuditBlockRecordsMax));
  EXPECT_EQ(raw_sql(file_, "SELECT COUNT(*) FROM audit_blocks WHERE last_time_unix_ms - first_time_unix_ms > " +
                               std::to_string(kAuditBlockSpanMaxMs)),
            "0");
  // Inside a block, records are in arrival order; the endpoint list names each endpoint once.
  EXPECT_EQ(raw_sql(file_, "SELECT COUNT(*) FROM audit_blocks b, json_each(b.records_json) r "
                           "WHERE r.value ->> 2 < b.first_time_unix_ms OR r.value ->> 2 > b.last_time_unix_ms"),
            "0");
  EXPECT_EQ(raw_sql(file_, "SELECT endpoints FROM audit_blocks ORDER BY seq DESC LIMIT 1"), "\ndigits\nother\n");

  // Across blocks, queries come back in order with limits that end inside a block.
  AuditQuery q;
  q.limit = 300;
  auto newest = store().query_audit(q);
  ASSERT_TRUE(newest.ok()) << newest.error().message;
  ASSERT_EQ(newest->size(), 300u);
  for (std::size_t i = 1; i < newest->size(); ++i)
    EXPECT_GE((*newest)[i - 1].time_unix_ms, (*newest)[i].time_unix_ms) << i;
  EXPECT_EQ(newest->front().request_id, "req-699");
  q.oldest_first = true;
  q.endpoint = "other";
  q.limit = 5;
  auto oldest = store().query_audit(q);
  ASSERT_TRUE(oldest.ok()) << oldest.error().message;
  // The slow requests (every tenth) arrived first; of those, the ones at "other" are i % 3 == 0.
  EXPECT_EQ(ids_of(*oldest), (Ids{"req-0", "req-30", "req-60", "req-90", "req-120"}));
}

TEST_F(StateStoreTest, RequestsAreFoundByGatewayIdsWithoutAnIndexRowAndByClientIdsWithOne) {
  IdGenerator ids(7);
  std::vector<AuditRecord> batch;
  batch.reserve(302);
  for (int i = 0; i < 300; ++i) {
    const std::int64_t arrived = 1'795'900'000'000 + std::int64_t{i} * 7;
    batch.push_back(audit_record(ids.next_time_ordered(arrived), arrived, "digits", 200));
  }
  // A client's own id, and one shaped like the gateway's whose time is not the arrival time.
  batch.push_back(audit_record("client-chose-this", 1'795'900'000'500, "digits", 201));
  batch.push_back(audit_record(ids.next_time_ordered(5), 1'795'900'000'600, "digits", 202));
  ASSERT_TRUE(store().append_audit(batch).ok());
  EXPECT_EQ(raw_sql(file_, "SELECT COUNT(*) FROM audit_request_ids"), "2");
  for (const auto& want : {batch[0], batch[150], batch[299], batch[300], batch[301]}) {
    auto found = store().find_audit(want.request_id);
    ASSERT_TRUE(found.ok()) << found.error().message;
    ASSERT_TRUE(found->has_value()) << want.request_id;
    EXPECT_EQ((*found)->time_unix_ms, want.time_unix_ms);
    EXPECT_EQ((*found)->status, want.status);
  }
  auto missing = store().find_audit(ids.next_time_ordered(1'795'900'000'100));
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST_F(StateStoreTest, RetentionTrimsABlockTheCutoffFallsInside) {
  std::vector<AuditRecord> batch;
  batch.reserve(11);
  for (int i = 0; i < 10; ++i) batch.push_back(audit_record("r" + std::to_string(i), 1000 + i * 100, i < 5 ? "old" : "new", 200));
  batch.push_back(audit_record("client-id", 1100, "old", 200));
  ASSERT_TRUE(store().append_audit(batch).ok());
  ASSERT_EQ(raw_sql(file_, "SELECT COUNT(*) FROM audit_blocks"), "1");
  auto deleted = store().delete_audit_before(1450);
  ASSERT_TRUE(deleted.ok()) << deleted.error().message;
  EXPECT_EQ(*deleted, 6);  // r0..r4 and client-id
  AuditQuery q;
  q.oldest_first = true;
  EXPECT_EQ(ids_of(*store().query_audit(q)), (Ids{"r5", "r6", "r7", "r8", "r9"}));
  EXPECT_EQ(raw_sql(file_, "SELECT first_time_unix_ms || ' ' || records || ' ' || endpoints FROM audit_blocks"),
            "1500 5 \nnew\n");
  // These ids carry no time, so each has an index row; the expired one's went too.
  EXPECT_EQ(raw_sql(file_, "SELECT COUNT(*) FROM audit_request_ids"), "5");
  EXPECT_FALSE(store().find_audit("client-id")->has_value());
  EXPECT_FALSE(store().find_audit("r4")->has_value());
  EXPECT_EQ((*store().find_audit("r7"))->time_unix_ms, 1700);
}

TEST_F(StateStoreTest, StatusAndEndpointFiltersReadOnlyTheBlocksThatCanMatch) {
  // Arrivals 20 s apart: one block each.
  const std::vector<AuditRecord> batch = {audit_record("ok", 1000, "digits", 200),
                                          audit_record("failed", 21000, "digits", 503),
                                          audit_record("refused", 41000, "other", 429)};
  ASSERT_TRUE(store().append_audit(batch).ok());
  EXPECT_EQ(raw_sql(file_, "SELECT group_concat(status_classes, ' ') FROM (SELECT status_classes FROM audit_blocks "
                           "ORDER BY seq)"),
            "4 32 16");
  // Spoil the 2xx block: queries that cannot match it never read it.
  raw_sql(file_, "UPDATE audit_blocks SET records_json = 'not json' WHERE status_classes = 4");
  AuditQuery q;
  q.status = 5;
  const auto query_ids = [&](const AuditQuery& query) {
    auto rows = store().query_audit(query);
    EXPECT_TRUE(rows.ok()) << (rows.ok() ? "" : rows.error().message);
    return rows.ok() ? ids_of(*rows) : Ids{};
  };
  EXPECT_EQ(query_ids(q), Ids{"failed"});
  q.status = 503;
  EXPECT_EQ(query_ids(q), Ids{"failed"});
  q.status = 0;
  q.endpoint = "other";
  EXPECT_EQ(query_ids(q), Ids{"refused"});
  q.endpoint.clear();
  q.status = 2;
  EXPECT_FALSE(store().query_audit(q).ok());
}

TEST_F(StateStoreTest, AMalformedBlockIsAnErrorNamingIt) {
  ASSERT_TRUE(store().append_audit(std::vector<AuditRecord>{audit_record("x", 1000, "digits", 200)}).ok());
  raw_sql(file_, "UPDATE audit_blocks SET records_json = '[[\"x\",\"t\",1000]]'");
  auto rows = store().query_audit({});
  ASSERT_FALSE(rows.ok());
  EXPECT_NE(rows.error().message.find("audit block 1"), std::string::npos) << rows.error().message;
  EXPECT_NE(rows.error().message.find("3 columns"), std::string::npos) << rows.error().message;
  EXPECT_FALSE(store().find_audit("x").ok());
}

TEST_F(StateStoreTest, AuditWrittenOnOneConnectionIsVisibleOnAnother) {
  auto other = open_sqlite_store(file_);
  ASSERT_TRUE(other.ok()) << other.error().message;
  ASSERT_TRUE((*other)->append_audit(std::vector<AuditRecord>{audit_record("x", 1, "digits", 200)}).ok());
  auto found = store().find_audit("x");
  ASSERT_TRUE(found.ok() && found->has_value());
}

} // namespace
} // namespace tandem::registry

namespace tandem::registry {
namespace {

JobRecord sample_job(const std::string& id, std::int64_t created) {
  JobRecord j;
  j.id = id;
  j.endpoint = "digits";
  j.status = "IN_QUEUE";
  j.input_json = R"({"inputs":[]})";
  j.webhook = "http://127.0.0.1:9/hook";
  j.low_priority = true;
  j.execution_timeout_ms = 600'000;
  j.ttl_ms = 86'400'000;
  j.created_unix_ms = created;
  j.queued_unix_ms = created;
  return j;
}

TEST_F(StateStoreTest, JobsRoundTripAndAStateChangeKeepsTheStoredInput) {
  auto job = sample_job("job-1", 1000);
  ASSERT_TRUE(store().save_job(job, true).ok());
  job.status = "COMPLETED";
  job.started_unix_ms = 1010;
  job.finished_unix_ms = 1020;
  job.output_json = R"({"outputs":[]})";
  job.worker = "digits-ded-0";
  job.cost_usd = 0.25;
  job.executions = 2;
  job.webhook_state = "pending";
  job.input_json.clear();  // a finished job no longer holds its input in memory
  ASSERT_TRUE(store().save_job(job, false).ok());
  auto found = store().find_job("job-1");
  ASSERT_TRUE(found.ok() && found->has_value());
  const JobRecord& j = **found;
  EXPECT_EQ(j.status, "COMPLETED");
  EXPECT_EQ(j.input_json, R"({"inputs":[]})");  // written once, with the first save
  EXPECT_EQ(j.output_json, R"({"outputs":[]})");
  EXPECT_TRUE(j.low_priority);
  EXPECT_EQ(j.executions, 2);
  EXPECT_EQ(j.finished_unix_ms, 1020);
  EXPECT_DOUBLE_EQ(j.cost_usd, 0.25);
  EXPECT_EQ(j.webhook_state, "pending");
  EXPECT_FALSE(store().find_job("nope")->has_value());
}

TEST_F(StateStoreTest, LoadJobsReturnsUnfinishedAndRecentlyFinishedOnesOldestFirst) {
  auto queued = sample_job("b-queued", 3000);
  auto old_done = sample_job("a-old", 1000);
  old_done.status = "COMPLETED";
  old_done.finished_unix_ms = 1500;
  auto recent_failed = sample_job("c-failed", 2000);
  recent_failed.status = "FAILED";
  recent_failed.finished_unix_ms = 5000;
  auto recent_done = sample_job("d-done", 2500);
  recent_done.status = "COMPLETED";
  recent_done.finished_unix_ms = 5000;
  ASSERT_TRUE(store().in_transaction([&]() -> Status {
    for (const auto* j : {&queued, &old_done, &recent_failed, &recent_done})
      if (auto s = store().save_job(*j, true); !s) return s;
    return Ok{};
  }).ok());
  auto loaded = store().load_jobs(4000);
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->size(), 3u);
  EXPECT_EQ((*loaded)[0].id, "c-failed");
  EXPECT_EQ((*loaded)[1].id, "d-done");
  EXPECT_EQ((*loaded)[2].id, "b-queued");
  EXPECT_TRUE((*loaded)[0].input_json.empty());   // finished: a retry reads it with find_job
  EXPECT_TRUE((*loaded)[1].input_json.empty());
  EXPECT_FALSE((*loaded)[2].input_json.empty());  // unfinished: it runs after the restart
  EXPECT_EQ(*store().delete_jobs_finished_before(4000), 1);
  EXPECT_TRUE(store().delete_job("b-queued").ok());
  EXPECT_EQ(store().load_jobs(0)->size(), 2u);
}

TEST_F(StateStoreTest, AFailedTransactionLeavesNoJobBehind) {
  auto status = store().in_transaction([&]() -> Status {
    if (auto s = store().save_job(sample_job("x", 1), true); !s) return s;
    return Error{ErrorCode::internal, "something after it failed"};
  });
  EXPECT_FALSE(status.ok());
  EXPECT_FALSE(store().find_job("x")->has_value());
}

} // namespace
} // namespace tandem::registry
