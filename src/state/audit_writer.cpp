#include "state/audit_writer.hpp"

#include "state/sqlite_store.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <span>

namespace tandem::registry {

Result<std::unique_ptr<AuditWriter>> AuditWriter::start(AuditWriterOptions options) {
  auto store = open_sqlite_store(options.store_file);
  if (!store) return store.error();
  return std::unique_ptr<AuditWriter>(new AuditWriter(std::move(options), std::move(*store)));
}

AuditWriter::AuditWriter(AuditWriterOptions options, std::unique_ptr<StateStore> store)
    : options_(std::move(options)), store_(std::move(store)) {
  pending_.reserve(std::min<std::size_t>(options_.batch_max, 4096));
  thread_ = std::thread([this] { run(); });
}

AuditWriter::~AuditWriter() { shutdown(); }

bool AuditWriter::submit(AuditRecord&& record) {
  std::size_t depth = 0;
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || pending_.size() >= options_.backlog_max) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    pending_.push_back(std::move(record));
    depth = pending_.size();
  }
  if (depth == options_.batch_max) wake_.notify_one();
  return true;
}

std::size_t AuditWriter::backlog() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

void AuditWriter::shutdown() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void AuditWriter::run() {
  std::vector<AuditRecord> batch;
  // The same reservation the constructor made for pending_: reading pending_.capacity() here,
  // outside the mutex, raced with submit() growing it.
  batch.reserve(std::min<std::size_t>(options_.batch_max, 4096));
  apply_retention();
  for (;;) {
    bool stop = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, options_.flush_interval_ms,
                     [&] { return stopping_ || pending_.size() >= options_.batch_max; });
      batch.swap(pending_);
      stop = stopping_;
    }
    write(batch);
    batch.clear();
    if (std::chrono::steady_clock::now() >= next_retention_) apply_retention();
    if (stop) {
      // Anything submitted between the swap and the stop flag was refused, so this is all.
      return;
    }
  }
}

void AuditWriter::write(std::vector<AuditRecord>& batch) {
  for (std::size_t offset = 0; offset < batch.size(); offset += options_.batch_max) {
    const std::size_t count = std::min(options_.batch_max, batch.size() - offset);
    std::span<const AuditRecord> chunk(batch.data() + offset, count);
    if (auto s = store_->append_audit(chunk); !s) {
      failed_.fetch_add(count, std::memory_order_relaxed);
      spdlog::error("audit: {} record(s) lost: {}", count, s.error().message);
    } else {
      written_.fetch_add(count, std::memory_order_relaxed);
    }
  }
}

void AuditWriter::apply_retention() {
  // Checked at most once a minute (more often for very short retention periods, as in tests).
  const auto every = std::min<std::chrono::milliseconds>(std::chrono::minutes(1), options_.retention_ms / 2);
  next_retention_ = std::chrono::steady_clock::now() + every;
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  auto deleted = store_->delete_audit_before(now_ms - options_.retention_ms.count());
  if (!deleted) {
    spdlog::error("audit: retention: {}", deleted.error().message);
  } else if (*deleted > 0) {
    expired_.fetch_add(static_cast<std::uint64_t>(*deleted), std::memory_order_relaxed);
  }
}

} // namespace tandem::registry
