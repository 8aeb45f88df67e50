#include "engine/inference.hpp"

namespace tandem::engine {

std::optional<Priority> parse_priority(std::string_view text) {
  if (text == "low") return Priority::low;
  if (text == "normal") return Priority::normal;
  if (text == "high") return Priority::high;
  return std::nullopt;
}

std::string_view to_string(Priority priority) {
  switch (priority) {
  case Priority::low: return "low";
  case Priority::normal: return "normal";
  case Priority::high: return "high";
  }
  return "normal";
}

int InferenceResult::http_status() const {
  if (worker_status > 0) return worker_status;
  return error ? tandem::http_status(error->code) : 500;
}

} // namespace tandem::engine
