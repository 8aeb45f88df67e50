#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

namespace tandem {

/// Generates request ids (32 lowercase hex digits). Seeded by the caller so tests are
/// repeatable; not thread-safe (one per io thread).
class IdGenerator {
public:
  explicit IdGenerator(std::uint64_t seed) : state_(seed) {}
  /// 32 lowercase hex digits.
  std::string next();
  /// 32 lowercase hex digits, the first 12 the time in Unix milliseconds (as in UUIDv7): ids
  /// sort by creation time, so an index over them grows at its end instead of at random
  /// places (the audit trail's request-id index costs a third as much to maintain).
  std::string next_time_ordered(std::int64_t unix_ms);
  /// Writes `digits` lowercase hex digits (a multiple of 16) to `out`.
  void fill_hex(char* out, std::size_t digits);

private:
  // splitmix64: ids need uniqueness, not unpredictability, and this costs a few instructions.
  std::uint64_t next_u64();
  std::uint64_t state_;
};

/// True if a client-supplied request id is safe to echo and log: 1..128 chars of
/// [A-Za-z0-9._:-]. Anything else is replaced by a generated id.
bool is_acceptable_request_id(std::string_view id);

} // namespace tandem
