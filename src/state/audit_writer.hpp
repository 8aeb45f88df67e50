#pragma once
// Writes audit records off the request path: the io thread hands records over without waiting
// (a bounded backlog; overflow is dropped and counted), and one background thread writes them
// to the state store in batched transactions and applies the retention period.
//
// What a crash loses: records not yet committed, that is at most one flush interval's worth
// plus the batch being written (server.audit.flush_interval, 200 ms by default). SQLite's WAL
// keeps the database consistent whatever the moment of a kill -9.
#include "state/state_store.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

namespace tandem::registry {

struct AuditWriterOptions {
  std::filesystem::path store_file;
  std::size_t backlog_max = 65'536;
  std::size_t batch_max = 2'000;
  std::chrono::milliseconds flush_interval_ms{200};
  std::chrono::milliseconds retention_ms{7LL * 24 * 3600 * 1000};
};

class AuditWriter {
public:
  /// Opens its own connection to the store and starts the writer thread.
  static Result<std::unique_ptr<AuditWriter>> start(AuditWriterOptions options);
  ~AuditWriter();
  AuditWriter(const AuditWriter&) = delete;
  AuditWriter& operator=(const AuditWriter&) = delete;

  /// Any thread; never blocks on I/O (a short mutex only). False when the backlog is full:
  /// the record is dropped and counted. Taken by reference: a record is eight strings, and a
  /// by-value parameter cost a second move of each on the I/O thread.
  bool submit(AuditRecord&& record);
  /// Writes everything submitted so far, then stops the thread. Idempotent.
  void shutdown();

  [[nodiscard]] std::uint64_t written() const { return written_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t expired() const { return expired_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::size_t backlog() const;

private:
  AuditWriter(AuditWriterOptions options, std::unique_ptr<StateStore> store);
  void run();
  void write(std::vector<AuditRecord>& batch);
  void apply_retention();

  AuditWriterOptions options_;
  std::unique_ptr<StateStore> store_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<AuditRecord> pending_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> written_{0}, dropped_{0}, failed_{0}, expired_{0};
  std::chrono::steady_clock::time_point next_retention_{};
  std::thread thread_;
};

} // namespace tandem::registry
