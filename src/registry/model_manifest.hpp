#pragma once
// A model directory: tandem-model.yaml (schema + lineage) plus its artifact. The version id
// is content-addressed: sha256 over the manifest bytes and the artifact bytes.
#include "core/status.hpp"

#include <cstdint>
#include <filesystem>
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

struct ModelManifest {
  std::string name;
  std::string format;  // "onnx"
  std::filesystem::path directory;
  std::filesystem::path artifact;  // absolute
  ModelSchema schema;
  std::string digest;   // sha256 hex of manifest + artifact
  std::string version;  // first 12 hex digits of digest, as shown to clients
};

/// Reads DIR/tandem-model.yaml and hashes the artifact. Errors name the file and the key.
Result<ModelManifest> load_model_manifest(const std::filesystem::path& directory);

} // namespace tandem
