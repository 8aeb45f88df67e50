#pragma once
// The jobs' durable log: every change to a job is written to the state store by one thread
// with its own connection, batched into one transaction per wake-up (group commit), so that
// `run` can answer only once its job is committed without the io thread ever touching the
// database, and a burst of a thousand submissions costs a handful of commits.
//
// Completions run on the io thread (through its IoInbox), in submission order.
#include "base/io_inbox.hpp"
#include "base/status.hpp"
#include "state/state_store.hpp"

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace tandem::jobs {

class JobJournal {
public:
  using Work = std::function<Status(registry::StateStore&)>;
  using Done = std::function<void(const Status&)>;

  /// Opens its own connection to the store and starts the writer thread. `done` callbacks run
  /// on the io thread of `inbox`, which must outlive the journal.
  static Result<std::unique_ptr<JobJournal>> start(const std::filesystem::path& store_file, IoInbox& inbox);
  ~JobJournal();
  JobJournal(const JobJournal&) = delete;
  JobJournal& operator=(const JobJournal&) = delete;

  /// Any thread; a short mutex only. `work` runs on the journal thread inside a transaction
  /// shared with the other work of its batch; `done` (optional) gets its status once the batch
  /// is committed (or failed).
  void submit(Work work, Done done = {});
  /// Commits everything submitted so far, then stops the thread. Callbacks not yet run are
  /// dropped with the executor's queue. Idempotent.
  void shutdown();

  [[nodiscard]] std::size_t backlog() const;
  [[nodiscard]] std::uint64_t batches() const { return batches_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t changes() const { return changes_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }

private:
  JobJournal(std::unique_ptr<registry::StateStore> store, IoInbox& inbox);
  void run();

  struct Entry {
    Work work;
    Done done;
  };
  std::unique_ptr<registry::StateStore> store_;
  IoInbox& inbox_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Entry> pending_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> batches_{0};
  std::atomic<std::uint64_t> changes_{0};
  std::atomic<std::uint64_t> failures_{0};
  std::thread thread_;
};

} // namespace tandem::jobs
