#pragma once
#include <string_view>

namespace tandem {

/// Configures the process-wide spdlog logger: JSON lines on stderr, one object per line with
/// time, level, process role and message. Call once at start-up, before any thread starts.
/// Returns false for an unknown level name.
bool init_logging(std::string_view role, std::string_view level);

/// Whether init_logging() knows `level` (spdlog's names: trace, debug, info, warn, error, off,
/// and its aliases).
bool is_log_level(std::string_view level);

} // namespace tandem

namespace tandem {

/// Puts a request's ids on the log lines written while it lives, on this thread: they carry
/// "request_id" and "trace_id" fields. Coroutines interleave on the io thread, so create it
/// right around the log call, never across a co_await.
class LogContext {
public:
  LogContext(std::string_view request_id, std::string_view trace_id);
  ~LogContext();
  LogContext(const LogContext&) = delete;
  LogContext& operator=(const LogContext&) = delete;

private:
  std::string_view saved_request_id_;
  std::string_view saved_trace_id_;
};

} // namespace tandem
