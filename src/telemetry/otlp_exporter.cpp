#include "telemetry/otlp_exporter.hpp"

#include "telemetry/otlp_json.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <iterator>
#include <optional>

namespace tandem::telemetry {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto destructor_grace = std::chrono::milliseconds(200);
// OTLP answers are tiny (an optional partial-success message); anything bigger is not ours.
constexpr std::uint64_t response_body_max = std::uint64_t{64} * 1024;
constexpr int retries_max = 10; // keeps the worst case of one batch's retry loop small
constexpr auto grace_max = std::chrono::milliseconds(std::chrono::hours(1));

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

Error url_error(std::string_view url, std::string_view why) {
  return make_error(ErrorCode::invalid_request, "otlp url \"" + std::string(url) + "\": " + std::string(why));
}

} // namespace

struct OtlpExporter::Io {
  asio::io_context context;
  tcp::resolver resolver{context};
  std::optional<beast::tcp_stream> stream; // empty: not connected
  asio::steady_timer timer{context};
  beast::flat_buffer buffer;
  bool timed_out = false;

  /// Completes whatever is in flight with operation_aborted; the attempt then drops the
  /// connection. Runs on the exporter thread (as a handler of `context`).
  void abort_operations() {
    resolver.cancel();
    if (stream) {
      beast::error_code ignored;
      stream->socket().close(ignored);
    }
  }
};

struct OtlpExporter::Attempt {
  enum class Outcome { exported, retry, drop } outcome = Outcome::retry;
  int status = 0; // HTTP status; 0 when the transport failed
  std::string error;
};

Result<std::unique_ptr<OtlpExporter>> OtlpExporter::create(Options options) {
  const std::string& url = options.url;
  const std::string lowered = lowercase(url);
  if (lowered.starts_with("https://")) {
    return url_error(url, "https is not supported; export to a collector over http://");
  }
  if (!lowered.starts_with("http://")) return url_error(url, "must start with http://");
  const std::string_view rest = std::string_view(url).substr(7);
  const std::size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  Target target;
  target.path = slash == std::string_view::npos ? "/v1/traces" : std::string(rest.substr(slash));
  target.host_header = std::string(authority);
  std::string_view port;
  if (authority.starts_with('[')) { // IPv6 literal: [::1]:4318
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return url_error(url, "unterminated [ in the host");
    target.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return url_error(url, "expected :PORT after ]");
      port = after.substr(1);
      if (port.empty()) return url_error(url, "empty port");
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    target.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return url_error(url, "empty port");
    }
  }
  if (target.host.empty()) return url_error(url, "no host");
  if (target.host.find('@') != std::string::npos)
    return url_error(url, "credentials in the URL are not supported");
  if (port.empty()) {
    target.port = "80";
  } else {
    unsigned number = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (ec != std::errc() || end != port.data() + port.size() || number == 0 || number > 65535) {
      return url_error(url, "port must be 1-65535");
    }
    target.port = std::string(port);
  }
  if (options.queue_max == 0) return make_error(ErrorCode::invalid_request, "otlp queue_max must be > 0");
  if (options.batch_max == 0) return make_error(ErrorCode::invalid_request, "otlp batch_max must be > 0");
  if (options.flush_interval_ms <= 0) {
    return make_error(ErrorCode::invalid_request, "otlp flush_interval_ms must be > 0");
  }
  if (options.timeout_ms <= 0) return make_error(ErrorCode::invalid_request, "otlp timeout_ms must be > 0");
  if (options.max_retries < 0 || options.max_retries > retries_max) {
    return make_error(ErrorCode::invalid_request,
                      "otlp max_retries must be 0-" + std::to_string(retries_max));
  }
  if (options.retry_backoff_ms < 0) {
    return make_error(ErrorCode::invalid_request, "otlp retry_backoff_ms must be >= 0");
  }
  // A batch can never be larger than the queue; clamping keeps "a full batch wakes the
  // exporter" true for small queues.
  options.batch_max = std::min(options.batch_max, options.queue_max);
  std::unique_ptr<OtlpExporter> exporter(new OtlpExporter(std::move(options), std::move(target)));
  exporter->thread_ = std::thread([raw = exporter.get()] { raw->run(); });
  return exporter;
}

OtlpExporter::OtlpExporter(Options options, Target target) :
    options_(std::move(options)), target_(std::move(target)), io_(std::make_unique<Io>()) {}

OtlpExporter::~OtlpExporter() {
  shutdown(destructor_grace);
}

void OtlpExporter::submit(Span span) {
  spans_submitted_.fetch_add(1, std::memory_order_relaxed);
  bool batch_ready = false;
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() >= options_.queue_max) {
      spans_dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_.push_back(std::move(span));
    queue_depth_.store(queue_.size(), std::memory_order_relaxed);
    // Wake only on the crossing: an exporter that is busy re-checks the size when it is done.
    batch_ready = queue_.size() == options_.batch_max;
  }
  if (batch_ready) wake_.notify_one();
}

void OtlpExporter::shutdown(std::chrono::milliseconds grace) {
  {
    std::unique_lock lock(mutex_);
    if (!stopping_) {
      stopping_ = true;
      // Clamped so that a "forever" grace cannot overflow the clock arithmetic.
      stop_deadline_ = Clock::now() + std::clamp(grace, std::chrono::milliseconds(0), grace_max);
    }
    wake_.notify_all();
    if (!finished_cv_.wait_until(lock, stop_deadline_, [this] { return finished_; })) {
      abort_.store(true);
      wake_.notify_all(); // a retry backoff
      // The Io is the exporter thread's; a posted handler runs there, during the attempt in
      // flight (or at the start of the next one, which then sees abort_).
      asio::post(io_->context, [io = io_.get()] { io->abort_operations(); });
    }
  }
  std::lock_guard join_lock(join_mutex_);
  if (thread_.joinable()) thread_.join();
}

Clock::time_point OtlpExporter::attempt_deadline() {
  const auto deadline = Clock::now() + std::chrono::milliseconds(options_.timeout_ms);
  std::lock_guard lock(mutex_);
  return std::min(deadline, stop_deadline_);
}

bool OtlpExporter::past_stop_deadline() {
  std::lock_guard lock(mutex_);
  return Clock::now() >= stop_deadline_;
}

void OtlpExporter::run() {
  const auto flush_interval = std::chrono::milliseconds(options_.flush_interval_ms);
  std::vector<Span> batch;
  batch.reserve(options_.batch_max);
  std::unique_lock lock(mutex_);
  auto next_flush = Clock::now() + flush_interval;
  while (!abort_.load()) {
    wake_.wait_until(lock, next_flush,
                     [this] { return stopping_ || abort_.load() || queue_.size() >= options_.batch_max; });
    if (abort_.load()) break;
    if (stopping_ && Clock::now() >= stop_deadline_) break;
    if (queue_.empty()) {
      if (stopping_) break;
      next_flush = Clock::now() + flush_interval;
      continue;
    }
    // Here a batch is full, the flush interval has passed, or shutdown wants everything sent.
    const std::size_t count = std::min(queue_.size(), options_.batch_max);
    std::move(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(count), std::back_inserter(batch));
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(count));
    queue_depth_.store(queue_.size(), std::memory_order_relaxed);
    lock.unlock();
    export_batch(batch);
    batch.clear();
    lock.lock();
    if (queue_.size() < options_.batch_max) next_flush = Clock::now() + flush_interval;
  }
  // Whatever is left was not sent in time: count it, so submitted = exported + dropped + failed.
  spans_failed_.fetch_add(queue_.size(), std::memory_order_relaxed);
  queue_.clear();
  queue_depth_.store(0, std::memory_order_relaxed);
  {
    // Drop the connection now, on the thread that owns it.
    beast::error_code ignored;
    if (io_->stream) io_->stream->socket().close(ignored);
    io_->stream.reset();
  }
  finished_ = true;
  finished_cv_.notify_all();
}

void OtlpExporter::export_batch(const std::vector<Span>& batch) {
  const std::string body = encode_otlp_json(options_.service_name, batch, options_.service_instance);
  auto backoff = std::chrono::milliseconds(options_.retry_backoff_ms);
  for (int attempt = 0;; ++attempt) {
    if (abort_.load() || past_stop_deadline()) break;
    export_requests_.fetch_add(1, std::memory_order_relaxed);
    const Attempt result = post_once(body);
    if (result.outcome == Attempt::Outcome::exported) {
      spans_exported_.fetch_add(batch.size(), std::memory_order_relaxed);
      return;
    }
    export_failures_.fetch_add(1, std::memory_order_relaxed);
    if (result.outcome == Attempt::Outcome::drop || attempt >= options_.max_retries) break;
    std::unique_lock lock(mutex_);
    const auto resume = std::min(Clock::now() + backoff, stop_deadline_);
    wake_.wait_until(lock, resume, [this] { return abort_.load(); });
    backoff *= 2;
  }
  spans_failed_.fetch_add(batch.size(), std::memory_order_relaxed);
}

OtlpExporter::Attempt OtlpExporter::post_once(const std::string& body) {
  Io& io = *io_;
  Attempt result;
  io.timed_out = false;
  io.context.restart();
  io.timer.expires_at(attempt_deadline());
  io.timer.async_wait([&io](beast::error_code ec) {
    if (ec) return; // cancelled: the attempt finished first
    io.timed_out = true;
    io.abort_operations();
  });

  auto fail = [&io](Attempt& out, std::string_view step, const beast::error_code& ec) {
    out.outcome = Attempt::Outcome::retry;
    out.error = std::string(step) + ": " + (io.timed_out ? std::string("timed out") : ec.message());
    beast::error_code ignored;
    if (io.stream) io.stream->socket().close(ignored);
    io.stream.reset();
    io.buffer.clear();
  };

  auto attempt = [&]() -> asio::awaitable<void> {
    const auto use = asio::as_tuple(asio::use_awaitable);
    http::request<http::string_body> request{http::verb::post, target_.path, 11};
    request.set(http::field::host, target_.host_header);
    request.set(http::field::content_type, "application/json");
    request.set(http::field::user_agent, "tandem/" TANDEM_VERSION);
    request.keep_alive(true);
    request.body() = body;
    request.prepare_payload();
    // A kept-alive connection may have been closed by the collector while idle; that shows up
    // as an error before any answer, and deserves one fresh connection, not a retry backoff.
    for (int round = 0; round < 2; ++round) {
      const bool reused = io.stream.has_value();
      if (abort_.load()) co_return fail(result, "aborted", asio::error::operation_aborted);
      if (!io.stream) {
        auto [resolve_ec, endpoints] = co_await io.resolver.async_resolve(target_.host, target_.port, use);
        if (resolve_ec) co_return fail(result, "resolve", resolve_ec);
        if (abort_.load()) co_return fail(result, "aborted", asio::error::operation_aborted);
        io.stream.emplace(io.context);
        auto [connect_ec, endpoint] = co_await io.stream->async_connect(endpoints, use);
        if (connect_ec) co_return fail(result, "connect", connect_ec);
        io.buffer.clear();
      }
      if (abort_.load()) co_return fail(result, "aborted", asio::error::operation_aborted);
      auto [write_ec, written] = co_await http::async_write(*io.stream, request, use);
      if (write_ec) {
        fail(result, "write", write_ec);
        if (reused && !io.timed_out && !abort_.load()) continue;
        co_return;
      }
      http::response_parser<http::string_body> parser;
      parser.body_limit(response_body_max);
      auto [read_ec, read] = co_await http::async_read(*io.stream, io.buffer, parser, use);
      if (read_ec) {
        fail(result, "read", read_ec);
        const bool closed_idle = read_ec == http::error::end_of_stream || read_ec == asio::error::eof ||
                                 read_ec == asio::error::connection_reset;
        if (reused && closed_idle && !io.timed_out && !abort_.load()) continue;
        co_return;
      }
      const auto& response = parser.get();
      result.status = static_cast<int>(response.result_int());
      if (!response.keep_alive()) {
        beast::error_code ignored;
        io.stream->socket().close(ignored);
        io.stream.reset();
      }
      if (result.status >= 200 && result.status < 300) {
        result.outcome = Attempt::Outcome::exported;
      } else if (result.status == 429 || result.status >= 500) {
        result.outcome = Attempt::Outcome::retry; // the collector asks us to come back later
        result.error = "HTTP " + std::to_string(result.status);
      } else {
        result.outcome = Attempt::Outcome::drop; // a malformed request stays malformed
        result.error = "HTTP " + std::to_string(result.status);
      }
      co_return;
    }
  };

  asio::co_spawn(io.context, attempt(), [&io](const std::exception_ptr&) { io.timer.cancel(); });
  io.context.run();
  return result;
}

} // namespace tandem::telemetry
