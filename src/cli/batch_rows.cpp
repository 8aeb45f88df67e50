// Reading and checking the input of `tandem batch`, and turning its rows into job bodies.
#include "cli/batch_rows.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

namespace tandem::cli::batch {
namespace {

namespace json = boost::json;

constexpr std::uintmax_t max_input_bytes = 1ULL << 30;

const char* kind_of(const json::value& v) {
  switch (v.kind()) {
  case json::kind::array: return "an array";
  case json::kind::string: return "a string";
  case json::kind::null: return "null";
  case json::kind::bool_: return "a boolean";
  case json::kind::object: return "an object";
  default: return "a number";
  }
}

} // namespace

Result<std::string> read_file(const std::filesystem::path& path, std::uintmax_t limit_bytes) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return make_error(ErrorCode::invalid_request, "cannot read " + path.string() + ": " + ec.message());
  if (size > limit_bytes)
    return make_error(ErrorCode::invalid_request, path.string() + " is " + std::to_string(size) +
                                                      " bytes; the limit is " + std::to_string(limit_bytes));
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::invalid_request, "cannot read " + path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t begin = 0;
  while (begin < text.size()) {
    auto end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    auto line = text.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    begin = end + 1;
  }
  return lines;
}

bool is_blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

Result<std::vector<Row>> read_rows(const std::string& input, bool low_priority) {
  auto text = read_file(input, max_input_bytes);
  if (!text) return text.error();
  const auto lines = split_lines(*text);
  std::vector<Row> rows;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (is_blank(lines[i])) continue;
    auto where = [&] { return input + " line " + std::to_string(i + 1) + ": "; };
    boost::system::error_code ec;
    auto value = json::parse(lines[i], ec);
    if (ec) return make_error(ErrorCode::invalid_request, where() + "not JSON (" + ec.message() + ")");
    if (!value.is_object())
      return make_error(ErrorCode::invalid_request,
                        where() + "expected a JSON object, got " + kind_of(value));
    json::object body;
    if (value.as_object().contains("input"))
      body = std::move(value.as_object());
    else
      body["input"] = std::move(value);
    if (low_priority) {
      auto& policy = body["policy"];
      if (policy.is_null()) policy = json::object();
      if (!policy.is_object())
        return make_error(ErrorCode::invalid_request, where() + "\"policy\" is not an object");
      policy.as_object()["lowPriority"] = true;
    }
    rows.push_back({i, json::serialize(body)});
  }
  return rows;
}

} // namespace tandem::cli::batch
