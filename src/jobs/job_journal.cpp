#include "jobs/job_journal.hpp"

#include "state/sqlite_store.hpp"

#include <spdlog/spdlog.h>

namespace tandem::jobs {

Result<std::unique_ptr<JobJournal>> JobJournal::start(const std::filesystem::path& store_file, IoInbox& inbox) {
  auto store = registry::open_sqlite_store(store_file);
  if (!store) return store.error();
  return std::unique_ptr<JobJournal>(new JobJournal(std::move(*store), inbox));
}

JobJournal::JobJournal(std::unique_ptr<registry::StateStore> store, IoInbox& inbox)
    : store_(std::move(store)), inbox_(inbox) {
  thread_ = std::thread([this] { run(); });
}

JobJournal::~JobJournal() { shutdown(); }

void JobJournal::submit(Work work, Done done) {
  {
    std::lock_guard lock(mutex_);
    pending_.push_back({std::move(work), std::move(done)});
  }
  wake_.notify_one();
}

std::size_t JobJournal::backlog() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

void JobJournal::shutdown() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void JobJournal::run() {
  std::vector<Entry> batch;
  std::vector<Status> results;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
      if (pending_.empty() && stopping_) return;
      batch.swap(pending_);
    }
    results.assign(batch.size(), Ok{});
    Status committed = store_->in_transaction([&]() -> Status {
      for (std::size_t i = 0; i < batch.size(); ++i) results[i] = batch[i].work(*store_);
      return Ok{};
    });
    batches_.fetch_add(1, std::memory_order_relaxed);
    changes_.fetch_add(batch.size(), std::memory_order_relaxed);
    if (!committed) {
      failures_.fetch_add(1, std::memory_order_relaxed);
      spdlog::error("jobs: writing {} change(s) to the state store failed: {}", batch.size(),
                    committed.error().message);
      for (auto& r : results) r = committed;
    }
    // One post per batch: the io thread runs the callbacks in submission order.
    std::vector<std::pair<Done, Status>> callbacks;
    for (std::size_t i = 0; i < batch.size(); ++i)
      if (batch[i].done) callbacks.emplace_back(std::move(batch[i].done), std::move(results[i]));
    batch.clear();
    if (!callbacks.empty())
      inbox_.post([callbacks = std::move(callbacks)]() mutable {
        for (auto& [done, status] : callbacks) done(status);
      });
  }
}

} // namespace tandem::jobs
