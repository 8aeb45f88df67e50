#include "pool/health_probe.hpp"

#include "http/upstream_pool.hpp"

namespace tandem::pool {

namespace asio = boost::asio;
using std::chrono::steady_clock;

asio::awaitable<ProbeOutcome> probe_until_ready(asio::io_context& io, const WorkerAddress& address,
                                                steady_clock::time_point deadline,
                                                const std::function<bool()>& still_wanted) {
  const std::string head = "GET /v2/health/ready HTTP/1.1\r\nHost: " + address.host + "\r\n\r\n";
  asio::steady_timer pause(io);
  while (still_wanted()) {
    if (steady_clock::now() >= deadline) co_return ProbeOutcome::timed_out;
    http::UpstreamPool probe(io.get_executor(), address.endpoint, 0, 1 << 16);
    const auto attempt_deadline = steady_clock::now() + std::chrono::milliseconds(250);
    auto response = co_await probe.send(head, {}, attempt_deadline);
    if (!still_wanted()) break;
    if (response && response->status == 200) co_return ProbeOutcome::ready;
    pause.expires_after(std::chrono::milliseconds(25));
    co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  co_return ProbeOutcome::abandoned;
}

} // namespace tandem::pool
