// The background audit writer against a real SQLite store in a temporary directory.
#include "state/audit_writer.hpp"

#include "state/sqlite_store.hpp"

#include <gtest/gtest.h>
#include "support/audit_record.hpp"
#include "support/store_fixture.hpp"
#include "support/wait_until.hpp"
#include <sqlite3.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace tandem::registry {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using tandem::testing::TempDir;

using tandem::testing::wait_for_condition;

/// A raw connection of another process's kind, used to hold the database's write lock.
class RawConnection {
public:
  explicit RawConnection(const fs::path& file) {
    EXPECT_EQ(sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawConnection() { sqlite3_close_v2(db_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  void exec(const std::string& sql) {
    char* message = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message), SQLITE_OK)
        << sql << ": " << (message ? message : "");
    sqlite3_free(message);
  }

private:
  sqlite3* db_ = nullptr;
};

std::int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// A record that differs from the shared one where the writer test checks what it stored.
AuditRecord record(const std::string& id, std::int64_t time_ms) {
  AuditRecord r = tandem::testing::audit_record(id, time_ms, "digits", 200);
  r.tier = "serverless";
  r.worker = "w-7";
  r.total_ms = 3.5;
  return r;
}

// The server opens its own store first (creating and migrating it); so does this test.
class AuditWriterTest : public tandem::testing::FreshStoreTest {
protected:
  AuditWriterOptions options() const {
    AuditWriterOptions o;
    o.store_file = file_;
    o.flush_interval_ms = 20ms;
    return o;
  }

  std::unique_ptr<AuditWriter> start(const AuditWriterOptions& o) {
    auto writer = AuditWriter::start(o);
    EXPECT_TRUE(writer.ok()) << (writer.ok() ? "" : writer.error().message);
    return writer.ok() ? std::move(*writer) : nullptr;
  }

  std::vector<AuditRecord> stored() {
    AuditQuery q;
    q.limit = 1'000'000;
    q.oldest_first = true;
    auto rows = store_->query_audit(q);
    EXPECT_TRUE(rows.ok()) << (rows.ok() ? "" : rows.error().message);
    return rows.ok() ? *rows : std::vector<AuditRecord>{};
  }

  std::set<std::string> stored_ids() {
    std::set<std::string> ids;
    for (const auto& r : stored()) ids.insert(r.request_id);
    return ids;
  }
};

TEST_F(AuditWriterTest, EverySubmittedRecordIsInTheStoreAfterShutdown) {
  constexpr int kRecords = 5000;
  auto o = options();
  o.batch_max = 700; // several batches, the last one partial
  auto writer = start(o);
  ASSERT_NE(writer, nullptr);
  const auto now = now_unix_ms();
  std::set<std::string> expected;
  for (int i = 0; i < kRecords; ++i) {
    const std::string id = "req-" + std::to_string(i);
    expected.insert(id);
    ASSERT_TRUE(writer->submit(record(id, now + i)));
  }
  writer->shutdown();
  EXPECT_EQ(writer->written(), static_cast<std::uint64_t>(kRecords));
  EXPECT_EQ(writer->dropped(), 0u);
  EXPECT_EQ(writer->failed(), 0u);
  EXPECT_EQ(writer->backlog(), 0u);

  const auto rows = stored();
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(kRecords));
  EXPECT_EQ(stored_ids(), expected);
  EXPECT_EQ(rows.front().request_id, "req-0");
  EXPECT_EQ(rows.front().tier, "serverless");
  EXPECT_EQ(rows.front().worker, "w-7");
  EXPECT_DOUBLE_EQ(rows.front().total_ms, 3.5);
}

TEST_F(AuditWriterTest, RecordsFromSeveralThreadsAreAllWritten) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 1000;
  auto o = options();
  o.batch_max = 256;
  auto writer = start(o);
  ASSERT_NE(writer, nullptr);
  const auto now = now_unix_ms();
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  std::atomic<int> refused{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i)
        if (!writer->submit(record("t" + std::to_string(t) + "-" + std::to_string(i), now))) ++refused;
    });
  }
  for (auto& thread : threads) thread.join();
  writer->shutdown();
  EXPECT_EQ(refused.load(), 0);
  EXPECT_EQ(writer->written(), static_cast<std::uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(stored_ids().size(), static_cast<std::size_t>(kThreads * kPerThread));
}

TEST_F(AuditWriterTest, RecordsAreWrittenBeforeShutdownWithinAFlushInterval) {
  auto writer = start(options());
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->submit(record("early", now_unix_ms())));
  EXPECT_TRUE(wait_for_condition([&] { return writer->written() == 1; }, 5s));
  auto found = store_->find_audit("early");
  ASSERT_TRUE(found.ok()) << found.error().message;
  EXPECT_TRUE(found->has_value());
}

TEST_F(AuditWriterTest, SubmitAfterShutdownIsRefusedAndCountedAsDropped) {
  auto writer = start(options());
  ASSERT_NE(writer, nullptr);
  writer->shutdown();
  for (int i = 0; i < 3; ++i)
    EXPECT_FALSE(writer->submit(record("late-" + std::to_string(i), now_unix_ms())));
  EXPECT_EQ(writer->dropped(), 3u);
  EXPECT_EQ(writer->written(), 0u);
  writer->shutdown(); // idempotent
  EXPECT_TRUE(stored().empty());
}

TEST_F(AuditWriterTest, FullBacklogDropsAndCountsWithoutBlocking) {
  // Another connection holds the write lock, so the writer's first statement (retention at
  // start) waits on the database while the backlog fills up.
  RawConnection other(file_);
  other.exec("BEGIN IMMEDIATE");
  auto o = options();
  o.backlog_max = 10;
  o.batch_max = 4;
  auto writer = start(o);
  ASSERT_NE(writer, nullptr);
  const auto now = now_unix_ms();
  int accepted = 0;
  for (int i = 0; i < 13; ++i)
    if (writer->submit(record("r-" + std::to_string(i), now))) ++accepted;
  EXPECT_EQ(accepted, 10);
  EXPECT_EQ(writer->dropped(), 3u);
  EXPECT_EQ(writer->backlog(), 10u);
  other.exec("COMMIT");

  writer->shutdown();
  EXPECT_EQ(writer->written(), 10u);
  EXPECT_EQ(writer->failed(), 0u);
  std::set<std::string> expected;
  for (int i = 0; i < 10; ++i) expected.insert("r-" + std::to_string(i));
  EXPECT_EQ(stored_ids(), expected);
}

TEST_F(AuditWriterTest, FailedBatchIsCountedAndTheWriterCarriesOn) {
  RawConnection(file_).exec("CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_blocks "
                            "WHEN NEW.records_json LIKE '%[\"poison\",%' BEGIN SELECT RAISE(ABORT, 'poisoned'); END");
  auto writer = start(options());
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->submit(record("poison", now_unix_ms())));
  ASSERT_TRUE(wait_for_condition([&] { return writer->failed() == 1; }, 5s));
  ASSERT_TRUE(writer->submit(record("fine", now_unix_ms())));
  writer->shutdown();
  EXPECT_EQ(writer->failed(), 1u);
  EXPECT_EQ(writer->written(), 1u);
  EXPECT_EQ(stored_ids(), std::set<std::string>{"fine"});
}

TEST_F(AuditWriterTest, RetentionAtStartDeletesExpiredRecordsAndKeepsRecentOnes) {
  const auto now = now_unix_ms();
  const std::int64_t day_ms = 24LL * 3600 * 1000;
  std::vector<AuditRecord> existing = {
      record("old-1", now - 30 * day_ms),   record("old-2", now - 8 * day_ms), record("old-3", 1),
      record("recent-1", now - 6 * day_ms), record("recent-2", now - 60'000),  record("recent-3", now)};
  ASSERT_TRUE(store_->append_audit(existing).ok());

  auto o = options();
  o.retention_ms = std::chrono::milliseconds(7 * day_ms);
  auto writer = start(o);
  ASSERT_NE(writer, nullptr);
  // Retention runs first thing on the writer thread; shutdown waits for that thread.
  writer->shutdown();
  EXPECT_EQ(writer->expired(), 3u);
  EXPECT_EQ(stored_ids(), (std::set<std::string>{"recent-1", "recent-2", "recent-3"}));
}

TEST_F(AuditWriterTest, ShortRetentionPeriodApplies) {
  const auto now = now_unix_ms();
  std::vector<AuditRecord> existing = {record("two-hours-ago", now - 2LL * 3600 * 1000),
                                       record("a-minute-ago", now - 60'000)};
  ASSERT_TRUE(store_->append_audit(existing).ok());
  auto o = options();
  o.retention_ms = 1h;
  auto writer = start(o);
  ASSERT_NE(writer, nullptr);
  writer->shutdown();
  EXPECT_EQ(writer->expired(), 1u);
  EXPECT_EQ(stored_ids(), std::set<std::string>{"a-minute-ago"});
}

TEST(AuditWriterStart, UnopenableStoreIsAnError) {
  TempDir dir;
  AuditWriterOptions o;
  o.store_file = dir.path() / "missing" / "tandem.db";
  auto writer = AuditWriter::start(o);
  ASSERT_FALSE(writer.ok());
  EXPECT_NE(writer.error().message.find(o.store_file.string()), std::string::npos) << writer.error().message;
}

} // namespace
} // namespace tandem::registry
