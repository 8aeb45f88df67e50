#pragma once
// The model registry: immutable, content-addressed model versions with lineage. Artifacts live
// once each in a content-addressed blob directory; every version gets a read-only model
// directory (tandem-model.yaml + the artifact, hard-linked to its blob) that a worker loads.
//
//   STATE/blobs/sha256/ab/abcdef...        artifact bytes, named by their sha256
//   STATE/models/NAME/VERSION/             tandem-model.yaml + artifact, for workers
#include "core/config.hpp"
#include "registry/model_manifest.hpp"
#include "registry/state_store.hpp"

#include <filesystem>
#include <functional>

namespace tandem::registry {

/// Content-addressed files. Thread-compatible: a blob is written to a temporary name and
/// renamed into place, so concurrent writers of the same content are harmless.
class BlobStore {
public:
  explicit BlobStore(const std::filesystem::path& state_dir);
  [[nodiscard]] std::filesystem::path path_of(std::string_view sha256_hex) const;
  [[nodiscard]] bool contains(std::string_view sha256_hex) const;
  /// Stores `bytes` if their sha256 is `expected_sha256`; 400 on a mismatch. Idempotent.
  Status put(std::string_view bytes, std::string_view expected_sha256);

private:
  std::filesystem::path root_;
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
  ModelRegistry(StateStore& store, std::filesystem::path state_dir, std::function<std::int64_t()> now_unix_ms);

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
  /// The model directory a worker loads for this version.
  [[nodiscard]] std::filesystem::path version_directory(const ModelVersionRecord& record) const;

private:
  Status materialize(const ModelVersionRecord& record);

  StateStore& store_;
  std::function<Status(const ModelManifest&)> artifact_check_;
  std::filesystem::path state_dir_;
  BlobStore blobs_;
  std::function<std::int64_t()> now_unix_ms_;
};

} // namespace tandem::registry
