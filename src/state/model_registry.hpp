#pragma once
// The model registry: immutable, content-addressed model versions with lineage. Artifacts live
// once each in a content-addressed blob directory; every version gets a read-only model
// directory (tandem-model.yaml + the artifact, hard-linked to its blob) that a worker loads.
//
//   STATE/blobs/sha256/ab/abcdef...        artifact bytes, named by their sha256
//   STATE/models/NAME/VERSION/             tandem-model.yaml + artifact, for workers
#include "config/config.hpp"
#include "model/model_manifest.hpp"
#include "state/state_store.hpp"

#include <filesystem>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <vector>

namespace tandem::registry {

struct BlobInfo {
  std::string sha256;
  std::uint64_t bytes = 0;
  std::int64_t modified_unix_ms = 0;  // stored, or last uploaded again
};

/// Content-addressed files, with a quota on their total bytes. Thread-compatible: a blob is
/// written to a temporary name and renamed into place, so concurrent writers of the same content
/// are harmless. The totals are counted at construction and kept as blobs come and go (one
/// server owns a state directory).
class BlobStore {
public:
  static constexpr std::uint64_t kDefaultMaxTotalBytes = 64ULL << 30;

  explicit BlobStore(const std::filesystem::path& state_dir, std::uint64_t max_total_bytes = kDefaultMaxTotalBytes);
  [[nodiscard]] std::filesystem::path path_of(std::string_view sha256_hex) const;
  [[nodiscard]] bool contains(std::string_view sha256_hex) const;
  /// Stores `bytes` if their sha256 is `expected_sha256`: 400 on a mismatch, 507 when a new blob
  /// would take the total past the quota. Idempotent; storing a blob that is present renews its
  /// time, so the sweep never takes a blob between its upload and the push that uses it.
  Status put(std::string_view bytes, std::string_view expected_sha256);
  /// Every blob, by sha256.
  [[nodiscard]] std::vector<BlobInfo> list() const;
  /// Removes a blob (not_found when absent). Version directories keep their hard links.
  Status remove(std::string_view sha256_hex);
  /// Removes temporary files a crashed upload left, older than `cutoff_unix_ms`; how many.
  std::int64_t remove_stale_temporaries(std::int64_t cutoff_unix_ms);
  [[nodiscard]] std::uint64_t total_bytes() const { return total_bytes_; }
  [[nodiscard]] std::int64_t count() const { return count_; }
  [[nodiscard]] std::uint64_t max_total_bytes() const { return max_total_bytes_; }
  /// Uploads refused because of the quota, since start.
  [[nodiscard]] std::int64_t refused_for_quota() const { return refused_for_quota_; }

private:
  std::filesystem::path root_;
  std::uint64_t max_total_bytes_;
  std::int64_t refused_for_quota_ = 0;
  std::uint64_t total_bytes_ = 0;
  std::int64_t count_ = 0;
};

struct BlobSweep {
  std::int64_t removed = 0;
  std::uint64_t removed_bytes = 0;
  std::int64_t temporaries_removed = 0;
};

/// A lowercase 64-digit hex string.
bool is_sha256_hex(std::string_view text);

struct PushRequest {
  std::string name;
  std::string manifest_text;
  std::string artifact_sha256;
  std::map<std::string, std::string> tags;  // merged over the manifest's lineage tags
  std::string parent;                       // NAME@VERSION; default: the name's latest version
  std::string dataset_name;                 // override the manifest's lineage
  std::string dataset_sha256;
  std::string training_code;
  std::string pushed_by;
};

struct PushResult {
  ModelVersionRecord record;
  bool created = false;  // false: identical content was already there (a no-op)
};

/// Not thread-safe; used from the thread that owns `store`.
class ModelRegistry {
public:
  /// `now_unix_ms` stamps created times (time comes in; tests pass a fixed one).
  ModelRegistry(StateStore& store, std::filesystem::path state_dir, std::function<std::int64_t()> now_unix_ms,
                std::uint64_t max_blob_bytes = BlobStore::kDefaultMaxTotalBytes);

  /// Run at push on the parsed manifest, its `artifact` pointing at the uploaded blob: a
  /// version whose artifact fails it is refused (invalid_request, "artifact: <reason>"). The
  /// composition root passes the reference engine's check; none by default.
  void set_artifact_check(std::function<Status(const ModelManifest&)> check) { artifact_check_ = std::move(check); }

  [[nodiscard]] BlobStore& blobs() { return blobs_; }
  /// Creates a version, or returns the existing one for identical content. Errors:
  /// invalid_request (bad name/manifest, artifact blob not uploaded), conflict (identical
  /// content already registered with different lineage or tags: versions are immutable).
  Result<PushResult> push(const PushRequest& request);
  /// NAME@latest or NAME@VERSION (a unique prefix of at least 6 digits); not_found if absent.
  Result<ModelVersionRecord> resolve(const ModelRef& ref);
  /// Every blob a version uses, mapped to those versions (NAME@VERSION, sorted).
  Result<std::map<std::string, std::vector<std::string>>> blob_users();
  /// The versions whose artifact is this blob, as NAME@VERSION, sorted.
  Result<std::vector<std::string>> versions_using_blob(std::string_view sha256_hex);
  /// Deletes a blob no version uses: not_found when absent, conflict naming the versions that
  /// use it (a version is immutable, so its artifact stays while it exists).
  Status delete_blob(std::string_view sha256_hex);
  /// Deletes every blob no version uses that was stored (or last uploaded) at least `grace_ms`
  /// ago, and temporaries a crashed upload left. The grace covers a push between its upload and
  /// its version.
  Result<BlobSweep> sweep_unused_blobs(std::int64_t grace_ms);
  /// What every sweep and delete_blob() removed since start.
  [[nodiscard]] const BlobSweep& blobs_removed() const { return removed_; }
  /// The model directory a worker loads for this version.
  [[nodiscard]] std::filesystem::path version_directory(const ModelVersionRecord& record) const;

private:
  Status materialize(const ModelVersionRecord& record);

  StateStore& store_;
  std::function<Status(const ModelManifest&)> artifact_check_;
  std::filesystem::path state_dir_;
  BlobStore blobs_;
  BlobSweep removed_;
  std::function<std::int64_t()> now_unix_ms_;
};

} // namespace tandem::registry
