#include "protocol/v2_path.hpp"

namespace tandem::v2 {

std::optional<ModelPath> parse_model_path(std::string_view target) {
  constexpr std::string_view prefix = "/v2/models/";
  if (target.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::string_view rest = target.substr(prefix.size());
  ModelPath path;
  auto next_segment = [&rest]() {
    auto slash = rest.find('/');
    std::string_view segment = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    return segment;
  };
  path.name = next_segment();
  if (path.name.empty()) return std::nullopt;
  std::string_view segment = next_segment();
  if (segment == "versions") {
    path.version = next_segment();
    if (path.version.empty()) return std::nullopt;
    segment = next_segment();
  }
  if (segment.empty()) path.action = ModelAction::metadata;
  else if (segment == "ready") path.action = ModelAction::ready;
  else if (segment == "infer") path.action = ModelAction::infer;
  else return std::nullopt;
  if (!rest.empty()) return std::nullopt;
  return path;
}

} // namespace tandem::v2
