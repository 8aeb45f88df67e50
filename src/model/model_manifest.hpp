#pragma once
// A model directory: tandem-model.yaml (schema + lineage) plus its artifact. The version id
// is content-addressed: sha256 over the manifest bytes and the artifact bytes.
#include "base/status.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

enum class DataType { BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES };

std::string_view to_string(DataType type);
std::optional<DataType> parse_datatype(std::string_view text);

struct TensorSpec {
  std::string name;
  DataType datatype = DataType::FP32;
  std::vector<std::int64_t> shape;  // -1 marks a variable dimension (the batch, first)
};

struct ModelSchema {
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  std::int64_t max_batch_size = 0;  // 0: first dimension is not a batch dimension
  [[nodiscard]] const TensorSpec* find_input(std::string_view name) const;
  [[nodiscard]] const TensorSpec* find_output(std::string_view name) const;
};

/// Where a model came from, as tandem-model.yaml's `lineage:` declares it (all optional).
struct ModelLineage {
  std::string dataset_name;
  std::string dataset_sha256;
  std::string training_code;
  std::string parent;  // NAME@VERSION
  std::map<std::string, std::string> tags;
};

/// Dynamic batching (Triton style), as tandem-model.yaml's optional `batching:` section declares
/// it: the worker merges concurrent compatible requests into one engine call of at most
/// `max_batch_size` rows, dispatched when full or when the oldest request has waited
/// `max_queue_delay_us`.
struct BatchingConfig {
  std::int64_t max_batch_size = 0;      // rows per engine call; <= the schema's max_batch_size
  std::int64_t max_queue_delay_us = 0;  // 0: dispatch as soon as the io loop is idle
  std::int64_t max_queue_size = 1024;   // requests waiting; more are refused with 503
};

struct ModelManifest {
  std::string name;
  std::string format;  // "onnx"
  std::filesystem::path directory;
  std::filesystem::path artifact;  // absolute
  std::string artifact_name;  // as the manifest names it, relative to `directory`
  ModelSchema schema;
  ModelLineage lineage;
  std::optional<BatchingConfig> batching;  // absent: no dynamic batching
  /// `service_ms:` the model's own estimate of one request on a worker, in ms: the router's
  /// prior until a worker reports or the pool measures one; 0: none declared.
  double declared_service_ms = 0;
  std::string manifest_sha256;
  std::string artifact_sha256;
  std::string digest;   // the version id: model_version_digest(manifest_sha256, artifact_sha256)
  std::string version;  // first 12 hex digits of digest, as shown to clients
};

/// The content address of a model version: sha256 over the sha256 of tandem-model.yaml and the
/// sha256 of the artifact, so the registry can compute it from stored blobs without rereading
/// them, and a directory and its pushed copy get the same version.
std::string model_version_digest(std::string_view manifest_sha256, std::string_view artifact_sha256);

/// Parses tandem-model.yaml text (schema, artifact name, lineage); reads no files and leaves
/// the hashes empty. `where` names the source in errors.
Result<ModelManifest> parse_model_manifest(const std::string& text, const std::filesystem::path& directory,
                                           const std::string& where);

/// The manifest's `artifact`, after following symlinks, must lie inside its model directory
/// (so `artifact: ../../etc/passwd` is refused before anything is read or uploaded).
/// invalid_request naming `artifact` otherwise.
Status check_artifact_inside(const ModelManifest& manifest, const std::string& where);

/// Reads DIR/tandem-model.yaml and hashes the artifact. Errors name the file and the key.
Result<ModelManifest> load_model_manifest(const std::filesystem::path& directory);

/// sha256 of a file, read in pieces. Also returns its size.
struct FileDigest {
  std::string sha256;
  std::int64_t bytes = 0;
};
Result<FileDigest> sha256_file(const std::filesystem::path& path);

} // namespace tandem
