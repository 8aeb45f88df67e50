#include "cli/admin_client.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <cstdlib>

namespace tandem::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;

Result<AdminClient> AdminClient::create(const std::string& server, std::chrono::milliseconds timeout_ms) {
  std::string base = server;
  if (base.empty()) {
    const char* env = std::getenv("TANDEM_SERVER");
    base = env && *env ? env : "http://127.0.0.1:8080";
  }
  constexpr std::string_view scheme = "http://";
  if (base.rfind(scheme, 0) != 0)
    return make_error(ErrorCode::invalid_request, "server URL \"" + base + "\": expected http://HOST:PORT");
  std::string rest = base.substr(scheme.size());
  std::string prefix;
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    prefix = rest.substr(slash);
    rest.resize(slash);
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  }
  std::string host = rest;
  std::string port = "80";
  if (!rest.empty() && rest.front() == '[') {  // [::1]:8080
    auto close = rest.find(']');
    if (close == std::string::npos) return make_error(ErrorCode::invalid_request, "server URL \"" + base + "\": bad host");
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
  } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty() || port.empty())
    return make_error(ErrorCode::invalid_request, "server URL \"" + base + "\": expected http://HOST:PORT");
  return AdminClient(base, host, port, prefix, timeout_ms);
}

AdminClient::AdminClient(std::string base, std::string host, std::string port, std::string prefix,
                         std::chrono::milliseconds timeout_ms)
    : base_(std::move(base)), host_(std::move(host)), port_(std::move(port)), prefix_(std::move(prefix)),
      timeout_ms_(timeout_ms) {}

Result<AdminResponse> AdminClient::request(const std::string& method, const std::string& target,
                                           const std::string& body, const std::string& content_type) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  beast::error_code ec;
  auto fail = [&](const std::string& what) {
    return make_error(ErrorCode::unavailable, "cannot reach tandem at " + base_ + " (" + what + ": " + ec.message() +
                                                  "); set --server or TANDEM_SERVER");
  };
  asio::ip::tcp::resolver resolver(io);
  auto endpoints = resolver.resolve(host_, port_, ec);
  if (ec) return fail("resolve");
  // tcp_stream's expiry applies to asynchronous operations only: each step runs to completion
  // on this io_context, so that a server that stops answering is a timeout and not a hang.
  auto complete = [&io] {
    io.restart();
    io.run();
  };
  stream.expires_after(timeout_ms_);
  stream.async_connect(endpoints, [&](beast::error_code e, const asio::ip::tcp::endpoint&) { ec = e; });
  complete();
  if (ec) return fail("connect");
  bhttp::request<bhttp::string_body> req(bhttp::string_to_verb(method), prefix_ + target, 11);
  req.set(bhttp::field::host, host_ + ":" + port_);
  req.set(bhttp::field::user_agent, "tandem-cli/" TANDEM_VERSION);
  if (!body.empty() || method == "POST" || method == "PUT") {
    req.set(bhttp::field::content_type, content_type);
    req.body() = body;
    req.prepare_payload();
  }
  stream.expires_after(timeout_ms_);
  bhttp::async_write(stream, req, [&](beast::error_code e, std::size_t) { ec = e; });
  complete();
  if (ec) return fail("write");
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(1ULL << 30);
  if (method == "HEAD") parser.skip(true);  // a HEAD answer has a Content-Length but no body
  stream.expires_after(timeout_ms_);
  bhttp::async_read(stream, buffer, parser, [&](beast::error_code e, std::size_t) { ec = e; });
  complete();
  if (ec) return fail("read");
  auto& res = parser.get();
  AdminResponse out;
  out.status = static_cast<int>(res.result_int());
  out.body = std::move(res.body());
  out.content_type = std::string(res[bhttp::field::content_type]);
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  return out;
}

std::string error_message(const AdminResponse& response) {
  boost::system::error_code ec;
  auto value = boost::json::parse(response.body, ec);
  if (!ec && value.is_object())
    if (auto* e = value.as_object().if_contains("error"); e && e->is_string()) return std::string(e->as_string());
  std::string text = response.body.substr(0, 500);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text.empty() ? "HTTP " + std::to_string(response.status) : text;
}

} // namespace tandem::cli
