#pragma once
// The state store: everything tandem must remember across restarts (model versions,
// deployments, the audit trail). One interface; SQLite is the embedded implementation and
// PostgreSQL comes later behind the same calls, so the SQL stays portable and nothing here
// leaks an engine's types.
#include "base/status.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace tandem::registry {

/// An immutable, content-addressed model version. `version` is the first 12 hex digits of
/// `digest` (the full sha256 id); both identify it.
struct ModelVersionRecord {
  std::string name;
  std::string version;
  std::string digest;
  std::string manifest_sha256;
  std::string artifact_sha256;
  std::string artifact_name;  // file name the manifest gives the artifact
  std::int64_t artifact_bytes = 0;
  std::string format;
  std::string manifest_text;  // tandem-model.yaml as pushed
  // Lineage.
  std::string dataset_name;
  std::string dataset_sha256;
  std::string training_code;
  std::string parent_version;  // NAME@VERSION or empty
  std::map<std::string, std::string> tags;
  std::int64_t created_unix_ms = 0;
  std::string pushed_by;
};

struct ModelSummary {
  std::string name;
  std::string latest_version;
  std::int64_t versions = 0;
  std::int64_t updated_unix_ms = 0;
};

enum class InsertOutcome { created, already_exists };

/// Which model version an endpoint was started with, recorded at deploy time.
struct DeploymentRecord {
  std::string endpoint;
  std::string model_ref;  // as configured: a directory, NAME@VERSION or NAME@latest
  std::string model_name;
  std::string version;
  std::int64_t deployed_unix_ms = 0;
};

/// One inference request, as answered.
struct AuditRecord {
  /// Made by the gateway, unique: the record's key (a client cannot choose it).
  std::string request_id;
  std::string trace_id;
  std::int64_t time_unix_ms = 0;  // when the request arrived
  std::string endpoint;
  std::string model_version;
  std::string input_sha256;
  std::string tier;  // dedicated | serverless | none
  std::string worker;
  int status = 0;
  std::string error_code;  // empty on success
  int attempts = 0;
  double queue_ms = 0;
  double cold_start_ms = 0;
  double upstream_ms = 0;
  double total_ms = 0;
  double cost_usd = 0;
  /// The x-request-id the client sent, if any: echoed and searchable, never a key.
  std::string client_request_id;
};

struct AuditQuery {
  std::string endpoint;             // empty: any
  std::int64_t since_unix_ms = 0;   // records at or after
  std::int64_t before_unix_ms = 0;  // 0: no upper bound (exclusive)
  int status = 0;                   // 0: any; 100..599 exact; 1..5 a class (2 = 2xx)
  int limit = 100;
  bool oldest_first = false;
};

/// One entry of a rollout's history: started, step, analysis, approval, pause, promote,
/// rollback, abort.
struct RolloutEvent {
  std::string endpoint;
  std::string rollout_id;
  std::int64_t time_unix_ms = 0;
  std::string kind;
  std::string from_version;
  std::string to_version;
  int canary_percent = 0;
  std::string detail;  // a sentence, or JSON for analyses
  std::string actor;   // who, for operator actions; "tandem" for automatic ones
};

/// An asynchronous job (RunPod style). Times are Unix ms; 0 means "not yet".
struct JobRecord {
  std::string id;
  std::string endpoint;
  std::string status;      // IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED, TIMED_OUT
  std::string input_json;  // the job's `input`, as received; written once, with the first save
  std::string webhook;     // empty: none
  bool low_priority = false;
  std::int64_t execution_timeout_ms = 0;
  std::int64_t ttl_ms = 0;
  std::int64_t created_unix_ms = 0;
  std::int64_t queued_unix_ms = 0;  // entered the queue last (acceptance, recovery or retry)
  std::int64_t started_unix_ms = 0;
  std::int64_t finished_unix_ms = 0;
  std::string output_json;  // COMPLETED: the output
  std::string error;        // FAILED, TIMED_OUT, CANCELLED: why
  std::string worker;
  double cost_usd = 0;
  int retries = 0;     // `retry` calls
  int executions = 0;  // times started (more than one after a crash: at-least-once)
  std::string webhook_state;  // "" (none), pending, delivered, failed
  int webhook_attempts = 0;
};

/// A connection to the state store. Not thread-safe: one per thread. Several connections to
/// the same store may be used at once from different threads (the audit writer has its own).
/// Calls block on the database: keep them off the request path.
class StateStore {
public:
  virtual ~StateStore() = default;

  /// The schema version this store is at (the highest migration applied).
  virtual Result<int> schema_version() = 0;

  virtual Result<InsertOutcome> insert_model_version(const ModelVersionRecord& record) = 0;
  /// `version` is the 12-digit version, the full digest, or a unique prefix (>= 6 digits).
  virtual Result<std::optional<ModelVersionRecord>> find_model_version(const std::string& name,
                                                                       const std::string& version) = 0;
  virtual Result<std::optional<ModelVersionRecord>> latest_model_version(const std::string& name) = 0;
  /// Newest first.
  virtual Result<std::vector<ModelVersionRecord>> list_model_versions(const std::string& name) = 0;
  virtual Result<std::vector<ModelSummary>> list_models() = 0;

  virtual Status record_deployment(const DeploymentRecord& record) = 0;
  virtual Result<std::vector<DeploymentRecord>> list_deployments(const std::string& endpoint, int limit) = 0;

  virtual Status append_rollout_event(const RolloutEvent& event) = 0;
  /// Newest first; `endpoint` empty: all.
  virtual Result<std::vector<RolloutEvent>> list_rollout_events(const std::string& endpoint, int limit) = 0;

  /// Appends all records in one transaction: all or none.
  virtual Status append_audit(std::span<const AuditRecord> records) = 0;
  virtual Result<std::vector<AuditRecord>> query_audit(const AuditQuery& query) = 0;
  /// The record whose own id is `request_id`.
  virtual Result<std::optional<AuditRecord>> find_audit(const std::string& request_id) = 0;
  /// The records a client sent with this x-request-id, newest first, at most `limit`.
  virtual Result<std::vector<AuditRecord>> find_audit_by_client_id(const std::string& client_request_id,
                                                                   int limit) = 0;
  /// Deletes records older than the cutoff; returns how many.
  virtual Result<std::int64_t> delete_audit_before(std::int64_t cutoff_unix_ms) = 0;

  /// Runs `work` in one write transaction: committed when it succeeds, rolled back otherwise.
  virtual Status in_transaction(const std::function<Status()>& work) = 0;
  /// Inserts the job, or updates everything but its input when it exists. `with_input` false
  /// leaves the stored input alone (so a state change does not rewrite a large input).
  virtual Status save_job(const JobRecord& job, bool with_input) = 0;
  /// Jobs not finished, or finished at or after the cutoff, oldest first. Inputs are read only
  /// for unfinished jobs (a retry reads a finished job's input with find_job).
  virtual Result<std::vector<JobRecord>> load_jobs(std::int64_t finished_since_unix_ms) = 0;
  virtual Result<std::optional<JobRecord>> find_job(const std::string& id) = 0;
  /// Deletes jobs finished before the cutoff (their results expired); returns how many.
  virtual Result<std::int64_t> delete_jobs_finished_before(std::int64_t cutoff_unix_ms) = 0;
  virtual Status delete_job(const std::string& id) = 0;
};

} // namespace tandem::registry
