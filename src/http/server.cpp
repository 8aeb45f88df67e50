#include "http/server.hpp"

#include "base/clock.hpp"
#include "base/recycled.hpp"

#include "http/parse_buffered.hpp"
#include "http/transfer_all.hpp"
#include "http/wire.hpp"
#include "http/write_now.hpp"
#include "protocol/v2_codec.hpp"

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <span>
#include <tuple>

#include <spdlog/spdlog.h>

namespace tandem::http {

Reply json_response(unsigned status, std::string body) {
  Reply reply;
  reply.status = status;
  reply.body = std::move(body);
  return reply;
}

std::string_view Reply::header(std::string_view name) const {
  std::string_view rest = headers;
  while (!rest.empty()) {
    auto end = rest.find("\r\n");
    std::string_view line = rest.substr(0, end);
    auto colon = line.find(": ");
    if (colon != std::string_view::npos && line.substr(0, colon) == name) return line.substr(colon + 2);
    if (end == std::string_view::npos) break;
    rest = rest.substr(end + 2);
  }
  return {};
}

Server::Server(asio::io_context& io, HttpLimits limits, Handler handler, MetricsRegistry& metrics) :
    io_(io), limits_(limits), handler_(std::move(handler)), acceptor_(io),
    connections_gauge_(metrics.gauge("tandem_http_connections", "Open client connections.", {}).with({})),
    connections_accepted_(
        metrics.counter("tandem_http_connections_accepted_total", "Client connections accepted.", {})
            .with({})),
    rejected_(metrics.counter("tandem_http_rejected_total",
                              "Requests or connections refused by an HTTP limit, by reason.", {"reason"})),
    // Never below max_body_bytes: a body the limits allow must fit when nothing else is in flight.
    body_budget_(std::max(limits.max_inflight_body_bytes, limits.max_body_bytes),
                 &metrics
                      .gauge("tandem_http_body_bytes_in_flight",
                             "Bytes reserved for request bodies being received or handled.", {})
                      .with({})),
    sweeper_(io) {}

Result<tcp::endpoint> Server::listen(const std::string& host, unsigned short port) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return make_error(ErrorCode::invalid_request, "invalid listen host \"" + host + "\": " + ec.message());
  tcp::endpoint endpoint(address, port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return make_error(ErrorCode::unavailable, "cannot listen on " + host + ":" + std::to_string(port) +
                                                  ": " + ec.message());
  return acceptor_.local_endpoint();
}

void Server::start() {
  asio::co_spawn(io_, accept_loop(), asio::detached);
  asio::co_spawn(io_, deadline_sweeper(), asio::detached);
}

void Server::arm(Watch& watch) {
  if (watch.is_linked()) watch.unlink();
  watch.deadline = coarse_steady_now() + limits_.idle_timeout_ms; // armed three times a request
  watched_.push_back(watch);
}

asio::awaitable<void> Server::deadline_sweeper() {
  // Checks a few times per idle timeout: a phase lasts at most ~1.25 x the timeout.
  const auto period = std::max<std::chrono::milliseconds>(limits_.idle_timeout_ms / 4, std::chrono::milliseconds(50));
  while (!stopping_) {
    sweeper_.expires_after(period);
    auto [ec] = co_await sweeper_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    const auto now = coarse_steady_now();
    while (!watched_.empty() && watched_.front().deadline <= now) {
      Watch& watch = watched_.front();
      watch.unlink();
      watch.expired = true;
      // Cancel what is pending and shut the socket, so that an operation started later (the
      // next step of a composed write, say) fails at once too.
      boost::system::error_code ignored;
      watch.socket->cancel(ignored);
      watch.socket->shutdown(tcp::socket::shutdown_both, ignored);
    }
  }
}

void Server::stop() {
  stopping_ = true;
  sweeper_.cancel();
  boost::system::error_code ec;
  acceptor_.close(ec);
}

asio::awaitable<void> Server::accept_loop() {
  while (!stopping_) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted) co_return;
      // EMFILE and friends: count, back off briefly so we do not spin, keep serving.
      rejected_.with({"accept_error"}).inc();
      spdlog::warn("accept failed: {}", ec.message());
      asio::steady_timer pause(io_, std::chrono::milliseconds(10));
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (open_connections_ >= limits_.max_connections) {
      rejected_.with({"connection_limit"}).inc();
      asio::co_spawn(io_, reject_connection(std::move(socket)), asio::detached);
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(io_, session(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> Server::reject_connection(tcp::socket socket) {
  static const std::string reply =
      "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
      "connection: close\r\ncontent-length: 55\r\n\r\n"
      "{\"error\":\"server.limits.max_connections reached; retry\"}";
  beast::tcp_stream stream(std::move(socket));
  stream.expires_after(std::chrono::seconds(1));
  co_await asio::async_write(stream, asio::buffer(reply), asio::as_tuple(asio::use_awaitable));
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

namespace {
// Bytes read at once while idle: a whole small request (the digits request is 338 bytes) in
// one read, and all that an idle connection keeps of its buffer.
constexpr std::size_t kIdleReadBytes = 512;

// A parser is made for each request and dropped before the handler runs (an idle connection
// holds none); its block is kept for the next request on the thread.
struct RequestParser final : bhttp::request_parser<AppendStringBody>, Recycled<RequestParser> {};

// Reads a body of known length straight into the request's string: the kernel's copy is the
// only one, in reads as large as what remains. Beast's parser reads 64 KiB at a time into its
// buffer and copies each piece into the body; on a 1.3 MB request that copy was 13 % of the
// gateway's CPU, and the small reads a further share of its system time.
// `body` already has the body's length (from BodyRecycler::take).
asio::awaitable<boost::system::error_code> read_sized_body(tcp::socket& socket, beast::flat_buffer& buffer,
                                                           std::string& body) {
  const std::size_t length = body.size();
  const std::size_t buffered = std::min(buffer.size(), length);
  asio::buffer_copy(asio::buffer(body.data(), buffered), buffer.data());
  buffer.consume(buffered);
  if (buffered == length) co_return boost::system::error_code{};
  auto [ec, n] = co_await asio::async_read(socket, asio::buffer(body.data() + buffered, length - buffered),
                                           TransferAll{}, asio::as_tuple(asio::use_awaitable));
  (void)n;
  co_return ec;
}

// True when the request's Transfer-Encoding fields, all together, name chunked and nothing else:
// Beast takes "gzip, chunked" as chunked and would hand the handler a still-compressed body.
bool plain_chunked(const Request& head) {
  std::size_t codings = 0;
  bool chunked = false;
  for (auto [it, end] = head.equal_range(bhttp::field::transfer_encoding); it != end; ++it)
    for (const auto coding : bhttp::token_list{it->value()}) {
      ++codings;
      chunked = beast::iequals(coding, "chunked");
    }
  return codings == 1 && chunked;
}

// Reads a chunked body through `parser`, growing the body's string only within `reservation`:
// before each put() the string has room for all that is buffered, so the parser's appends never
// reallocate past what the budget granted. Sets `over_budget` (and returns an error) when the
// budget refuses to grow.
asio::awaitable<boost::system::error_code> read_chunked_body(tcp::socket& socket, beast::flat_buffer& buffer,
                                                             RequestParser& parser,
                                                             BodyBudget::Reservation& reservation,
                                                             std::size_t max_body_bytes, bool& over_budget) {
  constexpr auto body_done = [](const auto& p) { return p.is_done(); };
  std::string& body = parser.get().body();
  for (;;) {
    if (buffer.size() > 0) {
      const std::size_t needed = body.size() + buffer.size();
      if (needed > body.capacity()) {
        // Geometric growth (no quadratic copying), but only as far as the budget grants.
        const std::size_t wanted = std::max(needed, std::min(2 * body.capacity(), max_body_bytes));
        if (!reservation.grow_to(wanted) && !reservation.grow_to(needed)) {
          over_budget = true;
          co_return bhttp::error::body_limit;
        }
        // A fresh string gets exactly the capacity asked for; reserve() on this one may double it.
        std::string grown;
        grown.reserve(reservation.bytes());
        grown.append(body);
        body.swap(grown);
      }
      const boost::system::error_code ec = parse_step(buffer, parser, body_done);
      if (ec != bhttp::error::need_more) co_return ec;
    }
    auto [read_ec, n] =
        co_await socket.async_read_some(read_space(buffer), asio::as_tuple(asio::use_awaitable));
    if (read_ec) co_return parse_end(read_ec, parser, body_done);
    buffer.commit(n);
  }
}

// Writes an error reply, then, because the client may still be sending its body, half-closes
// and drains a bounded amount for a bounded time: closing with unread data makes the kernel
// send RST, and the client might never read the reply.
// Takes the connection's socket over: it is closed when this returns.
asio::awaitable<void> reply_and_linger(tcp::socket& socket, const Reply& reply) {
  beast::tcp_stream stream(std::move(socket));
  const std::string head = response_head(reply, false);
  std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(reply.body)};
  stream.expires_after(std::chrono::seconds(5));
  co_await asio::async_write(stream, buffers, asio::as_tuple(asio::use_awaitable));
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.expires_after(std::chrono::seconds(1));
  std::array<char, 16384> sink{};
  std::size_t drained = 0;
  while (drained < (64u << 20)) {
    auto [read_ec, n] = co_await stream.async_read_some(asio::buffer(sink), asio::as_tuple(asio::use_awaitable));
    if (read_ec) break;
    drained += n;
  }
}
} // namespace

asio::awaitable<void> Server::session(tcp::socket socket) {
  ++open_connections_;
  connections_accepted_.inc();
  connections_gauge_.inc();
  Watch watch;
  watch.socket = &socket;
  boost::system::error_code mode_ec;
  socket.non_blocking(true, mode_ec);  // for write_now(); asynchronous operations do not mind
  beast::flat_buffer buffer;
  std::unique_ptr<RequestParser> parser;
  // Over server.limits.max_inflight_body_bytes: a fast 503, and the connection is closed.
  const auto budget_refusal = [this] {
    rejected_.with({"body_budget"}).inc();
    Reply reply = json_response(503, v2::encode_error("server.limits.max_inflight_body_bytes reached: " +
                                                      std::to_string(body_budget_.in_flight_bytes()) +
                                                      " of " + std::to_string(body_budget_.limit_bytes()) +
                                                      " bytes are held by request bodies in flight; retry"));
    reply.set("Retry-After", "1");
    return reply;
  };
  for (;;) {
    boost::system::error_code read_ec;
    if (buffer.size() == 0) {
      // Idle between requests, a connection holds no parser and only a small buffer: with
      // thousands of keep-alive connections open, that is most of their memory. Reading into
      // it (rather than waiting for readability) costs no extra system call per request.
      if (buffer.capacity() > kIdleReadBytes) buffer.shrink_to_fit();
      arm(watch);
      auto [idle_ec, n] = co_await socket.async_read_some(buffer.prepare(kIdleReadBytes), asio::as_tuple(asio::use_awaitable));
      if (idle_ec || watch.expired || stopping_) break;  // closed, idle too long, or shutting down
      buffer.commit(n);
    }
    arm(watch);  // the whole request within the idle timeout
    std::string sized_body;  // a body of known length, read past the parser
    // Declared before the body it covers: released after it, on every way out of this request.
    BodyBudget::Reservation reservation = body_budget_.open();
    std::optional<Reply> refusal; // refused before (or while) its body is read
    parser = std::make_unique<RequestParser>();
    parser->body_limit(limits_.max_body_bytes);
    parser->header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
    // The idle read has usually fetched the whole head: one put(), no further read, and no
    // parse_buffered() frame.
    constexpr auto head_done = [](const auto& p) { return p.is_header_done(); };
    read_ec = parse_step(buffer, *parser, head_done);
    if (read_ec == bhttp::error::need_more)
      read_ec = co_await parse_buffered(socket, buffer, *parser, head_done);
    if (!read_ec) {
      const auto& head = parser->get();
      const auto length = parser->content_length(); // the parser has refused one over max_body_bytes
      if (head.count(bhttp::field::transfer_encoding) > 0 && !plain_chunked(head)) {
        rejected_.with({"unsupported_transfer_encoding"}).inc();
        refusal = json_response(501, v2::encode_error("Transfer-Encoding \"" +
                                                      std::string(head[bhttp::field::transfer_encoding]) +
                                                      "\" is not supported; send the body as is or chunked"));
      } else if (length && !parser->is_done() && !reservation.grow_to(static_cast<std::size_t>(*length))) {
        refusal = budget_refusal(); // before a byte of the body is read or allocated
      } else if (beast::iequals(head[bhttp::field::expect], "100-continue")) {
        // Clients that ask (curl does, for bodies over 1 KiB) wait a second for this otherwise.
        static constexpr std::string_view go_on = "HTTP/1.1 100 Continue\r\n\r\n";
        std::tie(read_ec, std::ignore) = co_await asio::async_write(
            socket, asio::buffer(go_on.data(), go_on.size()), asio::as_tuple(asio::use_awaitable));
      }
      if (refusal || read_ec || parser->is_done()) {
        // nothing (more) to read
      } else if (length) {
        // A recycled string counts whole, so take() reuses one only within what the budget grants.
        sized_body = bodies_.take(static_cast<std::size_t>(*length),
                                  body_budget_.grantable_bytes(reservation.bytes()));
        (void)reservation.grow_to(sized_body.capacity());
        read_ec = co_await read_sized_body(socket, buffer, sized_body);
      } else { // chunked
        bool over_budget = false;
        read_ec = co_await read_chunked_body(socket, buffer, *parser, reservation, limits_.max_body_bytes,
                                             over_budget);
        if (over_budget) refusal = budget_refusal();
      }
    }
    if (read_ec || watch.expired || refusal) {
      Reply error_response;
      bool reply = true;
      if (watch.expired) {
        rejected_.with({"read_timeout"}).inc();
        reply = false;
      } else if (refusal) {
        error_response = std::move(*refusal);
      } else if (read_ec == bhttp::error::body_limit) {
        rejected_.with({"body_too_large"}).inc();
        error_response = json_response(413, v2::encode_error(
            "request body exceeds server.limits.max_body_bytes (" +
            std::to_string(limits_.max_body_bytes) + " bytes)"));
      } else if (read_ec == bhttp::error::header_limit) {
        rejected_.with({"header_too_large"}).inc();
        error_response = json_response(431, v2::encode_error(
            "request headers exceed server.limits.max_header_bytes (" +
            std::to_string(limits_.max_header_bytes) + " bytes)"));
      } else if (read_ec == bhttp::error::end_of_stream || read_ec == asio::error::connection_reset ||
                 read_ec == asio::error::eof || read_ec == asio::error::operation_aborted) {
        reply = false;
      } else {
        rejected_.with({"bad_request"}).inc();
        error_response = json_response(400, v2::encode_error("malformed HTTP request: " + read_ec.message()));
      }
      if (reply) {
        watch.unlink();
        // The reply needs no body: give its memory and its share of the budget back before the
        // linger, which may take seconds.
        parser.reset();
        sized_body = std::string();
        reservation.release();
        co_await reply_and_linger(socket, error_response);
      }
      break;
    }
    Request request = parser->release();
    parser.reset();
    if (!sized_body.empty()) request.body() = std::move(sized_body);
    watch.unlink();  // the handler has the request's own deadline
    Reply reply = co_await handler_(request);
    const bool keep_alive = request.keep_alive() && !stopping_ && request.version() >= 11;
    const ResponseHead head(reply, keep_alive);
    std::array<asio::const_buffer, ResponseHead::kBuffers + 1> buffers;
    std::copy(head.buffers().begin(), head.buffers().end(), buffers.begin());
    buffers.back() = asio::buffer(reply.body);
    // HEAD: the length of the body a GET would get, and no body.
    std::size_t buffer_count = request.method() == bhttp::verb::head ? buffers.size() - 1 : buffers.size();
    arm(watch);  // a client too slow to read its reply is dropped like an idle one
    beast::buffers_suffix<std::span<const asio::const_buffer>> unsent(
        std::span<const asio::const_buffer>(buffers.data(), buffer_count));
    boost::system::error_code write_ec;
    unsent.consume(write_now(socket, unsent, write_ec));
    if (!write_ec && beast::buffer_bytes(unsent) > 0)
      std::tie(write_ec, std::ignore) =
          co_await asio::async_write(socket, unsent, TransferAll{}, asio::as_tuple(asio::use_awaitable));
    if (watch.expired) rejected_.with({"write_timeout"}).inc();
    if (reply.after_sent) reply.after_sent(request);
    bodies_.give_back(std::move(request.body()));  // kept only if large and within the bounds
    if (write_ec || watch.expired || !keep_alive) break;
  }
  watch.unlink();
  boost::system::error_code ec;
  socket.shutdown(tcp::socket::shutdown_send, ec);
  --open_connections_;
  connections_gauge_.dec();
}

} // namespace tandem::http
