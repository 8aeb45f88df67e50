#include "gateway/admin_api.hpp"

#include "base/duration.hpp"
#include "http/error_reply.hpp"
#include "http/query.hpp"

#include <boost/json.hpp>

#include <charconv>
#include <ctime>

namespace tandem::gateway {

namespace json = boost::json;
using http::bhttp::verb;
using http::error_reply;
using http::method_not_allowed;

namespace {

http::Reply json_reply(unsigned status, const json::value& value) {
  return http::json_response(status, json::serialize(value));
}


json::object version_object(const registry::ModelVersionRecord& r) {
  json::object tags;
  for (const auto& [k, v] : r.tags) tags[k] = v;
  return json::object{
      {"name", r.name},
      {"version", r.version},
      {"id", r.digest},
      {"ref", r.name + "@" + r.version},
      {"format", r.format},
      {"artifact", json::object{{"name", r.artifact_name}, {"sha256", r.artifact_sha256}, {"bytes", r.artifact_bytes}}},
      {"manifest_sha256", r.manifest_sha256},
      {"lineage", json::object{{"dataset", json::object{{"name", r.dataset_name}, {"sha256", r.dataset_sha256}}},
                               {"training_code", r.training_code},
                               {"parent", r.parent_version.empty() ? json::value(nullptr) : json::value(r.parent_version)},
                               {"tags", std::move(tags)}}},
      {"created", iso8601_utc(r.created_unix_ms)},
      {"created_unix_ms", r.created_unix_ms},
      {"pushed_by", r.pushed_by},
  };
}

json::object audit_object(const registry::AuditRecord& r) {
  return json::object{
      {"request_id", r.request_id},
      {"trace_id", r.trace_id},
      {"time", iso8601_utc(r.time_unix_ms)},
      {"time_unix_ms", r.time_unix_ms},
      {"endpoint", r.endpoint},
      {"model_version", r.model_version},
      {"input_sha256", r.input_sha256},
      {"tier", r.tier},
      {"worker", r.worker.empty() ? json::value(nullptr) : json::value(r.worker)},
      {"status", r.status},
      {"error", r.error_code.empty() ? json::value(nullptr) : json::value(r.error_code)},
      {"attempts", r.attempts},
      {"duration_ms", json::object{{"queue", r.queue_ms},
                                   {"cold_start", r.cold_start_ms},
                                   {"upstream", r.upstream_ms},
                                   {"total", r.total_ms}}},
      {"cost_usd", r.cost_usd},
      {"client_request_id", r.client_request_id.empty() ? json::value(nullptr) : json::value(r.client_request_id)},
  };
}

bool parse_int(std::string_view text, long long& out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && ptr == text.data() + text.size();
}

std::string_view string_field(const json::object& o, std::string_view key) {
  if (auto* v = o.if_contains(key); v && v->is_string()) return v->as_string();
  return {};
}

} // namespace

std::string model_version_json(const registry::ModelVersionRecord& record) {
  return json::serialize(version_object(record));
}

std::string audit_record_json(const registry::AuditRecord& record) { return json::serialize(audit_object(record)); }

std::string iso8601_utc(std::int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[40];
  const auto n = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &tm);
  char millis[8];
  std::snprintf(millis, sizeof millis, ".%03dZ", static_cast<int>(unix_ms % 1000));
  return std::string(buffer, n) + millis;
}

std::optional<std::int64_t> parse_time_bound(std::string_view text, std::int64_t now_unix_ms) {
  if (text.empty()) return std::nullopt;
  long long number = 0;
  if (parse_int(text, number)) return number >= 0 ? std::optional<std::int64_t>(number) : std::nullopt;
  if (auto ago = parse_duration(text)) return now_unix_ms - ago->count();
  // RFC 3339 in UTC: YYYY-MM-DDTHH:MM:SS[.fff]Z
  std::tm tm{};
  const std::string s(text);
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) return std::nullopt;
  long long millis = 0;
  if (*end == '.') {
    ++end;
    int digits = 0;
    while (*end >= '0' && *end <= '9') {
      if (digits < 3) millis = millis * 10 + (*end - '0');
      ++digits;
      ++end;
    }
    for (; digits < 3; ++digits) millis *= 10;
  }
  if (std::string_view(end) != "Z") return std::nullopt;
  return static_cast<std::int64_t>(timegm(&tm)) * 1000 + millis;
}

AdminApi::AdminApi(registry::StateStore& store, registry::ModelRegistry& models, const Clock& clock)
    : store_(store), models_(models), clock_(clock) {}

std::optional<http::Reply> AdminApi::handle(http::Request& request, std::string_view path, std::string_view query) {
  constexpr std::string_view models_prefix = "/admin/v1/models";
  constexpr std::string_view blobs_prefix = "/admin/v1/blobs/";
  constexpr std::string_view requests_prefix = "/admin/v1/requests";
  if (path.substr(0, models_prefix.size()) == models_prefix &&
      (path.size() == models_prefix.size() || path[models_prefix.size()] == '/'))
    return models(request, path.substr(models_prefix.size()));
  if (path.substr(0, blobs_prefix.size()) == blobs_prefix) return blob(request, path.substr(blobs_prefix.size()));
  if (path == blobs_prefix.substr(0, blobs_prefix.size() - 1)) {
    if (request.method() != verb::get && request.method() != verb::head) return method_not_allowed(request, path, "GET");
    return blob_list();
  }
  if (path == requests_prefix) {
    if (request.method() != verb::get && request.method() != verb::head) return method_not_allowed(request, path, "GET");
    return requests(query);
  }
  if (path.substr(0, requests_prefix.size() + 1) == std::string(requests_prefix) + "/") {
    if (request.method() != verb::get && request.method() != verb::head) return method_not_allowed(request, path, "GET");
    return request_by_id(path.substr(requests_prefix.size() + 1));
  }
  if (path == "/admin/v1/deployments") {
    if (request.method() != verb::get && request.method() != verb::head) return method_not_allowed(request, path, "GET");
    return deployments(query);
  }
  return std::nullopt;
}

http::Reply AdminApi::models(http::Request& request, std::string_view rest) {
  const std::string path = "/admin/v1/models" + std::string(rest);
  if (rest.empty() || rest == "/") {
    if (request.method() == verb::post) return push(request);
    if (request.method() != verb::get && request.method() != verb::head)
      return method_not_allowed(request, path, "GET, POST");
    auto list = store_.list_models();
    if (!list) return error_reply(list.error());
    json::array out;
    for (const auto& m : *list)
      out.push_back(json::object{{"name", m.name},
                                 {"latest", m.latest_version},
                                 {"versions", m.versions},
                                 {"updated", iso8601_utc(m.updated_unix_ms)}});
    return json_reply(200, json::object{{"models", std::move(out)}});
  }
  // /NAME, /NAME/versions, /NAME/versions/VERSION
  rest.remove_prefix(1);
  const auto slash = rest.find('/');
  const std::string name(rest.substr(0, slash));
  std::string_view tail = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (!is_valid_model_name(name)) return error_reply({ErrorCode::not_found, "no model named \"" + name + "\""});
  if (tail.empty() || tail == "/versions" || tail == "/versions/") {
    if (request.method() != verb::get && request.method() != verb::head) return method_not_allowed(request, path, "GET");
    auto versions = store_.list_model_versions(name);
    if (!versions) return error_reply(versions.error());
    if (versions->empty()) return error_reply({ErrorCode::not_found, "no model named \"" + name + "\" in the registry"});
    json::array out;
    for (const auto& v : *versions) out.push_back(version_object(v));
    return json_reply(200, json::object{{"name", name}, {"versions", std::move(out)}});
  }
  constexpr std::string_view versions_prefix = "/versions/";
  if (tail.substr(0, versions_prefix.size()) != versions_prefix)
    return error_reply({ErrorCode::not_found, "no route for " + path});
  const std::string version(tail.substr(versions_prefix.size()));
  auto ref = parse_model_ref(name + "@" + version);
  if (!ref)
    return error_reply({ErrorCode::not_found, "\"" + version + "\" is not a version id (6-64 hex digits) or latest"});
  auto found = models_.resolve(*ref);
  if (request.method() == verb::get || request.method() == verb::head) {
    if (!found) return error_reply(found.error());
    return json_reply(200, version_object(*found));
  }
  // Versions are immutable: any attempt to write one is refused, and says how to change it.
  if (!found) {
    if (found.error().code != ErrorCode::not_found) return error_reply(found.error());
    auto r = error_reply({ErrorCode::method_not_allowed,
                          "versions are created by POST /admin/v1/models (tandem models push), never written by id"});
    r.set("Allow", "GET");
    return r;
  }
  return error_reply({ErrorCode::conflict, "model version " + found->name + "@" + found->version +
                                               " is immutable: push changed content to create a new version"});
}

http::Reply AdminApi::push(const http::Request& request) {
  boost::system::error_code ec;
  auto value = json::parse(request.body(), ec);
  if (ec) return error_reply({ErrorCode::malformed_json, "body: not valid JSON (" + ec.message() + ")"});
  if (!value.is_object()) return error_reply({ErrorCode::invalid_request, "body: expected a JSON object"});
  const auto& o = value.as_object();
  for (const auto& [key, v] : o) {
    static constexpr std::string_view known[] = {"name",    "manifest",      "artifact_sha256", "tags",
                                                 "parent",  "dataset",       "dataset_sha256",  "training_code",
                                                 "pushed_by"};
    if (std::find(std::begin(known), std::end(known), std::string_view(key)) == std::end(known))
      return error_reply({ErrorCode::invalid_request, std::string(key) + ": unknown field"});
    if (key != "tags" && !v.is_string())
      return error_reply({ErrorCode::invalid_request, std::string(key) + ": expected a string"});
  }
  registry::PushRequest push;
  push.name = string_field(o, "name");
  push.manifest_text = string_field(o, "manifest");
  push.artifact_sha256 = string_field(o, "artifact_sha256");
  push.parent = string_field(o, "parent");
  push.dataset_name = string_field(o, "dataset");
  push.dataset_sha256 = string_field(o, "dataset_sha256");
  push.training_code = string_field(o, "training_code");
  push.pushed_by = string_field(o, "pushed_by");
  if (push.name.empty()) return error_reply({ErrorCode::invalid_request, "name: required"});
  if (push.manifest_text.empty()) return error_reply({ErrorCode::invalid_request, "manifest: required (tandem-model.yaml text)"});
  if (auto* tags = o.if_contains("tags")) {
    if (!tags->is_object()) return error_reply({ErrorCode::invalid_request, "tags: expected an object of strings"});
    for (const auto& [k, v] : tags->as_object()) {
      if (!v.is_string() || k.empty() || k.size() > 128 || v.as_string().size() > 1024)
        return error_reply({ErrorCode::invalid_request,
                            "tags." + std::string(k) + ": expected a string (keys 1-128, values up to 1024 characters)"});
      push.tags[std::string(k)] = std::string(v.as_string());
    }
  }
  auto result = models_.push(push);
  if (!result) return error_reply(result.error());
  auto body = version_object(result->record);
  body["created_now"] = result->created;
  return json_reply(result->created ? 201 : 200, body);
}

http::Reply AdminApi::blob(http::Request& request, std::string_view id) {
  const std::string path = "/admin/v1/blobs/" + std::string(id);
  constexpr std::string_view scheme = "sha256:";
  if (id.substr(0, scheme.size()) != scheme || !registry::is_sha256_hex(id.substr(scheme.size())))
    return error_reply({ErrorCode::not_found, "blob ids are sha256:<64 lowercase hex digits>"});
  const std::string_view hex = id.substr(scheme.size());
  if (request.method() == verb::put) {
    if (auto s = models_.blobs().put(request.body(), hex); !s) return error_reply(s.error());
    return json_reply(201, json::object{{"sha256", hex}, {"bytes", request.body().size()}});
  }
  if (request.method() == verb::delete_) {
    if (auto s = models_.delete_blob(hex); !s) return error_reply(s.error());
    return json_reply(200, json::object{{"deleted", "sha256:" + std::string(hex)}});
  }
  if (request.method() != verb::get && request.method() != verb::head)
    return method_not_allowed(request, path, "GET, HEAD, PUT, DELETE");
  if (!models_.blobs().contains(hex)) return error_reply({ErrorCode::not_found, "no blob " + std::string(id)});
  return json_reply(200, json::object{{"sha256", hex}});
}

http::Reply AdminApi::blob_list() {
  auto& blobs = models_.blobs();
  auto users = models_.blob_users();
  if (!users) return error_reply(users.error());
  json::array items;
  for (const auto& info : blobs.list()) {
    json::array used_by;
    if (auto it = users->find(info.sha256); it != users->end())
      for (const auto& name : it->second) used_by.emplace_back(name);
    items.emplace_back(json::object{{"sha256", info.sha256},
                                    {"bytes", info.bytes},
                                    {"modified", iso8601_utc(info.modified_unix_ms)},
                                    {"used_by", std::move(used_by)}});
  }
  return json_reply(200, json::object{{"blobs", std::move(items)},
                                      {"total_bytes", blobs.total_bytes()},
                                      {"max_blob_bytes", blobs.max_total_bytes()}});
}

http::Reply AdminApi::requests(std::string_view query) {
  registry::AuditQuery q;
  std::string client_request_id;
  const std::int64_t now_ms = clock_.unix_ns() / 1'000'000;
  auto params = http::parse_query(query);
  if (!params) return error_reply({ErrorCode::invalid_request, "query string: a malformed %-escape"});
  for (const auto& [key, value] : *params) {
    if (key == "endpoint") {
      q.endpoint = value;
    } else if (key == "client_request_id") {
      if (value.empty() || value.size() > 128)
        return error_reply({ErrorCode::invalid_request, "client_request_id: expected 1 to 128 characters"});
      client_request_id = value;
    } else if (key == "since" || key == "before") {
      auto t = parse_time_bound(value, now_ms);
      if (!t)
        return error_reply({ErrorCode::invalid_request,
                            key + ": expected Unix milliseconds, an RFC 3339 UTC time or a duration ago (15m)"});
      (key == "since" ? q.since_unix_ms : q.before_unix_ms) = *t;
    } else if (key == "status") {
      long long status = 0;
      if (value.size() == 3 && value[1] == 'x' && value[2] == 'x' && value[0] >= '1' && value[0] <= '5') {
        q.status = value[0] - '0';
      } else if (parse_int(value, status) && status >= 100 && status <= 599) {
        q.status = static_cast<int>(status);
      } else {
        return error_reply({ErrorCode::invalid_request, "status: expected an HTTP status (429) or a class (5xx)"});
      }
    } else if (key == "limit") {
      long long limit = 0;
      if (!parse_int(value, limit) || limit < 1 || limit > kMaxLimit)
        return error_reply(
            {ErrorCode::invalid_request, "limit: expected an integer from 1 to " + std::to_string(kMaxLimit)});
      q.limit = static_cast<int>(limit);
    } else if (key == "order") {
      if (value != "asc" && value != "desc")
        return error_reply({ErrorCode::invalid_request, "order: expected asc or desc"});
      q.oldest_first = value == "asc";
    } else {
      return error_reply({ErrorCode::invalid_request,
                          key + ": unknown parameter (known: endpoint, client_request_id, since, before, status, "
                                "limit, order)"});
    }
  }
  if (!client_request_id.empty()) return requests_by_client_id(client_request_id, q);
  auto rows = store_.query_audit(q);
  if (!rows) return error_reply(rows.error());
  json::array out;
  for (const auto& r : *rows) out.push_back(audit_object(r));
  const auto count = out.size();
  return json_reply(200, json::object{{"requests", std::move(out)}, {"count", count}, {"limit", q.limit}});
}

http::Reply AdminApi::request_by_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return error_reply({ErrorCode::not_found, "no such request id"});
  auto found = store_.find_audit(std::string(id));
  if (!found) return error_reply(found.error());
  if (*found) return json_reply(200, audit_object(**found));
  // Not a record's own id: a client's, which any number of requests may have sent. One match
  // is that record; several are listed rather than one chosen, so that a request sent with
  // another's id cannot stand in for it.
  constexpr int kShown = 20;
  auto sent = store_.find_audit_by_client_id(std::string(id), kShown + 1);
  if (!sent) return error_reply(sent.error());
  if (sent->empty())
    return error_reply({ErrorCode::not_found, "no audit record for request " + std::string(id) +
                                                  " (expired, not yet written, or never seen)"});
  if (sent->size() == 1) return json_reply(200, audit_object(sent->front()));
  json::array matches;
  for (std::size_t i = 0; i < sent->size() && i < static_cast<std::size_t>(kShown); ++i)
    matches.push_back(audit_object((*sent)[i]));
  const std::string count = sent->size() > static_cast<std::size_t>(kShown) ? "more than " + std::to_string(kShown)
                                                                               : std::to_string(sent->size());
  return json_reply(409, json::object{{"error", count + " requests were sent with x-request-id " + std::string(id) +
                                                    "; ask for one by its request_id"},
                                      {"code", "ambiguous_request_id"},
                                      {"matches", std::move(matches)}});
}

http::Reply AdminApi::requests_by_client_id(const std::string& client_request_id, const registry::AuditQuery& q) {
  if (!q.endpoint.empty() || q.since_unix_ms != 0 || q.before_unix_ms != 0 || q.status != 0 || q.oldest_first)
    return error_reply({ErrorCode::invalid_request, "client_request_id: takes only limit besides"});
  auto rows = store_.find_audit_by_client_id(client_request_id, q.limit);
  if (!rows) return error_reply(rows.error());
  json::array out;
  for (const auto& r : *rows) out.push_back(audit_object(r));
  const auto count = out.size();
  return json_reply(200, json::object{{"requests", std::move(out)}, {"count", count}, {"limit", q.limit}});
}

http::Reply AdminApi::deployments(std::string_view query) {
  std::string endpoint;
  auto params = http::parse_query(query);
  if (!params) return error_reply({ErrorCode::invalid_request, "query string: a malformed %-escape"});
  for (const auto& [key, value] : *params) {
    if (key != "endpoint") return error_reply({ErrorCode::invalid_request, key + ": unknown parameter (known: endpoint)"});
    endpoint = value;
  }
  auto rows = store_.list_deployments(endpoint, 100);
  if (!rows) return error_reply(rows.error());
  json::array out;
  for (const auto& d : *rows)
    out.push_back(json::object{{"endpoint", d.endpoint},
                               {"model", d.model_ref},
                               {"model_name", d.model_name},
                               {"version", d.version},
                               {"deployed", iso8601_utc(d.deployed_unix_ms)}});
  return json_reply(200, json::object{{"deployments", std::move(out)}});
}

} // namespace tandem::gateway
