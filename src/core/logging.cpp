#include "core/logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <string>

namespace tandem {

bool init_logging(std::string_view role, std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") return false;
  auto logger = spdlog::stderr_logger_st(std::string(role));
  // JSON lines. Call sites keep double quotes and backslashes out of messages (they quote
  // with single quotes and never log raw client bytes), so the pattern stays valid JSON.
  logger->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","role":"%n","pid":%P,"msg":"%v"})",
                      spdlog::pattern_time_type::utc);
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  return true;
}

} // namespace tandem
