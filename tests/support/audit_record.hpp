#pragma once
// One audit record with every field set, for the store, writer and block tests.
#include "state/state_store.hpp"

#include <cstdint>
#include <string>

namespace tandem::testing {

inline registry::AuditRecord audit_record(const std::string& id, std::int64_t time_ms,
                                          const std::string& endpoint, int status) {
  registry::AuditRecord r;
  r.request_id = id;
  r.trace_id = std::string(32, 'a');
  r.time_unix_ms = time_ms;
  r.endpoint = endpoint;
  r.model_version = "digits@0123456789ab";
  r.input_sha256 = std::string(64, 'c');
  r.tier = "dedicated";
  r.worker = "w-1";
  r.status = status;
  r.error_code = status >= 400 ? "upstream_error" : "";
  r.attempts = 1;
  r.queue_ms = 0.25;
  r.cold_start_ms = 0;
  r.upstream_ms = 1.5;
  r.total_ms = 2.125;
  r.cost_usd = 1.097e-6;
  return r;
}

} // namespace tandem::testing
