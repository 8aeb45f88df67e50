#include "support/otlp_receiver.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace tandem::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

struct OtlpReceiver::State {
  mutable std::mutex mutex;
  mutable std::condition_variable changed;
  std::vector<Request> requests;
  std::vector<ReceivedSpan> spans;
  std::size_t connections = 0;
  std::size_t malformed = 0;
  int fail_remaining = 0;
  int fail_status = 503;
  bool close_after_each = false;
};

namespace {

constexpr std::uint64_t body_max = std::uint64_t{64} * 1024 * 1024;

std::string service_name_of(const json::object& resource_spans) {
  const auto* resource = resource_spans.if_contains("resource");
  if (!resource || !resource->is_object()) return {};
  const auto* attributes = resource->as_object().if_contains("attributes");
  if (!attributes || !attributes->is_array()) return {};
  for (const auto& attribute : attributes->as_array()) {
    if (!attribute.is_object()) continue;
    const auto& kv = attribute.as_object();
    const auto* key = kv.if_contains("key");
    if (!key || !key->is_string() || key->as_string() != "service.name") continue;
    const auto* value = kv.if_contains("value");
    if (!value || !value->is_object()) return {};
    const auto* text = value->as_object().if_contains("stringValue");
    if (text && text->is_string()) return std::string(text->as_string());
  }
  return {};
}

/// The spans of one ExportTraceServiceRequest; false when it does not have that shape.
bool parse_spans(const std::string& body, std::vector<OtlpReceiver::ReceivedSpan>& out) {
  boost::system::error_code ec;
  json::value document = json::parse(body, ec);
  if (ec || !document.is_object()) return false;
  const auto* resource_spans = document.as_object().if_contains("resourceSpans");
  if (!resource_spans || !resource_spans->is_array()) return false;
  for (const auto& entry : resource_spans->as_array()) {
    if (!entry.is_object()) return false;
    const std::string service = service_name_of(entry.as_object());
    const auto* scope_spans = entry.as_object().if_contains("scopeSpans");
    if (!scope_spans || !scope_spans->is_array()) return false;
    for (const auto& scope : scope_spans->as_array()) {
      if (!scope.is_object()) return false;
      const auto* spans = scope.as_object().if_contains("spans");
      if (!spans || !spans->is_array()) return false;
      for (const auto& span : spans->as_array()) {
        if (!span.is_object()) return false;
        out.push_back({service, span.as_object()});
      }
    }
  }
  return true;
}

asio::awaitable<void> serve_connection(tcp::socket socket, std::shared_ptr<OtlpReceiver::State> state) {
  const auto use = asio::as_tuple(asio::use_awaitable);
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(body_max);
    auto [read_ec, read] = co_await http::async_read(socket, buffer, parser, use);
    if (read_ec) co_return;
    auto& request = parser.get();

    OtlpReceiver::Request record;
    record.target = std::string(request.target());
    record.content_type = std::string(request[http::field::content_type]);
    record.body = std::move(request.body());
    std::vector<OtlpReceiver::ReceivedSpan> spans;
    const bool parsed = parse_spans(record.body, spans);
    record.span_count = spans.size();
    bool close = false;
    {
      // Recorded before answering: once the exporter sees the answer, the test sees the spans.
      std::lock_guard lock(state->mutex);
      if (state->fail_remaining > 0) {
        --state->fail_remaining;
        record.status = state->fail_status;
      } else {
        record.status = 200;
        for (auto& span : spans) state->spans.push_back(std::move(span));
      }
      if (!parsed) ++state->malformed;
      close = state->close_after_each || !request.keep_alive();
      state->requests.push_back(record);
    }
    state->changed.notify_all();

    http::response<http::string_body> response{static_cast<http::status>(record.status), request.version()};
    response.set(http::field::content_type, "application/json");
    response.body() = record.status == 200 ? "{}" : R"({"message":"failing on purpose"})";
    response.keep_alive(!close);
    response.prepare_payload();
    auto [write_ec, written] = co_await http::async_write(socket, response, use);
    if (write_ec || close) {
      beast::error_code ignored;
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      co_return;
    }
  }
}

asio::awaitable<void> accept_loop(tcp::acceptor acceptor, std::shared_ptr<OtlpReceiver::State> state) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    {
      std::lock_guard lock(state->mutex);
      ++state->connections;
    }
    asio::co_spawn(acceptor.get_executor(), serve_connection(std::move(socket), state), asio::detached);
  }
}

} // namespace

OtlpReceiver::OtlpReceiver() : state_(std::make_shared<State>()), io_(std::make_unique<asio::io_context>()) {
  tcp::acceptor acceptor(*io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  port_ = acceptor.local_endpoint().port();
  asio::co_spawn(*io_, accept_loop(std::move(acceptor), state_), asio::detached);
  thread_ = std::thread([io = io_.get()] { io->run(); });
}

OtlpReceiver::~OtlpReceiver() {
  stop();
}

void OtlpReceiver::stop() {
  if (!io_) return;
  io_->stop();
  if (thread_.joinable()) thread_.join();
  // The acceptor and the sockets live in the coroutine frames, which go with the io_context.
  io_.reset();
}

std::string OtlpReceiver::url() const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/v1/traces";
}

std::vector<std::string> OtlpReceiver::bodies() const {
  std::lock_guard lock(state_->mutex);
  std::vector<std::string> out;
  out.reserve(state_->requests.size());
  for (const auto& request : state_->requests) out.push_back(request.body);
  return out;
}

std::vector<OtlpReceiver::Request> OtlpReceiver::requests() const {
  std::lock_guard lock(state_->mutex);
  return state_->requests;
}

std::vector<json::object> OtlpReceiver::spans() const {
  std::lock_guard lock(state_->mutex);
  std::vector<json::object> out;
  out.reserve(state_->spans.size());
  for (const auto& received : state_->spans) out.push_back(received.span);
  return out;
}

std::vector<OtlpReceiver::ReceivedSpan> OtlpReceiver::received_spans() const {
  std::lock_guard lock(state_->mutex);
  return state_->spans;
}

std::size_t OtlpReceiver::span_count() const {
  std::lock_guard lock(state_->mutex);
  return state_->spans.size();
}

std::size_t OtlpReceiver::connections() const {
  std::lock_guard lock(state_->mutex);
  return state_->connections;
}

std::size_t OtlpReceiver::malformed_bodies() const {
  std::lock_guard lock(state_->mutex);
  return state_->malformed;
}

void OtlpReceiver::fail_next(int n, int status) {
  std::lock_guard lock(state_->mutex);
  state_->fail_remaining = n;
  state_->fail_status = status;
}

void OtlpReceiver::close_after_each(bool close) {
  std::lock_guard lock(state_->mutex);
  state_->close_after_each = close;
}

bool OtlpReceiver::wait_for_spans(std::size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(state_->mutex);
  return state_->changed.wait_for(lock, timeout, [&] { return state_->spans.size() >= count; });
}

} // namespace tandem::testing
