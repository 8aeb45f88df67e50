#pragma once
// The `local` provider: each worker is a child process of this host. The reference worker
// (`tandem worker`) says on a pipe where it listens and what one request takes it; any other
// command gets a free port in its arguments and is polled on its health route until ready. Its
// stderr is relayed line by line, and its last error line kept, so a failed start says why.
#include "config/config.hpp"
#include "model/model_manifest.hpp"
#include "pool/child_reaper.hpp"
#include "pool/provider.hpp"

#include <string>
#include <vector>

namespace tandem::pool {

struct LocalWorkerSpec {
  WorkerSpec worker;  // command (empty: the reference worker), args, start timeout
  ModelManifest manifest;
  std::string self_exe;                       // the tandem binary, for the reference worker
  std::vector<std::string> worker_log_args;   // e.g. --log-level
  std::size_t max_request_bytes = 16u << 20;  // the reference worker accepts what the gateway does
  std::chrono::milliseconds stop_grace{10'000};  // SIGTERM, then SIGKILL after this
};

class LocalProvider final : public Provider {
public:
  /// Lives on the io thread; the reaper must outlive every worker it starts.
  LocalProvider(boost::asio::io_context& io, ChildReaper& reaper, LocalWorkerSpec spec);
  [[nodiscard]] std::string_view name() const override { return "local"; }
  Result<std::unique_ptr<ProviderWorker>> start(const WorkerStart& start, WorkerEvents events) override;
  /// The command line of a worker (for tests and logs).
  [[nodiscard]] std::vector<std::string> command_for(const std::string& worker_id, unsigned short port) const;

private:
  boost::asio::io_context& io_;
  ChildReaper& reaper_;
  LocalWorkerSpec spec_;
};

} // namespace tandem::pool
