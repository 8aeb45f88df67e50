#include "http/one_shot_client.hpp"

#include <charconv>
#include <memory>
#include <thread>

namespace tandem::http {

std::optional<HttpUrl> parse_http_url(std::string_view url) {
  constexpr std::string_view scheme = "http://";
  if (url.substr(0, scheme.size()) != scheme) return std::nullopt;
  url.remove_prefix(scheme.size());
  HttpUrl out;
  const auto slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos) out.target = std::string(url.substr(slash));
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  if (const auto colon = authority.rfind(':'); colon != std::string_view::npos && authority.front() != '[') {
    const std::string_view port = authority.substr(colon + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535) return std::nullopt;
    out.port = std::string(port);
    authority = authority.substr(0, colon);
  }
  if (authority.empty()) return std::nullopt;
  for (char c : authority)
    if (c <= ' ' || c == '/' || c == '?' || c == '#') return std::nullopt;
  out.host = std::string(authority);
  for (char c : out.target)
    if (c <= ' ' || c == 0x7f) return std::nullopt;
  return out;
}

namespace {

/// The host's addresses. The io_context runs single-threaded without locks, which Asio's
/// asynchronous resolver does not support (it needs a thread of its own): an IP address needs
/// no lookup, and a name is looked up on a short-lived thread while the coroutine waits.
struct Resolved {
  boost::system::error_code error;
  std::vector<tcp::endpoint> endpoints;
};

asio::awaitable<Resolved> resolve(const asio::any_io_executor& executor, const HttpUrl& url,
                                  std::chrono::milliseconds timeout, IoInbox& inbox) {
  const auto port = static_cast<unsigned short>(std::stoul(url.port));
  boost::system::error_code ec;
  std::string host = url.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (auto address = asio::ip::make_address(host, ec); !ec) co_return Resolved{{}, {tcp::endpoint(address, port)}};
  struct Lookup {
    explicit Lookup(const asio::any_io_executor& executor) : done(executor) {}
    asio::steady_timer done;
    std::vector<tcp::endpoint> endpoints;
    boost::system::error_code error;
  };
  auto lookup = std::make_shared<Lookup>(executor);
  lookup->done.expires_after(timeout);
  std::thread([lookup, &inbox, host, service = url.port] {
    asio::io_context own;
    tcp::resolver resolver(own);
    boost::system::error_code error;
    auto results = resolver.resolve(host, service, error);
    std::vector<tcp::endpoint> endpoints;
    for (const auto& r : results) endpoints.push_back(r.endpoint());
    inbox.post([lookup, endpoints = std::move(endpoints), error]() mutable {
      lookup->endpoints = std::move(endpoints);
      lookup->error = error;
      lookup->done.cancel();
    });
  }).detach();
  auto [waited] = co_await lookup->done.async_wait(asio::as_tuple(asio::use_awaitable));
  if (!waited) co_return Resolved{asio::error::timed_out, {}};
  if (lookup->error) co_return Resolved{lookup->error, {}};
  if (lookup->endpoints.empty()) co_return Resolved{asio::error::host_not_found, {}};
  co_return Resolved{{}, std::move(lookup->endpoints)};
}

} // namespace

asio::awaitable<Result<unsigned>> post_json(asio::any_io_executor executor, const HttpUrl& url, std::string body,
                                            std::chrono::milliseconds timeout, IoInbox& inbox,
                                            EndpointVetter vet) {
  beast::tcp_stream stream(executor);
  stream.expires_after(timeout);
  auto failed = [&](const boost::system::error_code& ec, const char* what) -> Error {
    if (ec == beast::error::timeout || ec == asio::error::operation_aborted)
      return {ErrorCode::deadline_exceeded, std::string(what) + " http://" + url.host + ":" + url.port + url.target +
                                      ": no answer within " + std::to_string(timeout.count()) + " ms"};
    return {ErrorCode::upstream_error,
            std::string(what) + " http://" + url.host + ":" + url.port + url.target + ": " + ec.message()};
  };
  auto resolved = co_await resolve(executor, url, timeout, inbox);
  if (resolved.error) co_return failed(resolved.error, "resolving");
  std::optional<std::string> refused;
  if (vet) {
    // Only addresses the vetter accepts are tried; a name may resolve to several.
    std::vector<tcp::endpoint> accepted;
    for (const auto& e : resolved.endpoints) {
      if (auto why = vet(e, tcp::endpoint{})) refused = std::move(why);
      else accepted.push_back(e);
    }
    if (accepted.empty())
      co_return Error{ErrorCode::invalid_request, "refusing http://" + url.host + ":" + url.port + url.target + ": " +
                                                       refused.value_or("no address")};
    resolved.endpoints = std::move(accepted);
  }
  auto [connect_ec, connected] = co_await stream.async_connect(resolved.endpoints, asio::as_tuple(asio::use_awaitable));
  (void)connected;
  if (connect_ec) co_return failed(connect_ec, "connecting to");
  if (vet) {
    // The address actually connected to, checked before a byte is sent.
    boost::system::error_code remote_ec;
    boost::system::error_code local_ec;
    const auto remote = stream.socket().remote_endpoint(remote_ec);
    const auto local = stream.socket().local_endpoint(local_ec);
    if (remote_ec || local_ec) co_return failed(remote_ec ? remote_ec : local_ec, "connecting to");
    if (auto why = vet(remote, local)) {
      boost::system::error_code ignored;
      stream.socket().close(ignored);
      co_return Error{ErrorCode::invalid_request,
                      "refusing http://" + url.host + ":" + url.port + url.target + ": " + *why};
    }
  }
  bhttp::request<bhttp::string_body> request{bhttp::verb::post, url.target, 11};
  request.set(bhttp::field::host, url.host);
  request.set(bhttp::field::content_type, "application/json");
  request.set(bhttp::field::user_agent, "tandem/" TANDEM_VERSION);
  request.set(bhttp::field::connection, "close");
  request.body() = std::move(body);
  request.prepare_payload();
  auto [write_ec, written] = co_await bhttp::async_write(stream, request, asio::as_tuple(asio::use_awaitable));
  (void)written;
  if (write_ec) co_return failed(write_ec, "sending to");
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(std::uint64_t{64} * 1024);  // the answer is not used; a large one is not read whole
  auto [read_ec, read] = co_await bhttp::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
  (void)read;
  if (read_ec && read_ec != bhttp::error::body_limit) co_return failed(read_ec, "reading the answer of");
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return parser.get().result_int();
}

} // namespace tandem::http
