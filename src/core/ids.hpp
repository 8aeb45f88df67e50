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
  explicit IdGenerator(std::uint64_t seed) : rng_(seed) {}
  std::string next();

private:
  std::mt19937_64 rng_;
};

/// True if a client-supplied request id is safe to echo and log: 1..128 chars of
/// [A-Za-z0-9._:-]. Anything else is replaced by a generated id.
bool is_acceptable_request_id(std::string_view id);

} // namespace tandem
