#pragma once
// Splits /v2/models/{name}[/versions/{version}][/ready|/infer] without allocating.
#include <optional>
#include <string_view>

namespace tandem::v2 {

enum class ModelAction { metadata, ready, infer };

struct ModelPath {
  std::string_view name;
  std::string_view version;  // empty when not given
  ModelAction action = ModelAction::metadata;
};

/// `target` without the query string. nullopt when it is not a model path.
std::optional<ModelPath> parse_model_path(std::string_view target);

/// Drops "?query" from a request target.
inline std::string_view strip_query(std::string_view target) {
  auto q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

} // namespace tandem::v2
