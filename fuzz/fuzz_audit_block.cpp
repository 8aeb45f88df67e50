// The audit block reader: the records JSON of one stored block.
#include "state/audit_blocks.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto records = tandem::registry::parse_audit_block_json(json);
  (void)records;
  return 0;
}
