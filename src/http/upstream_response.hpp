#pragma once
// A worker's response as the gateway uses it: status, content type and body. Read by Beast's
// HTTP/1.1 parser (framing, chunked bodies, limits) with a handler that keeps only these three:
// a response_parser stores every header in a node of its own, two allocations and their frees
// per proxied request for headers nobody reads.
#include "http/types.hpp"

#include <cstdint>
#include <string>

namespace tandem::http {

struct UpstreamResponse {
  unsigned status = 0;
  std::string content_type; // as sent; empty when the worker sent none
  std::string body;
  bool keep_alive = false; // the connection may carry another request
};

/// Parses one response into `response`. Limits are the base class's (body_limit,
/// header_limit); a Content-Length larger than the body limit fails before any body is read.
class UpstreamResponseParser final : public bhttp::basic_parser<false> {
public:
  UpstreamResponse response;

private:
  void on_request_impl(bhttp::verb, boost::core::string_view, boost::core::string_view, int,
                       boost::system::error_code&) override {}
  void on_response_impl(int code, boost::core::string_view, int, boost::system::error_code&) override {
    response.status = static_cast<unsigned>(code);
  }
  void on_field_impl(bhttp::field name, boost::core::string_view, boost::core::string_view value,
                     boost::system::error_code&) override {
    if (name == bhttp::field::content_type) response.content_type.assign(value.data(), value.size());
  }
  void on_header_impl(boost::system::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                         boost::system::error_code&) override {
    if (content_length) response.body.reserve(static_cast<std::size_t>(*content_length));
  }
  std::size_t on_body_impl(boost::core::string_view body, boost::system::error_code&) override {
    response.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, boost::core::string_view, boost::system::error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, boost::core::string_view body,
                                 boost::system::error_code&) override {
    response.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(boost::system::error_code&) override { response.keep_alive = keep_alive(); }
};

} // namespace tandem::http
