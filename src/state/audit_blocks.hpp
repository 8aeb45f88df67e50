#pragma once
// How the audit trail is laid out in the state store. One row per request cost the writer
// 3.2–3.9 µs of CPU per record (a 16-column insert and three index updates); a row that holds a
// block of up to 256 records, in time order, costs about a third of that per record, and stays
// queryable with plain SQL: `records_json` is a JSON array with one array per record, columns
// in the order of kAuditRecordColumns (see docs/observability.md for a json_each example).
#include "base/status.hpp"
#include "state/state_store.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem::registry {

/// The most records one block holds.
constexpr std::size_t kAuditBlockRecordsMax = 256;
/// The most a block's arrival times may spread, so that the blocks holding a given time are
/// found with one bounded index range (a request that took long lands in an older block).
constexpr std::int64_t kAuditBlockSpanMaxMs = 10'000;

/// Column order of a record inside `records_json`.
inline constexpr const char* kAuditRecordColumns[] = {
    "request_id",    "trace_id",    "time_unix_ms", "endpoint",   "model_version", "input_sha256",
    "tier",          "worker",      "status",       "error_code", "attempts",      "queue_ms",
    "cold_start_ms", "upstream_ms", "total_ms",     "cost_usd",      "client_request_id"};
/// Blocks written before client_request_id existed hold one column fewer; they read with it empty.
constexpr std::size_t kAuditRecordColumnsV1 = std::size(kAuditRecordColumns) - 1;

/// One block, ready to store.
struct AuditBlock {
  std::int64_t first_time_unix_ms = 0;
  std::int64_t last_time_unix_ms = 0;
  std::size_t records = 0;
  /// Every endpoint in the block, each between newlines ("\ndigits\nother\n"), so that a query
  /// for one endpoint skips blocks without it by a substring test.
  std::string endpoints;
  /// Which status classes the block holds: bit c for statuses c00..c99 (bit 0 for anything
  /// outside 100..599). A query for failures skips the blocks without any.
  std::int64_t status_classes = 0;
  std::string records_json;
  /// Ids that need an index row of their own to be found: a client's request id (the record's
  /// own id carries its arrival time, which finds its block), or a record id that does not.
  std::vector<std::pair<std::string_view, const AuditRecord*>> indexed_ids;
};

/// The status_classes bit of `status`.
std::int64_t status_class_bit(int status);

/// Cuts `records` (any order) into blocks: sorted by arrival time, ties in the order given,
/// each block at most kAuditBlockRecordsMax records spanning at most kAuditBlockSpanMaxMs.
/// The records must outlive the blocks (indexed_ids points into them).
std::vector<AuditBlock> make_audit_blocks(std::span<const AuditRecord> records);

/// Appends `record` to `out` as one JSON array (no separator). Text that is not valid UTF-8 is
/// stored with U+FFFD in place of the bad bytes; non-finite numbers as null.
void append_audit_record_json(const AuditRecord& record, std::string& out);

/// The records of one block's `records_json`, in stored order; an error naming what is wrong
/// when the text is not a block this code wrote.
Result<std::vector<AuditRecord>> parse_audit_block_json(std::string_view records_json);

/// The arrival time a gateway-made request id carries (its first 12 hex digits), if it is one:
/// 32 lowercase hex digits.
std::optional<std::int64_t> time_in_request_id(std::string_view request_id);

} // namespace tandem::registry
