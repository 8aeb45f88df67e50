#pragma once
// A worker that cannot say it is ready (any v2 server), or one that refused a connection and
// must prove it is back, is polled on GET /v2/health/ready until it answers 200.
#include "pool/provider.hpp"

#include <chrono>
#include <functional>
#include <string>

namespace tandem::pool {

enum class ProbeOutcome : std::uint8_t { ready, timed_out, abandoned };

/// Polls every 25 ms until a 200, `deadline`, or `still_wanted()` turns false (checked after
/// every poll: the worker exited, or the pool moved on). The arguments are references the
/// caller keeps while it awaits: g++ 12 may destroy a temporary with a destructor twice when it
/// is part of a co_await expression, so callers pass named objects.
boost::asio::awaitable<ProbeOutcome> probe_until_ready(boost::asio::io_context& io, const WorkerAddress& address,
                                                       std::chrono::steady_clock::time_point deadline,
                                                       const std::function<bool()>& still_wanted);

} // namespace tandem::pool
