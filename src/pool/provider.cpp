#include "pool/provider.hpp"

#include "http/upstream_pool.hpp"

namespace tandem::pool {

std::shared_ptr<http::Upstream> Provider::connect(boost::asio::io_context& io, const WorkerAddress& address,
                                                  std::size_t max_idle, std::size_t max_response_bytes) {
  return std::make_shared<http::UpstreamPool>(io.get_executor(), address.endpoint, max_idle,
                                              max_response_bytes);
}

} // namespace tandem::pool
