#include "state/audit_blocks.hpp"

#include "base/decimal.hpp"
#include "base/json_text.hpp"

#include <boost/json/basic_parser_impl.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

namespace tandem::registry {
namespace {

constexpr std::size_t kColumns = std::size(kAuditRecordColumns);

/// Hex digit values, -1 for anything else.
constexpr std::array<std::int8_t, 256> kHexDigit = [] {
  std::array<std::int8_t, 256> value{};
  value.fill(-1);
  for (std::size_t c = 0; c < 10; ++c) value['0' + c] = static_cast<std::int8_t>(c);
  for (std::size_t c = 0; c < 6; ++c) value['a' + c] = static_cast<std::int8_t>(10 + c);
  return value;
}();

constexpr std::size_t kNumberBound = 32;

char* write_integer(std::int64_t value, char* out) {
  return std::to_chars(out, out + kNumberBound, value).ptr;
}

/// Writes `value` so that it reads back as the same double. Durations are whole nanoseconds in
/// milliseconds: when the value is n / 10^6 exactly, n is written with a decimal point (an
/// integer conversion; the text reads back as the same double, both being the double nearest
/// n / 10^6). Anything else gets the shortest exact text, which costs about ten times as much.
char* write_real(double value, char* out) {
  if (!std::isfinite(value)) {
    static constexpr std::string_view kNull = "null";
    return std::copy(kNull.begin(), kNull.end(), out);
  }
  constexpr double kScale = 1e6;
  if (const double scaled = value * kScale; std::fabs(scaled) < 9e15) {
    const auto n = static_cast<std::int64_t>(std::llround(scaled));
    if (static_cast<double>(n) / kScale == value && (n != 0 || !std::signbit(value))) {
      return write_scaled_decimal(n, 6, true, out);
    }
  }
  return std::to_chars(out, out + kNumberBound, value).ptr;
}

/// Reads records_json with Boost.JSON's tokenizer. Numbers are read again from their own text
/// with std::from_chars: Boost 1.81's parser may round a double off by one unit in the last
/// place, and a stored figure must read back exactly.
class BlockReader {
public:
  static constexpr std::size_t max_object_size = 0;
  static constexpr std::size_t max_array_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_key_size = 0;
  // A bound, not an expectation: ids are at most 128 bytes and the other texts are labels.
  static constexpr std::size_t max_string_size = std::size_t{1} << 20;

  std::vector<AuditRecord> records;
  std::string problem;

  bool on_document_begin(boost::json::error_code&) { return true; }
  bool on_document_end(boost::json::error_code& ec) {
    if (depth_ != 0) return fail(ec, "the block ends inside a record");
    return true;
  }
  bool on_array_begin(boost::json::error_code& ec) {
    if (++depth_ > 2) return fail(ec, "a record holds an array");
    if (depth_ == 2) {
      records.emplace_back();
      column_ = 0;
    }
    return true;
  }
  bool on_array_end(std::size_t, boost::json::error_code& ec) {
    if (depth_ == 2 && column_ != kColumns && column_ != kAuditRecordColumnsV1)
      return fail(ec, "record " + std::to_string(records.size()) + " has " + std::to_string(column_) +
                          " columns, not " + std::to_string(kColumns));
    --depth_;
    return true;
  }
  bool on_object_begin(boost::json::error_code& ec) { return fail(ec, "a block holds an object"); }
  bool on_object_end(std::size_t, boost::json::error_code& ec) { return fail(ec, "a block holds an object"); }
  bool on_key_part(boost::json::string_view, std::size_t, boost::json::error_code& ec) {
    return fail(ec, "a block holds an object");
  }
  bool on_key(boost::json::string_view, std::size_t, boost::json::error_code& ec) {
    return fail(ec, "a block holds an object");
  }
  bool on_string_part(boost::json::string_view s, std::size_t, boost::json::error_code&) {
    text_.append(s.data(), s.size());
    return true;
  }
  bool on_string(boost::json::string_view s, std::size_t, boost::json::error_code& ec) {
    text_.append(s.data(), s.size());
    if (!in_record(ec)) return false;
    std::string* field = text_field();
    if (field == nullptr) return fail(ec, "column " + column_name() + " holds text");
    *field = std::move(text_);
    text_.clear();
    ++column_;
    return true;
  }
  bool on_number_part(boost::json::string_view s, boost::json::error_code&) {
    text_.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t, boost::json::string_view s, boost::json::error_code& ec) {
    return number(s, ec);
  }
  bool on_uint64(std::uint64_t, boost::json::string_view s, boost::json::error_code& ec) {
    return number(s, ec);
  }
  bool on_double(double, boost::json::string_view s, boost::json::error_code& ec) { return number(s, ec); }
  bool on_bool(bool, boost::json::error_code& ec) {
    if (!in_record(ec)) return false;
    return fail(ec, "column " + column_name() + " holds a boolean");
  }
  bool on_null(boost::json::error_code& ec) {
    if (!in_record(ec)) return false;
    double* field = real_field();
    if (field == nullptr) return fail(ec, "column " + column_name() + " holds null");
    *field = std::numeric_limits<double>::quiet_NaN();
    ++column_;
    return true;
  }
  bool on_comment_part(boost::json::string_view, boost::json::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::json::error_code&) { return true; }

private:
  bool fail(boost::json::error_code& ec, std::string what) {
    if (problem.empty()) problem = std::move(what);
    ec = std::make_error_code(std::errc::invalid_argument);
    return false;
  }
  [[nodiscard]] bool in_record(boost::json::error_code& ec) {
    if (depth_ != 2) return fail(ec, "a value outside any record");
    if (column_ >= kColumns)
      return fail(ec, "record " + std::to_string(records.size()) + " has too many columns");
    return true;
  }
  std::string column_name() const {
    return column_ < kColumns ? std::string(kAuditRecordColumns[column_]) : "past the last";
  }
  std::string* text_field() {
    if (depth_ != 2 || records.empty()) return nullptr;
    AuditRecord& r = records.back();
    switch (column_) {
    case 0: return &r.request_id;
    case 1: return &r.trace_id;
    case 3: return &r.endpoint;
    case 4: return &r.model_version;
    case 5: return &r.input_sha256;
    case 6: return &r.tier;
    case 7: return &r.worker;
    case 9: return &r.error_code;
    case 16: return &r.client_request_id;
    default: return nullptr;
    }
  }
  double* real_field() {
    if (depth_ != 2 || records.empty()) return nullptr;
    AuditRecord& r = records.back();
    switch (column_) {
    case 11: return &r.queue_ms;
    case 12: return &r.cold_start_ms;
    case 13: return &r.upstream_ms;
    case 14: return &r.total_ms;
    case 15: return &r.cost_usd;
    default: return nullptr;
    }
  }
  bool number(boost::json::string_view last_part, boost::json::error_code& ec) {
    text_.append(last_part.data(), last_part.size());
    const std::string digits = std::move(text_);
    text_.clear();
    if (!in_record(ec)) return false;
    const char* first = digits.data();
    const char* last = digits.data() + digits.size();
    AuditRecord& r = records.back();
    bool whole = false;
    if (double* field = real_field(); field != nullptr) {
      auto [end, e] = std::from_chars(first, last, *field);
      whole = e == std::errc{} && end == last;
    } else if (column_ == 2) {
      auto [end, e] = std::from_chars(first, last, r.time_unix_ms);
      whole = e == std::errc{} && end == last;
    } else if (column_ == 8 || column_ == 10) {
      int& field = column_ == 8 ? r.status : r.attempts;
      auto [end, e] = std::from_chars(first, last, field);
      whole = e == std::errc{} && end == last;
    } else {
      return fail(ec, "column " + column_name() + " holds a number");
    }
    if (!whole)
      return fail(ec, "column " + column_name() + " holds " + digits + ", not a number of its kind");
    ++column_;
    return true;
  }

  int depth_ = 0;
  std::size_t column_ = 0;
  std::string text_;
};

} // namespace

void append_audit_record_json(const AuditRecord& r, std::string& out) {
  const std::string_view texts[] = {r.request_id, r.trace_id, r.endpoint,   r.model_version,    r.input_sha256,
                                    r.tier,       r.worker,   r.error_code, r.client_request_id};
  std::size_t bound = 2 + kColumns + 8 * kNumberBound; // brackets, commas, numbers
  for (std::string_view text : texts) bound += json_string_bound(text);
  // Written through a pointer into space made once: appending piece by piece cost more than
  // the text itself.
  const std::size_t start = out.size();
  out.resize(start + bound);
  char* p = out.data() + start;
  *p++ = '[';
  p = write_json_string(r.request_id, p);
  *p++ = ',';
  p = write_json_string(r.trace_id, p);
  *p++ = ',';
  p = write_integer(r.time_unix_ms, p);
  *p++ = ',';
  p = write_json_string(r.endpoint, p);
  *p++ = ',';
  p = write_json_string(r.model_version, p);
  *p++ = ',';
  p = write_json_string(r.input_sha256, p);
  *p++ = ',';
  p = write_json_string(r.tier, p);
  *p++ = ',';
  p = write_json_string(r.worker, p);
  *p++ = ',';
  p = write_integer(r.status, p);
  *p++ = ',';
  p = write_json_string(r.error_code, p);
  *p++ = ',';
  p = write_integer(r.attempts, p);
  for (double value : {r.queue_ms, r.cold_start_ms, r.upstream_ms, r.total_ms, r.cost_usd}) {
    *p++ = ',';
    p = write_real(value, p);
  }
  *p++ = ',';
  p = write_json_string(r.client_request_id, p);
  *p++ = ']';
  out.resize(static_cast<std::size_t>(p - out.data()));
}

std::vector<AuditBlock> make_audit_blocks(std::span<const AuditRecord> records) {
  std::vector<std::uint32_t> order(records.size());
  std::iota(order.begin(), order.end(), 0U);
  // Completion order is almost arrival order: a stable sort of nearly sorted input is cheap.
  std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    return records[a].time_unix_ms < records[b].time_unix_ms;
  });
  std::vector<AuditBlock> blocks;
  AuditBlock* block = nullptr;
  std::vector<std::string_view> endpoints; // those of the block being filled
  for (std::uint32_t index : order) {
    const AuditRecord& r = records[index];
    if (block == nullptr || block->records == kAuditBlockRecordsMax ||
        r.time_unix_ms - block->first_time_unix_ms > kAuditBlockSpanMaxMs) {
      if (block != nullptr) block->records_json.push_back(']');
      block = &blocks.emplace_back();
      endpoints.clear();
      block->first_time_unix_ms = r.time_unix_ms;
      block->endpoints = "\n";
      block->records_json.reserve(std::min<std::size_t>(records.size(), kAuditBlockRecordsMax) * 320);
      block->records_json.push_back('[');
    } else {
      block->records_json.push_back(',');
    }
    block->last_time_unix_ms = r.time_unix_ms;
    ++block->records;
    append_audit_record_json(r, block->records_json);
    block->status_classes |= status_class_bit(r.status);
    // Blocks hold few endpoints, and neighbours mostly share one: a look along the short list.
    if (std::find(endpoints.begin(), endpoints.end(), r.endpoint) == endpoints.end()) {
      endpoints.push_back(r.endpoint);
      block->endpoints += r.endpoint;
      block->endpoints += '\n';
    }
    if (time_in_request_id(r.request_id) != r.time_unix_ms) block->indexed_ids.emplace_back(r.request_id, &r);
    if (!r.client_request_id.empty()) block->indexed_ids.emplace_back(r.client_request_id, &r);
  }
  if (block != nullptr) block->records_json.push_back(']');
  return blocks;
}

std::int64_t status_class_bit(int status) {
  return std::int64_t{1} << (status >= 100 && status < 600 ? status / 100 : 0);
}

Result<std::vector<AuditRecord>> parse_audit_block_json(std::string_view records_json) {
  boost::json::basic_parser<BlockReader> parser{boost::json::parse_options{}};
  boost::json::error_code ec;
  parser.write_some(false, records_json.data(), records_json.size(), ec);
  if (ec) {
    std::string what = parser.handler().problem.empty() ? ec.message() : parser.handler().problem;
    return make_error(ErrorCode::internal, "malformed audit block: " + what);
  }
  return std::move(parser.handler().records);
}

std::optional<std::int64_t> time_in_request_id(std::string_view id) {
  // Run on every record written: all 32 characters checked eight at a time (each byte below
  // 0x80, and in '0'-'9' or 'a'-'f', by adding offsets that carry into the byte's top bit only
  // at a range's edges), then the first twelve read as the time.
  if (id.size() != 32) return std::nullopt;
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHighs = 0x8080808080808080ULL;
  for (std::size_t at = 0; at < 32; at += 8) {
    std::uint64_t x = 0;
    std::memcpy(&x, id.data() + at, sizeof x);
    if ((x & kHighs) != 0) return std::nullopt;
    const std::uint64_t digit = (x + kOnes * (0x80 - '0')) & ~(x + kOnes * (0x80 - '9' - 1));
    const std::uint64_t letter = (x + kOnes * (0x80 - 'a')) & ~(x + kOnes * (0x80 - 'f' - 1));
    if (((digit | letter) & kHighs) != kHighs) return std::nullopt;
  }
  std::int64_t time = 0;
  for (std::size_t i = 0; i < 12; ++i) time = time * 16 + kHexDigit[static_cast<unsigned char>(id[i])];
  return time;
}

} // namespace tandem::registry
