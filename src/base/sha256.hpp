#pragma once
#include <string>
#include <string_view>

namespace tandem {

/// Incremental SHA-256 (OpenSSL). Used for content-addressed model versions.
class Sha256 {
public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view bytes);
  /// Lowercase hex digest; the object must not be updated afterwards.
  std::string hex_digest();

private:
  void* ctx_;
};

std::string sha256_hex(std::string_view bytes);

} // namespace tandem
