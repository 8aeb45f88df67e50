#pragma once
// The admin API for state kept in the store: the model registry (/admin/v1/models,
// /admin/v1/blobs), deployments and the audit trail (/admin/v1/requests). JSON in and out;
// errors are {"error": "..."} naming the field, with the status of their ErrorCode.
//
// Threading and time: runs on the io thread and calls the store synchronously. Every query is
// bounded (a row limit, indexed lookups), so a call costs milliseconds at most; blob uploads
// are bounded by server.limits.max_body_bytes.
#include "base/clock.hpp"
#include "http/types.hpp"
#include "state/model_registry.hpp"
#include "state/state_store.hpp"

#include <optional>
#include <string_view>

namespace tandem::gateway {

class AdminApi {
public:
  AdminApi(registry::StateStore& store, registry::ModelRegistry& models, const Clock& clock);

  /// Serves `request` if its path is one of this API's; nullopt otherwise.
  std::optional<http::Reply> handle(http::Request& request, std::string_view path, std::string_view query);

  /// The largest page /admin/v1/requests returns.
  static constexpr int kMaxLimit = 1000;

private:
  http::Reply models(http::Request& request, std::string_view rest);
  http::Reply push(const http::Request& request);
  http::Reply blob(http::Request& request, std::string_view id);
  http::Reply blob_list();
  http::Reply requests(std::string_view query);
  http::Reply requests_by_client_id(const std::string& client_request_id, const registry::AuditQuery& q);
  http::Reply request_by_id(std::string_view id);
  http::Reply deployments(std::string_view query);

  registry::StateStore& store_;
  registry::ModelRegistry& models_;
  const Clock& clock_;
};

/// The JSON form of a model version and of an audit record (shared with the CLI's tests).
std::string model_version_json(const registry::ModelVersionRecord& record);
std::string audit_record_json(const registry::AuditRecord& record);

/// "2026-11-28T15:04:05.123Z" for a Unix time in milliseconds.
std::string iso8601_utc(std::int64_t unix_ms);
/// A time bound in a query: Unix milliseconds, an RFC 3339 UTC time ("2026-11-28T15:04:05Z"),
/// or a duration ago ("15m", "2h", "7d"). nullopt when it is none of these.
std::optional<std::int64_t> parse_time_bound(std::string_view text, std::int64_t now_unix_ms);

} // namespace tandem::gateway
