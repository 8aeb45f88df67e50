#include "base/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace tandem {
namespace {

thread_local std::string_view current_request_id;
thread_local std::string_view current_trace_id;

void append_escaped(spdlog::memory_buf_t& dest, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  for (char c : text) {
    switch (c) {
    case '"': dest.append(std::string_view("\\\"")); break;
    case '\\': dest.append(std::string_view("\\\\")); break;
    case '\n': dest.append(std::string_view("\\n")); break;
    case '\t': dest.append(std::string_view("\\t")); break;
    case '\r': dest.append(std::string_view("\\r")); break;
    default:
      if (static_cast<unsigned char>(c) < 0x20) {
        const char escaped[] = {'\\', 'u', '0', '0', hex[(c >> 4) & 0xF], hex[c & 0xF]};
        dest.append(escaped, escaped + sizeof escaped);
      } else {
        dest.push_back(c);
      }
    }
  }
}

// %C: `,"request_id":"...","trace_id":"..."` while a LogContext is active, else nothing.
class RequestContextFlag final : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override {
    if (!current_request_id.empty()) {
      dest.append(std::string_view(",\"request_id\":\""));
      append_escaped(dest, current_request_id);
      dest.push_back('"');
    }
    if (!current_trace_id.empty()) {
      dest.append(std::string_view(",\"trace_id\":\""));
      append_escaped(dest, current_trace_id);
      dest.push_back('"');
    }
  }
  [[nodiscard]] std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<RequestContextFlag>();
  }
};

// %j: the message, escaped for a JSON string (quotes, backslashes, control characters), so
// every line stays valid JSON whatever a message carries.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    append_escaped(dest, std::string_view(msg.payload.data(), msg.payload.size()));
  }
  [[nodiscard]] std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

} // namespace

bool is_log_level(std::string_view level) {
  return spdlog::level::from_str(std::string(level)) != spdlog::level::off || level == "off";
}

bool init_logging(std::string_view role, std::string_view level) {
  if (!is_log_level(level)) return false;
  auto parsed = spdlog::level::from_str(std::string(level));
  // _mt: background threads (the audit writer, the exporters) log too; lines are rare enough
  // that the sink's mutex costs nothing measurable.
  auto logger = spdlog::stderr_logger_mt(std::string(role));
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<JsonMessageFlag>('j').add_flag<RequestContextFlag>('C').set_pattern(
      R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","role":"%n","pid":%P%C,"msg":"%j"})");
  logger->set_formatter(std::move(formatter));
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  return true;
}

LogContext::LogContext(std::string_view request_id, std::string_view trace_id)
    : saved_request_id_(current_request_id), saved_trace_id_(current_trace_id) {
  current_request_id = request_id;
  current_trace_id = trace_id;
}

LogContext::~LogContext() {
  current_request_id = saved_request_id_;
  current_trace_id = saved_trace_id_;
}

} // namespace tandem
