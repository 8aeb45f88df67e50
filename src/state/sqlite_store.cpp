#include "state/sqlite_store.hpp"

#include "state/audit_blocks.hpp"

#include <boost/json.hpp>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <limits>
#include <memory>
#include <string_view>
#include <tuple>

namespace tandem::registry {
namespace {

struct Migration {
  int version;
  const char* description;
  const char* sql;
};

// Append only: a released migration is never edited, a change is a new one. Types and
// statements stay within what PostgreSQL also accepts (TEXT, BIGINT, DOUBLE PRECISION), except
// for the SQLite rowid alias on the audit table, which the PostgreSQL schema will spell as an
// identity column.
constexpr std::array kMigrations = {
    Migration{1, "model registry and deployments",
              R"sql(
CREATE TABLE model_versions (
  name TEXT NOT NULL,
  version TEXT NOT NULL,
  digest TEXT NOT NULL,
  manifest_sha256 TEXT NOT NULL,
  artifact_sha256 TEXT NOT NULL,
  artifact_name TEXT NOT NULL,
  artifact_bytes BIGINT NOT NULL,
  format TEXT NOT NULL,
  manifest_text TEXT NOT NULL,
  dataset_name TEXT NOT NULL,
  dataset_sha256 TEXT NOT NULL,
  training_code TEXT NOT NULL,
  parent_version TEXT NOT NULL,
  tags_json TEXT NOT NULL,
  created_unix_ms BIGINT NOT NULL,
  pushed_by TEXT NOT NULL,
  PRIMARY KEY (name, digest)
);
CREATE UNIQUE INDEX model_versions_by_version ON model_versions (name, version);
CREATE INDEX model_versions_by_created ON model_versions (name, created_unix_ms);
CREATE TABLE deployments (
  endpoint TEXT NOT NULL,
  model_ref TEXT NOT NULL,
  model_name TEXT NOT NULL,
  version TEXT NOT NULL,
  deployed_unix_ms BIGINT NOT NULL
);
CREATE INDEX deployments_by_endpoint ON deployments (endpoint, deployed_unix_ms);
)sql"},
    Migration{2, "audit record per request",
              R"sql(
CREATE TABLE audit_requests (
  seq INTEGER PRIMARY KEY,
  request_id TEXT NOT NULL,
  trace_id TEXT NOT NULL,
  time_unix_ms BIGINT NOT NULL,
  endpoint TEXT NOT NULL,
  model_version TEXT NOT NULL,
  input_sha256 TEXT NOT NULL,
  tier TEXT NOT NULL,
  worker TEXT NOT NULL,
  status INTEGER NOT NULL,
  error_code TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  queue_ms DOUBLE PRECISION NOT NULL,
  cold_start_ms DOUBLE PRECISION NOT NULL,
  upstream_ms DOUBLE PRECISION NOT NULL,
  total_ms DOUBLE PRECISION NOT NULL,
  cost_usd DOUBLE PRECISION NOT NULL
);
CREATE INDEX audit_by_time ON audit_requests (time_unix_ms);
CREATE INDEX audit_by_endpoint_time ON audit_requests (endpoint, time_unix_ms);
CREATE INDEX audit_by_request_id ON audit_requests (request_id);
)sql"},
    Migration{3, "rollout history",
              R"sql(
CREATE TABLE rollout_events (
  seq INTEGER PRIMARY KEY,
  endpoint TEXT NOT NULL,
  rollout_id TEXT NOT NULL,
  time_unix_ms BIGINT NOT NULL,
  kind TEXT NOT NULL,
  from_version TEXT NOT NULL,
  to_version TEXT NOT NULL,
  canary_percent INTEGER NOT NULL,
  detail TEXT NOT NULL,
  actor TEXT NOT NULL
);
CREATE INDEX rollout_events_by_endpoint ON rollout_events (endpoint, seq);
)sql"},
    Migration{4, "asynchronous jobs",
              R"sql(
CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  endpoint TEXT NOT NULL,
  status TEXT NOT NULL,
  input_json TEXT NOT NULL,
  webhook TEXT NOT NULL,
  low_priority INTEGER NOT NULL,
  execution_timeout_ms BIGINT NOT NULL,
  ttl_ms BIGINT NOT NULL,
  created_unix_ms BIGINT NOT NULL,
  queued_unix_ms BIGINT NOT NULL,
  started_unix_ms BIGINT NOT NULL,
  finished_unix_ms BIGINT NOT NULL,
  output_json TEXT NOT NULL,
  error TEXT NOT NULL,
  worker TEXT NOT NULL,
  cost_usd DOUBLE PRECISION NOT NULL,
  retries INTEGER NOT NULL,
  executions INTEGER NOT NULL,
  webhook_state TEXT NOT NULL,
  webhook_attempts INTEGER NOT NULL
);
CREATE INDEX jobs_by_finished ON jobs (finished_unix_ms);
)sql"},
    // The rows of audit_requests move into blocks (see audit_blocks.hpp) in C++ after this
    // script; then that table goes.
    Migration{5, "audit records in blocks",
              R"sql(
CREATE TABLE audit_blocks (
  seq INTEGER PRIMARY KEY,
  first_time_unix_ms BIGINT NOT NULL,
  last_time_unix_ms BIGINT NOT NULL,
  records INTEGER NOT NULL,
  endpoints TEXT NOT NULL,
  status_classes INTEGER NOT NULL,
  records_json TEXT NOT NULL
);
CREATE INDEX audit_blocks_by_first_time ON audit_blocks (first_time_unix_ms);
CREATE INDEX audit_blocks_by_last_time ON audit_blocks (last_time_unix_ms);
CREATE TABLE audit_request_ids (
  request_id TEXT NOT NULL,
  time_unix_ms BIGINT NOT NULL,
  block_seq BIGINT NOT NULL
);
CREATE INDEX audit_request_ids_by_id ON audit_request_ids (request_id);
CREATE INDEX audit_request_ids_by_time ON audit_request_ids (time_unix_ms);
)sql"},
};

std::int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// A prepared statement, finalized on scope exit.
class Statement {
public:
  Statement(sqlite3* db, std::string_view sql) {
    rc_ = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  [[nodiscard]] bool prepared() const { return rc_ == SQLITE_OK; }
  Statement& bind(int index, std::string_view text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  /// Binds text without copying it: the caller keeps `text` alive until step() and reset().
  /// For bulk inserts, where SQLite's private copy of every column was a malloc, a copy and a
  /// free per value.
  Statement& bind_borrowed(int index, std::string_view text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
    return *this;
  }
  Statement& bind(int index, std::int64_t value) {
    sqlite3_bind_int64(stmt_, index, value);
    return *this;
  }
  Statement& bind(int index, int value) { return bind(index, static_cast<std::int64_t>(value)); }
  Statement& bind(int index, double value) {
    sqlite3_bind_double(stmt_, index, value);
    return *this;
  }
  /// SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(stmt_); }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  [[nodiscard]] std::string text(int column) const {
    const auto* p = sqlite3_column_text(stmt_, column);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)))
             : std::string();
  }
  /// The column's text without a copy; valid until the next step() or reset().
  [[nodiscard]] std::string_view text_view(int column) const {
    const auto* p = sqlite3_column_text(stmt_, column);
    return p ? std::string_view(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)))
             : std::string_view();
  }
  [[nodiscard]] std::int64_t int64(int column) const { return sqlite3_column_int64(stmt_, column); }
  [[nodiscard]] double real(int column) const { return sqlite3_column_double(stmt_, column); }

private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

std::string tags_to_json(const std::map<std::string, std::string>& tags) {
  boost::json::object o;
  for (const auto& [k, v] : tags) o[k] = v;
  return boost::json::serialize(o);
}

std::map<std::string, std::string> tags_from_json(const std::string& text) {
  std::map<std::string, std::string> out;
  boost::system::error_code ec;
  auto value = boost::json::parse(text, ec);
  if (ec || !value.is_object()) return out;
  for (const auto& [k, v] : value.as_object())
    if (v.is_string()) out[std::string(k)] = std::string(v.as_string());
  return out;
}

constexpr const char* kVersionColumns =
    "name, version, digest, manifest_sha256, artifact_sha256, artifact_name, artifact_bytes, format, manifest_text, "
    "dataset_name, dataset_sha256, training_code, parent_version, tags_json, created_unix_ms, pushed_by";

ModelVersionRecord read_version(const Statement& s) {
  ModelVersionRecord r;
  r.name = s.text(0);
  r.version = s.text(1);
  r.digest = s.text(2);
  r.manifest_sha256 = s.text(3);
  r.artifact_sha256 = s.text(4);
  r.artifact_name = s.text(5);
  r.artifact_bytes = s.int64(6);
  r.format = s.text(7);
  r.manifest_text = s.text(8);
  r.dataset_name = s.text(9);
  r.dataset_sha256 = s.text(10);
  r.training_code = s.text(11);
  r.parent_version = s.text(12);
  r.tags = tags_from_json(s.text(13));
  r.created_unix_ms = s.int64(14);
  r.pushed_by = s.text(15);
  return r;
}

constexpr const char* kAuditColumns =
    "request_id, trace_id, time_unix_ms, endpoint, model_version, input_sha256, tier, worker, status, error_code, "
    "attempts, queue_ms, cold_start_ms, upstream_ms, total_ms, cost_usd";

/// The record in kAuditColumns order from column `first` on.
AuditRecord read_audit(const Statement& s, int first) {
  AuditRecord r;
  r.request_id = s.text(first);
  r.trace_id = s.text(first + 1);
  r.time_unix_ms = s.int64(first + 2);
  r.endpoint = s.text(first + 3);
  r.model_version = s.text(first + 4);
  r.input_sha256 = s.text(first + 5);
  r.tier = s.text(first + 6);
  r.worker = s.text(first + 7);
  r.status = static_cast<int>(s.int64(first + 8));
  r.error_code = s.text(first + 9);
  r.attempts = static_cast<int>(s.int64(first + 10));
  r.queue_ms = s.real(first + 11);
  r.cold_start_ms = s.real(first + 12);
  r.upstream_ms = s.real(first + 13);
  r.total_ms = s.real(first + 14);
  r.cost_usd = s.real(first + 15);
  return r;
}

// Column order of the jobs table as read and written below; input_json stays third.
constexpr const char* kJobColumns =
    "id, endpoint, status, input_json, webhook, low_priority, execution_timeout_ms, ttl_ms, created_unix_ms, "
    "queued_unix_ms, started_unix_ms, finished_unix_ms, output_json, error, worker, cost_usd, retries, executions, "
    "webhook_state, webhook_attempts";

JobRecord read_job(const Statement& s) {
  JobRecord j;
  j.id = s.text(0);
  j.endpoint = s.text(1);
  j.status = s.text(2);
  j.input_json = s.text(3);
  j.webhook = s.text(4);
  j.low_priority = s.int64(5) != 0;
  j.execution_timeout_ms = s.int64(6);
  j.ttl_ms = s.int64(7);
  j.created_unix_ms = s.int64(8);
  j.queued_unix_ms = s.int64(9);
  j.started_unix_ms = s.int64(10);
  j.finished_unix_ms = s.int64(11);
  j.output_json = s.text(12);
  j.error = s.text(13);
  j.worker = s.text(14);
  j.cost_usd = s.real(15);
  j.retries = static_cast<int>(s.int64(16));
  j.executions = static_cast<int>(s.int64(17));
  j.webhook_state = s.text(18);
  j.webhook_attempts = static_cast<int>(s.int64(19));
  return j;
}

class SqliteStore final : public StateStore {
public:
  explicit SqliteStore(sqlite3* db) : db_(db) {}
  ~SqliteStore() override { sqlite3_close_v2(db_); }
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  Error failure(const std::string& what) const {
    return make_error(ErrorCode::internal, "state store: " + what + ": " + sqlite3_errmsg(db_));
  }

  Status exec(const char* sql, const std::string& what) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      std::string text = message ? message : "unknown error";
      sqlite3_free(message);
      return make_error(ErrorCode::internal, "state store: " + what + ": " + text);
    }
    return Ok{};
  }

  Status migrate() {
    if (auto s = exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                      "description TEXT NOT NULL, applied_unix_ms BIGINT NOT NULL)",
                      "creating schema_migrations");
        !s)
      return s;
    auto current = schema_version();
    if (!current) return current.error();
    if (*current > latest_schema_version())
      return make_error(ErrorCode::internal,
                        "state store is at schema version " + std::to_string(*current) + ", newer than this tandem (" +
                            std::to_string(latest_schema_version()) + "); use a newer tandem or another state dir");
    for (const auto& m : kMigrations) {
      if (m.version <= *current) continue;
      if (auto s = exec("BEGIN IMMEDIATE", "starting migration"); !s) return s;
      // Another connection may have migrated while this one waited for the write lock.
      auto now_at = schema_version();
      if (!now_at || *now_at >= m.version) {
        (void)exec("ROLLBACK", "ending migration check");
        if (!now_at) return now_at.error();
        continue;
      }
      auto s = exec(m.sql, "migration " + std::to_string(m.version) + " (" + m.description + ")");
      if (s && m.version == 5) s = move_audit_rows_into_blocks();
      if (s) {
        Statement insert(db_, "INSERT INTO schema_migrations (version, description, applied_unix_ms) VALUES (?, ?, ?)");
        insert.bind(1, m.version).bind(2, std::string_view(m.description)).bind(3, now_unix_ms());
        if (insert.step() != SQLITE_DONE) s = failure("recording migration " + std::to_string(m.version));
      }
      if (!s) {
        (void)exec("ROLLBACK", "rolling back migration");
        return s;
      }
      if (auto c = exec("COMMIT", "committing migration"); !c) return c;
    }
    return Ok{};
  }

  Result<int> schema_version() override {
    Statement s(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    if (!s.prepared() || s.step() != SQLITE_ROW) return failure("reading schema version");
    return static_cast<int>(s.int64(0));
  }

  Result<InsertOutcome> insert_model_version(const ModelVersionRecord& r) override {
    std::string sql = std::string("INSERT INTO model_versions (") + kVersionColumns +
                      ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING";
    Statement s(db_, sql);
    if (!s.prepared()) return failure("preparing insert of a model version");
    s.bind(1, r.name).bind(2, r.version).bind(3, r.digest).bind(4, r.manifest_sha256).bind(5, r.artifact_sha256);
    s.bind(6, r.artifact_name).bind(7, r.artifact_bytes).bind(8, r.format).bind(9, r.manifest_text);
    s.bind(10, r.dataset_name).bind(11, r.dataset_sha256).bind(12, r.training_code).bind(13, r.parent_version);
    s.bind(14, tags_to_json(r.tags)).bind(15, r.created_unix_ms).bind(16, r.pushed_by);
    if (s.step() != SQLITE_DONE) return failure("inserting model version " + r.name + "@" + r.version);
    return sqlite3_changes(db_) == 1 ? InsertOutcome::created : InsertOutcome::already_exists;
  }

  Result<std::optional<ModelVersionRecord>> find_model_version(const std::string& name,
                                                               const std::string& version) override {
    if (version.size() < 6 || version.size() > 64)
      return make_error(ErrorCode::invalid_request, "version \"" + version + "\": give 6 to 64 hex digits");
    // A prefix match; more than one hit means the prefix is ambiguous.
    Statement s(db_, std::string("SELECT ") + kVersionColumns +
                         " FROM model_versions WHERE name = ? AND substr(digest, 1, ?) = ? LIMIT 2");
    if (!s.prepared()) return failure("preparing model version lookup");
    s.bind(1, name).bind(2, static_cast<std::int64_t>(version.size())).bind(3, version);
    std::optional<ModelVersionRecord> found;
    for (int rc = s.step(); rc == SQLITE_ROW; rc = s.step()) {
      if (found)
        return make_error(ErrorCode::invalid_request,
                          "version prefix \"" + version + "\" of model " + name + " is ambiguous; give more digits");
      found = read_version(s);
    }
    return found;
  }

  Result<std::optional<ModelVersionRecord>> latest_model_version(const std::string& name) override {
    Statement s(db_, std::string("SELECT ") + kVersionColumns +
                         " FROM model_versions WHERE name = ? ORDER BY created_unix_ms DESC, digest LIMIT 1");
    if (!s.prepared()) return failure("preparing latest version lookup");
    s.bind(1, name);
    int rc = s.step();
    if (rc == SQLITE_ROW) return std::optional(read_version(s));
    if (rc != SQLITE_DONE) return failure("reading latest version of " + name);
    return std::optional<ModelVersionRecord>{};
  }

  Result<std::vector<ModelVersionRecord>> list_model_versions(const std::string& name) override {
    Statement s(db_, std::string("SELECT ") + kVersionColumns +
                         " FROM model_versions WHERE name = ? ORDER BY created_unix_ms DESC, digest");
    if (!s.prepared()) return failure("preparing version listing");
    s.bind(1, name);
    std::vector<ModelVersionRecord> out;
    int rc = 0;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_version(s));
    if (rc != SQLITE_DONE) return failure("listing versions of " + name);
    return out;
  }

  Result<std::vector<ModelSummary>> list_models() override {
    Statement s(db_, "SELECT m.name, COUNT(*), MAX(m.created_unix_ms), "
                     "(SELECT l.version FROM model_versions l WHERE l.name = m.name "
                     " ORDER BY l.created_unix_ms DESC, l.digest LIMIT 1) "
                     "FROM model_versions m GROUP BY m.name ORDER BY m.name");
    if (!s.prepared()) return failure("preparing model listing");
    std::vector<ModelSummary> out;
    int rc = 0;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back(ModelSummary{s.text(0), s.text(3), s.int64(1), s.int64(2)});
    if (rc != SQLITE_DONE) return failure("listing models");
    return out;
  }

  Status record_deployment(const DeploymentRecord& r) override {
    Statement s(db_, "INSERT INTO deployments (endpoint, model_ref, model_name, version, deployed_unix_ms) "
                     "VALUES (?, ?, ?, ?, ?)");
    if (!s.prepared()) return failure("preparing deployment record");
    s.bind(1, r.endpoint).bind(2, r.model_ref).bind(3, r.model_name).bind(4, r.version).bind(5, r.deployed_unix_ms);
    if (s.step() != SQLITE_DONE) return failure("recording deployment of " + r.endpoint);
    return Ok{};
  }

  Result<std::vector<DeploymentRecord>> list_deployments(const std::string& endpoint, int limit) override {
    Statement s(db_, "SELECT endpoint, model_ref, model_name, version, deployed_unix_ms FROM deployments "
                     "WHERE (? = '' OR endpoint = ?) ORDER BY deployed_unix_ms DESC LIMIT ?");
    if (!s.prepared()) return failure("preparing deployment listing");
    s.bind(1, endpoint).bind(2, endpoint).bind(3, limit);
    std::vector<DeploymentRecord> out;
    int rc = 0;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back(DeploymentRecord{s.text(0), s.text(1), s.text(2), s.text(3), s.int64(4)});
    if (rc != SQLITE_DONE) return failure("listing deployments");
    return out;
  }

  Status append_rollout_event(const RolloutEvent& e) override {
    Statement s(db_, "INSERT INTO rollout_events (endpoint, rollout_id, time_unix_ms, kind, from_version, to_version, "
                     "canary_percent, detail, actor) VALUES (?,?,?,?,?,?,?,?,?)");
    if (!s.prepared()) return failure("preparing rollout event");
    s.bind(1, e.endpoint).bind(2, e.rollout_id).bind(3, e.time_unix_ms).bind(4, e.kind).bind(5, e.from_version);
    s.bind(6, e.to_version).bind(7, e.canary_percent).bind(8, e.detail).bind(9, e.actor);
    if (s.step() != SQLITE_DONE) return failure("recording rollout event");
    return Ok{};
  }

  Result<std::vector<RolloutEvent>> list_rollout_events(const std::string& endpoint, int limit) override {
    Statement s(db_, "SELECT endpoint, rollout_id, time_unix_ms, kind, from_version, to_version, canary_percent, "
                     "detail, actor FROM rollout_events WHERE (? = '' OR endpoint = ?) ORDER BY seq DESC LIMIT ?");
    if (!s.prepared()) return failure("preparing rollout history");
    s.bind(1, endpoint).bind(2, endpoint).bind(3, limit);
    std::vector<RolloutEvent> out;
    int rc = 0;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back(RolloutEvent{s.text(0), s.text(1), s.int64(2), s.text(3), s.text(4), s.text(5),
                                 static_cast<int>(s.int64(6)), s.text(7), s.text(8)});
    if (rc != SQLITE_DONE) return failure("reading rollout history");
    return out;
  }

  Status append_audit(std::span<const AuditRecord> records) override {
    if (records.empty()) return Ok{};
    if (auto b = exec("BEGIN IMMEDIATE", "starting audit batch"); !b) return b;
    Status result = write_audit_blocks(records);
    if (!result) {
      (void)exec("ROLLBACK", "rolling back audit batch");
      return result;
    }
    return exec("COMMIT", "committing audit batch");
  }

  Result<std::vector<AuditRecord>> query_audit(const AuditQuery& q) override {
    if (q.limit == 0) return std::vector<AuditRecord>{};
    const auto limit = q.limit < 0 ? std::numeric_limits<std::size_t>::max() : static_cast<std::size_t>(q.limit);
    // Blocks overlap in time a little (a slow request lands in a later block), so blocks are
    // read in order of their latest (newest first) or earliest (oldest first) record, and the
    // scan stops once the next block cannot hold anything better than the limit already has.
    std::string sql = "SELECT seq, first_time_unix_ms, last_time_unix_ms, records_json FROM audit_blocks "
                      "WHERE last_time_unix_ms >= ?";
    if (q.before_unix_ms > 0) sql += " AND first_time_unix_ms < ?";
    if (!q.endpoint.empty()) sql += " AND instr(endpoints, ?) > 0";
    // A status filter reads only the blocks that hold that class of status (failures are rare).
    if (q.status > 0) sql += " AND (status_classes & ?) != 0";
    sql += q.oldest_first ? " ORDER BY first_time_unix_ms ASC, seq ASC" : " ORDER BY last_time_unix_ms DESC, seq DESC";
    Statement s(db_, sql);
    if (!s.prepared()) return failure("preparing audit query");
    int i = 1;
    s.bind(i++, q.since_unix_ms);
    if (q.before_unix_ms > 0) s.bind(i++, q.before_unix_ms);
    const std::string framed_endpoint = "\n" + q.endpoint + "\n";
    if (!q.endpoint.empty()) s.bind(i++, framed_endpoint);
    if (q.status > 0) s.bind(i, status_class_bit(q.status >= 100 ? q.status : q.status * 100));
    const auto matches = [&](const AuditRecord& r) {
      if (r.time_unix_ms < q.since_unix_ms) return false;
      if (q.before_unix_ms > 0 && r.time_unix_ms >= q.before_unix_ms) return false;
      if (!q.endpoint.empty() && r.endpoint != q.endpoint) return false;
      if (q.status >= 100) return r.status == q.status;
      if (q.status > 0) return r.status >= q.status * 100 && r.status < q.status * 100 + 100;
      return true;
    };
    // Kept as a heap whose top is the worst of those kept: (time, block, place) decides.
    struct Kept {
      std::int64_t time_unix_ms;
      std::int64_t block_seq;
      std::size_t place;
      AuditRecord record;
    };
    const auto before = [&](const Kept& a, const Kept& b) {  // true when a comes first in the answer
      const auto ka = std::tie(a.time_unix_ms, a.block_seq, a.place);
      const auto kb = std::tie(b.time_unix_ms, b.block_seq, b.place);
      return q.oldest_first ? ka < kb : ka > kb;
    };
    std::vector<Kept> kept;
    int rc = 0;
    while ((rc = s.step()) == SQLITE_ROW) {
      if (kept.size() == limit) {
        const std::int64_t worst = kept.front().time_unix_ms;
        if (q.oldest_first ? s.int64(1) > worst : s.int64(2) < worst) {
          rc = SQLITE_DONE;
          break;
        }
      }
      const std::int64_t block_seq = s.int64(0);
      auto records = read_audit_block(block_seq, s.text_view(3));
      if (!records) return records.error();
      for (std::size_t place = 0; place < records->size(); ++place) {
        AuditRecord& r = (*records)[place];
        if (!matches(r)) continue;
        Kept candidate{r.time_unix_ms, block_seq, place, {}};
        if (kept.size() == limit) {
          if (!before(candidate, kept.front())) continue;
          std::pop_heap(kept.begin(), kept.end(), before);
          kept.pop_back();
        }
        candidate.record = std::move(r);
        kept.push_back(std::move(candidate));
        std::push_heap(kept.begin(), kept.end(), before);
      }
    }
    if (rc != SQLITE_DONE) return failure("querying audit records");
    std::sort_heap(kept.begin(), kept.end(), before);
    std::vector<AuditRecord> out;
    out.reserve(kept.size());
    for (Kept& k : kept) out.push_back(std::move(k.record));
    return out;
  }

  Result<std::optional<AuditRecord>> find_audit(const std::string& request_id) override {
    // Ids the gateway made carry their arrival time, which bounds the blocks to look in; older
    // records whose id a client chose have a row in audit_request_ids. Record ids are unique;
    // should a store hold duplicates from before they were, the newest wins.
    std::optional<AuditRecord> found;
    const auto keep = [&](AuditRecord&& r) {
      if (r.request_id != request_id) return true;
      found = std::move(r);
      return true;
    };
    if (auto time = time_in_request_id(request_id)) {
      Statement s(db_, "SELECT seq, records_json FROM audit_blocks WHERE first_time_unix_ms BETWEEN ? AND ? "
                       "AND last_time_unix_ms >= ? ORDER BY seq");
      if (!s.prepared()) return failure("preparing the lookup of request " + request_id);
      s.bind(1, *time - kAuditBlockSpanMaxMs).bind(2, *time).bind(3, *time);
      if (auto scanned = scan_blocks(s, keep, "looking up request " + request_id); !scanned) return scanned.error();
      if (found) return found;
    }
    if (auto scanned = scan_indexed(request_id, keep); !scanned) return scanned.error();
    return found;
  }

  Result<std::vector<AuditRecord>> find_audit_by_client_id(const std::string& client_request_id, int limit) override {
    std::vector<AuditRecord> found;
    auto scanned = scan_indexed(client_request_id, [&](AuditRecord&& r) {
      if (r.client_request_id == client_request_id) found.push_back(std::move(r));
      return true;
    });
    if (!scanned) return scanned.error();
    // Blocks come oldest first and records in arrival order within one.
    std::reverse(found.begin(), found.end());
    if (limit >= 0 && found.size() > static_cast<std::size_t>(limit)) found.resize(static_cast<std::size_t>(limit));
    return found;
  }

  Result<std::int64_t> delete_audit_before(std::int64_t cutoff_unix_ms) override {
    if (auto b = exec("BEGIN IMMEDIATE", "starting audit retention"); !b) return b.error();
    auto deleted = delete_audit_blocks_before(cutoff_unix_ms);
    if (!deleted) {
      (void)exec("ROLLBACK", "rolling back audit retention");
      return deleted;
    }
    if (auto c = exec("COMMIT", "committing audit retention"); !c) return c.error();
    return deleted;
  }

  Status in_transaction(const std::function<Status()>& work) override {
    if (auto b = exec("BEGIN IMMEDIATE", "starting transaction"); !b) return b;
    Status result = work();
    if (!result) {
      (void)exec("ROLLBACK", "rolling back");
      return result;
    }
    return exec("COMMIT", "committing");
  }

  Status save_job(const JobRecord& j, bool with_input) override {
    // Prepared once: a busy job queue saves thousands of state changes a second.
    if (!save_job_statement_) {
      save_job_statement_ = std::make_unique<Statement>(
          db_, std::string("INSERT INTO jobs (") + kJobColumns +
                   ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET "
                   "status = excluded.status, queued_unix_ms = excluded.queued_unix_ms, "
                   "started_unix_ms = excluded.started_unix_ms, finished_unix_ms = excluded.finished_unix_ms, "
                   "output_json = excluded.output_json, error = excluded.error, worker = excluded.worker, "
                   "cost_usd = excluded.cost_usd, retries = excluded.retries, executions = excluded.executions, "
                   "webhook_state = excluded.webhook_state, webhook_attempts = excluded.webhook_attempts");
    }
    Statement& s = *save_job_statement_;
    if (!s.prepared()) {
      save_job_statement_.reset();
      return failure("preparing job save");
    }
    s.bind(1, j.id).bind(2, j.endpoint).bind(3, j.status).bind(4, with_input ? std::string_view(j.input_json) : "");
    s.bind(5, j.webhook).bind(6, j.low_priority ? 1 : 0).bind(7, j.execution_timeout_ms).bind(8, j.ttl_ms);
    s.bind(9, j.created_unix_ms).bind(10, j.queued_unix_ms).bind(11, j.started_unix_ms).bind(12, j.finished_unix_ms);
    s.bind(13, j.output_json).bind(14, j.error).bind(15, j.worker).bind(16, j.cost_usd).bind(17, j.retries);
    s.bind(18, j.executions).bind(19, j.webhook_state).bind(20, j.webhook_attempts);
    const int rc = s.step();
    s.reset();
    if (rc != SQLITE_DONE) return failure("saving job " + j.id);
    return Ok{};
  }

  Result<std::vector<JobRecord>> load_jobs(std::int64_t finished_since_unix_ms) override {
    std::string columns = kJobColumns;
    columns.replace(columns.find("input_json"), 10,
                    "CASE WHEN finished_unix_ms = 0 THEN input_json ELSE '' END");
    Statement s(db_, "SELECT " + columns +
                         " FROM jobs WHERE finished_unix_ms = 0 OR finished_unix_ms >= ? ORDER BY created_unix_ms, id");
    if (!s.prepared()) return failure("preparing job load");
    s.bind(1, finished_since_unix_ms);
    std::vector<JobRecord> jobs;
    int rc = s.step();
    for (; rc == SQLITE_ROW; rc = s.step()) jobs.push_back(read_job(s));
    if (rc != SQLITE_DONE) return failure("loading jobs");
    return jobs;
  }

  Result<std::optional<JobRecord>> find_job(const std::string& id) override {
    return find_one(std::string("SELECT ") + kJobColumns + " FROM jobs WHERE id = ?", id, read_job, "job " + id);
  }

  Result<std::int64_t> delete_jobs_finished_before(std::int64_t cutoff_unix_ms) override {
    return delete_where("DELETE FROM jobs WHERE finished_unix_ms > 0 AND finished_unix_ms < ?", cutoff_unix_ms,
                        "expired jobs");
  }

  Status delete_job(const std::string& id) override {
    auto deleted = delete_where("DELETE FROM jobs WHERE id = ?", id, "job " + id);
    if (!deleted) return deleted.error();
    return Ok{};
  }

private:
  /// The records of block `seq`, or an error naming the block.
  /// Calls `each` with every record of the blocks `s` selects (seq, records_json), block by block.
  Status scan_blocks(Statement& s, const std::function<bool(AuditRecord&&)>& each, const std::string& what) {
    int rc = 0;
    while ((rc = s.step()) == SQLITE_ROW) {
      auto records = read_audit_block(s.int64(0), s.text_view(1));
      if (!records) return records.error();
      for (AuditRecord& r : *records)
        if (!each(std::move(r))) return Ok{};
    }
    if (rc != SQLITE_DONE) return failure(what);
    return Ok{};
  }

  /// The records of the blocks an audit_request_ids row for `id` points at, oldest block first
  /// (each block once, though several of its records may carry the id).
  Status scan_indexed(const std::string& id, const std::function<bool(AuditRecord&&)>& each) {
    Statement s(db_, "SELECT b.seq, b.records_json FROM audit_blocks b WHERE b.seq IN "
                     "(SELECT block_seq FROM audit_request_ids WHERE request_id = ?) ORDER BY b.seq");
    if (!s.prepared()) return failure("preparing the lookup of request id " + id);
    s.bind(1, id);
    return scan_blocks(s, each, "looking up request id " + id);
  }

  static Result<std::vector<AuditRecord>> read_audit_block(std::int64_t seq, std::string_view records_json) {
    auto records = parse_audit_block_json(records_json);
    if (!records)
      return make_error(ErrorCode::internal, "state store: audit block " + std::to_string(seq) + ": " + records.error().message);
    return records;
  }

  /// Writes `records` as blocks, and an id row for each client's request id and each record
  /// id that does not carry its time. In the caller's transaction.
  Status write_audit_blocks(std::span<const AuditRecord> records) {
    if (!insert_audit_block_) {
      insert_audit_block_ = std::make_unique<Statement>(
          db_, "INSERT INTO audit_blocks (first_time_unix_ms, last_time_unix_ms, records, endpoints, status_classes, "
               "records_json) VALUES (?, ?, ?, ?, ?, ?)");
      insert_audit_request_id_ = std::make_unique<Statement>(
          db_, "INSERT INTO audit_request_ids (request_id, time_unix_ms, block_seq) VALUES (?, ?, ?)");
    }
    if (!insert_audit_block_->prepared() || !insert_audit_request_id_->prepared()) {
      Error error = failure("preparing audit insert");
      insert_audit_block_.reset();
      insert_audit_request_id_.reset();
      return error;
    }
    Statement& block_insert = *insert_audit_block_;
    Statement& id_insert = *insert_audit_request_id_;
    for (const AuditBlock& block : make_audit_blocks(records)) {
      block_insert.bind(1, block.first_time_unix_ms).bind(2, block.last_time_unix_ms);
      block_insert.bind(3, static_cast<std::int64_t>(block.records)).bind_borrowed(4, block.endpoints);
      block_insert.bind(5, block.status_classes).bind_borrowed(6, block.records_json);
      const int rc = block_insert.step();
      block_insert.reset();
      if (rc != SQLITE_DONE) return failure("inserting audit records");
      const std::int64_t block_seq = sqlite3_last_insert_rowid(db_);
      for (const auto& [id, r] : block.indexed_ids) {
        id_insert.bind_borrowed(1, id).bind(2, r->time_unix_ms).bind(3, block_seq);
        const int id_rc = id_insert.step();
        id_insert.reset();
        if (id_rc != SQLITE_DONE) return failure("indexing audit request id " + std::string(id));
      }
    }
    return Ok{};
  }

  /// Retention, in the caller's transaction: whole blocks before the cutoff go; a block the
  /// cutoff falls inside is written again with its newer records only.
  Result<std::int64_t> delete_audit_blocks_before(std::int64_t cutoff_unix_ms) {
    std::int64_t deleted = 0;
    {
      Statement count(db_, "SELECT COALESCE(SUM(records), 0) FROM audit_blocks WHERE last_time_unix_ms < ?");
      if (!count.prepared()) return failure("preparing the count of expired audit records");
      count.bind(1, cutoff_unix_ms);
      if (count.step() != SQLITE_ROW) return failure("counting expired audit records");
      deleted = count.int64(0);
    }
    if (auto d = delete_where("DELETE FROM audit_blocks WHERE last_time_unix_ms < ?", cutoff_unix_ms,
                              "expired audit records");
        !d)
      return d.error();
    if (auto d = delete_where("DELETE FROM audit_request_ids WHERE time_unix_ms < ?", cutoff_unix_ms,
                              "expired audit request ids");
        !d)
      return d.error();
    struct Straddling {
      std::int64_t seq;
      std::vector<AuditRecord> newer;
    };
    std::vector<Straddling> straddling;
    {
      Statement s(db_, "SELECT seq, records_json FROM audit_blocks WHERE first_time_unix_ms < ?");
      if (!s.prepared()) return failure("preparing the trim of audit blocks");
      s.bind(1, cutoff_unix_ms);
      int rc = 0;
      while ((rc = s.step()) == SQLITE_ROW) {
        auto records = read_audit_block(s.int64(0), s.text_view(1));
        if (!records) return records.error();
        Straddling block{s.int64(0), {}};
        for (AuditRecord& r : *records) {
          if (r.time_unix_ms < cutoff_unix_ms) ++deleted;
          else block.newer.push_back(std::move(r));
        }
        straddling.push_back(std::move(block));
      }
      if (rc != SQLITE_DONE) return failure("reading audit blocks to trim");
    }
    for (const Straddling& block : straddling) {
      // The records of a block are in time order, so the newer ones stay one block.
      auto rewritten = make_audit_blocks(block.newer);
      Statement u(db_, "UPDATE audit_blocks SET first_time_unix_ms = ?, last_time_unix_ms = ?, records = ?, "
                       "endpoints = ?, status_classes = ?, records_json = ? WHERE seq = ?");
      if (!u.prepared()) return failure("preparing the trim of audit blocks");
      if (rewritten.size() != 1) return make_error(ErrorCode::internal, "state store: audit block " + std::to_string(block.seq) + " is not in time order");
      const AuditBlock& b = rewritten.front();
      u.bind(1, b.first_time_unix_ms).bind(2, b.last_time_unix_ms).bind(3, static_cast<std::int64_t>(b.records));
      u.bind(4, b.endpoints).bind(5, b.status_classes).bind(6, b.records_json).bind(7, block.seq);
      if (u.step() != SQLITE_DONE) return failure("trimming audit block " + std::to_string(block.seq));
    }
    return deleted;
  }

  /// Migration 5: the one-row-per-request audit table becomes blocks, oldest first, then goes.
  Status move_audit_rows_into_blocks() {
    constexpr int kRowsPerRead = 4096;
    std::int64_t after_seq = 0;
    for (;;) {
      std::vector<AuditRecord> rows;
      {
        Statement s(db_, std::string("SELECT seq, ") + kAuditColumns +
                             " FROM audit_requests WHERE seq > ? ORDER BY seq LIMIT ?");
        if (!s.prepared()) return failure("preparing to move audit records into blocks");
        s.bind(1, after_seq).bind(2, kRowsPerRead);
        int rc = 0;
        while ((rc = s.step()) == SQLITE_ROW) {
          after_seq = s.int64(0);
          rows.push_back(read_audit(s, 1));
        }
        if (rc != SQLITE_DONE) return failure("reading audit records to move into blocks");
      }
      if (rows.empty()) break;
      if (auto w = write_audit_blocks(rows); !w) return w;
    }
    insert_audit_block_.reset();
    insert_audit_request_id_.reset();
    return exec("DROP TABLE audit_requests", "dropping the audit table moved into blocks");
  }

  /// The one row `sql` (with one `?`) selects for `key`, read by `read`; nullopt when none.
  template <typename Key, typename Reader>
  auto find_one(const std::string& sql, const Key& key, Reader read, const std::string& what)
      -> Result<std::optional<decltype(read(std::declval<const Statement&>()))>> {
    using Row = decltype(read(std::declval<const Statement&>()));
    Statement s(db_, sql);
    if (!s.prepared()) return failure("preparing the lookup of " + what);
    s.bind(1, key);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return std::optional<Row>(read(s));
    if (rc != SQLITE_DONE) return failure("looking up " + what);
    return std::optional<Row>{};
  }

  /// Runs a DELETE with one `?` bound to `value`; returns how many rows went.
  template <typename Value>
  Result<std::int64_t> delete_where(const char* sql, const Value& value, const std::string& what) {
    Statement s(db_, sql);
    if (!s.prepared()) return failure("preparing the deletion of " + what);
    s.bind(1, value);
    if (s.step() != SQLITE_DONE) return failure("deleting " + what);
    return static_cast<std::int64_t>(sqlite3_changes(db_));
  }

  sqlite3* db_;
  std::unique_ptr<Statement> save_job_statement_;
  std::unique_ptr<Statement> insert_audit_block_;
  std::unique_ptr<Statement> insert_audit_request_id_;
};

} // namespace

std::filesystem::path sqlite_path(const std::filesystem::path& state_dir) { return state_dir / "tandem.db"; }

int latest_schema_version() { return kMigrations.back().version; }

Result<std::unique_ptr<StateStore>> open_sqlite_store(const std::filesystem::path& file) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return make_error(ErrorCode::internal, "cannot open state store " + file.string() + ": " + message);
  }
  auto store = std::make_unique<SqliteStore>(db);
  // WAL: readers (the admin API) never wait for the audit writer, and a crash loses at most
  // the transaction in progress. synchronous=NORMAL is durable across process crashes (kill
  // -9), which is what the audit trail promises; a power loss may lose the last commits.
  sqlite3_busy_timeout(db, 5000);
  // Pages stay SQLite's 4 KiB. 64 KiB pages (one audit block to a page) halved the audit
  // writer's kernel time per record at saturation, but every commit rewrites whole pages: at
  // 10 req/s the gateway wrote 1.09 MB/s to disk against 67 KB/s (bench/HISTORY.md).
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"}) {
    // Switching a new file to WAL takes a lock the busy timeout does not wait for; another
    // connection opening the same new store at the same moment makes it fail with "locked".
    auto s = store->exec(pragma, pragma);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!s && sqlite3_errcode(db) == SQLITE_BUSY && std::chrono::steady_clock::now() < give_up) {
      sqlite3_sleep(5);
      s = store->exec(pragma, pragma);
    }
    if (!s) {
      return make_error(ErrorCode::internal, "cannot open state store " + file.string() + ": " + s.error().message +
                                                 (sqlite3_errcode(db) == SQLITE_BUSY ? std::string()
                                                  : std::string(" (is it a tandem state database?)")));
    }
  }
  if (auto s = store->migrate(); !s) return s.error();
  return std::unique_ptr<StateStore>(std::move(store));
}

} // namespace tandem::registry
