#include "model/model_manifest.hpp"

#include "base/sha256.hpp"

#include <yaml-cpp/yaml.h>

#include <array>
#include <fstream>
#include <sstream>

namespace tandem {
namespace {

constexpr std::array<std::string_view, 13> kDataTypeNames = {
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
    "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"};

Result<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::not_found, "cannot read " + path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

Result<std::vector<TensorSpec>> parse_tensors(const YAML::Node& node, const std::string& where) {
  if (!node || !node.IsSequence() || node.size() == 0)
    return make_error(ErrorCode::invalid_request, where + ": expected a non-empty list of tensors");
  std::vector<TensorSpec> out;
  for (std::size_t i = 0; i < node.size(); ++i) {
    const auto& t = node[i];
    std::string at = where + "[" + std::to_string(i) + "]";
    if (!t.IsMap() || !t["name"] || !t["datatype"] || !t["shape"] || !t["shape"].IsSequence())
      return make_error(ErrorCode::invalid_request, at + ": needs name, datatype and shape");
    TensorSpec spec;
    spec.name = t["name"].as<std::string>();
    auto type = parse_datatype(t["datatype"].as<std::string>());
    if (!type)
      return make_error(ErrorCode::invalid_request,
                        at + ".datatype: unknown datatype \"" + t["datatype"].as<std::string>() + "\"");
    spec.datatype = *type;
    for (const auto& d : t["shape"]) {
      auto dim = d.as<std::int64_t>();
      if (dim < -1 || dim == 0)
        return make_error(ErrorCode::invalid_request, at + ".shape: dimensions are -1 or positive");
      spec.shape.push_back(dim);
    }
    out.push_back(std::move(spec));
  }
  return out;
}

} // namespace

std::string_view to_string(DataType type) { return kDataTypeNames[static_cast<std::size_t>(type)]; }

std::optional<DataType> parse_datatype(std::string_view text) {
  for (std::size_t i = 0; i < kDataTypeNames.size(); ++i)
    if (kDataTypeNames[i] == text) return static_cast<DataType>(i);
  return std::nullopt;
}

const TensorSpec* ModelSchema::find_input(std::string_view name) const {
  for (const auto& t : inputs)
    if (t.name == name) return &t;
  return nullptr;
}

const TensorSpec* ModelSchema::find_output(std::string_view name) const {
  for (const auto& t : outputs)
    if (t.name == name) return &t;
  return nullptr;
}

std::string model_version_digest(std::string_view manifest_sha256, std::string_view artifact_sha256) {
  std::string text = "tandem-model-version:1\nmanifest:";
  text.append(manifest_sha256).append("\nartifact:").append(artifact_sha256).append("\n");
  return sha256_hex(text);
}

Result<FileDigest> sha256_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::not_found, "cannot read " + path.string());
  Sha256 hash;
  FileDigest out;
  std::string buffer(1 << 20, '\0');
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto got = in.gcount();
    if (got <= 0) break;
    hash.update(std::string_view(buffer.data(), static_cast<std::size_t>(got)));
    out.bytes += got;
  }
  if (in.bad()) return make_error(ErrorCode::internal, "error reading " + path.string());
  out.sha256 = hash.hex_digest();
  return out;
}

namespace {

std::string scalar(const YAML::Node& node) { return node && node.IsScalar() ? node.as<std::string>() : std::string(); }

ModelLineage parse_lineage(const YAML::Node& node) {
  ModelLineage l;
  if (!node || !node.IsMap()) return l;
  if (const auto& d = node["dataset"]; d && d.IsMap()) {
    l.dataset_name = scalar(d["name"]);
    l.dataset_sha256 = scalar(d["sha256"]);
  } else {
    l.dataset_name = scalar(d);
  }
  l.training_code = scalar(node["training_code"]);
  l.parent = scalar(node["parent"]);
  if (const auto& t = node["tags"]; t && t.IsMap())
    for (const auto& item : t) l.tags[item.first.as<std::string>()] = scalar(item.second);
  return l;
}

Result<std::int64_t> batching_integer(const YAML::Node& node, const std::string& at, std::int64_t min,
                                       std::int64_t max) {
  std::int64_t value = 0;
  if (!node.IsScalar() || !YAML::convert<std::int64_t>::decode(node, value) || value < min || value > max)
    return make_error(ErrorCode::invalid_request,
                      at + ": expected an integer from " + std::to_string(min) + " to " + std::to_string(max));
  return value;
}

// Strict on purpose: a misspelt key would otherwise silently leave batching at its defaults.
Result<BatchingConfig> parse_batching(const YAML::Node& node, const ModelSchema& schema, const std::string& where) {
  const std::string at = where + ": batching";
  if (!node.IsMap())
    return make_error(ErrorCode::invalid_request, at + ": expected a map {max_batch_size, max_queue_delay_us}");
  if (schema.max_batch_size <= 0)
    return make_error(ErrorCode::invalid_request, at + ": needs max_batch_size > 0 at the top level (a batch dimension)");
  for (const auto& list : {&schema.inputs, &schema.outputs})
    for (const auto& tensor : *list)
      if (tensor.shape.empty() || tensor.shape[0] != -1)
        return make_error(ErrorCode::invalid_request, at + ": tensor \"" + tensor.name +
                                                          "\" has no variable first (batch) dimension");
  BatchingConfig config;
  bool has_rows = false;
  bool has_delay = false;
  for (const auto& item : node) {
    const std::string key = item.first.as<std::string>();
    if (key == "max_batch_size") {
      auto v = batching_integer(item.second, at + ".max_batch_size", 1, schema.max_batch_size);
      if (!v) return v.error();
      config.max_batch_size = *v;
      has_rows = true;
    } else if (key == "max_queue_delay_us") {
      auto v = batching_integer(item.second, at + ".max_queue_delay_us", 0, 1'000'000);
      if (!v) return v.error();
      config.max_queue_delay_us = *v;
      has_delay = true;
    } else if (key == "max_queue_size") {
      auto v = batching_integer(item.second, at + ".max_queue_size", 1, 1'000'000);
      if (!v) return v.error();
      config.max_queue_size = *v;
    } else {
      return make_error(ErrorCode::invalid_request,
                        at + "." + key + ": unknown key (expected max_batch_size, max_queue_delay_us, max_queue_size)");
    }
  }
  if (!has_rows) return make_error(ErrorCode::invalid_request, at + ".max_batch_size: required");
  if (!has_delay) return make_error(ErrorCode::invalid_request, at + ".max_queue_delay_us: required");
  return config;
}

} // namespace

Result<ModelManifest> parse_model_manifest(const std::string& text, const std::filesystem::path& directory,
                                           const std::string& where) {
  try {
    YAML::Node root = YAML::Load(text);
    ModelManifest m;
    m.directory = std::filesystem::absolute(directory).lexically_normal();
    if (!root.IsMap() || !root["name"] || !root["artifact"])
      return make_error(ErrorCode::invalid_request, where + ": needs name and artifact");
    m.name = root["name"].as<std::string>();
    m.format = root["format"] ? root["format"].as<std::string>() : "onnx";
    m.artifact_name = root["artifact"].as<std::string>();
    m.artifact = m.directory / m.artifact_name;
    auto inputs = parse_tensors(root["inputs"], where + ": inputs");
    if (!inputs) return inputs.error();
    auto outputs = parse_tensors(root["outputs"], where + ": outputs");
    if (!outputs) return outputs.error();
    m.schema.inputs = std::move(*inputs);
    m.schema.outputs = std::move(*outputs);
    if (root["max_batch_size"]) m.schema.max_batch_size = root["max_batch_size"].as<std::int64_t>();
    m.lineage = parse_lineage(root["lineage"]);
    if (const auto& service = root["service_ms"]; service && !service.IsNull()) {
      double ms = 0;
      if (!service.IsScalar() || !YAML::convert<double>::decode(service, ms) || !(ms > 0 && ms < 3'600'000))
        return make_error(ErrorCode::invalid_request,
                          where + ": service_ms: expected milliseconds per request, above 0 and below 3600000");
      m.declared_service_ms = ms;
    }
    if (const auto& batching = root["batching"]; batching && !batching.IsNull()) {
      auto config = parse_batching(batching, m.schema, where);
      if (!config) return config.error();
      m.batching = *config;
    }
    return m;
  } catch (const YAML::Exception& e) {
    return make_error(ErrorCode::invalid_request, where + ": " + e.what());
  }
}

Status check_artifact_inside(const ModelManifest& manifest, const std::string& where) {
  std::error_code ec;
  const auto directory = std::filesystem::weakly_canonical(manifest.directory, ec);
  if (ec)
    return make_error(ErrorCode::invalid_request, where + ": artifact: cannot resolve the model directory " +
                                                      manifest.directory.string() + ": " + ec.message());
  const auto artifact = std::filesystem::weakly_canonical(manifest.artifact, ec);
  if (ec)
    return make_error(ErrorCode::invalid_request, where + ": artifact: cannot resolve \"" +
                                                      manifest.artifact_name + "\": " + ec.message());
  // Inside means a proper descendant: a relative path from the directory that never climbs.
  const auto relative = artifact.lexically_relative(directory);
  if (relative.empty() || *relative.begin() == ".." || relative == ".")
    return make_error(ErrorCode::invalid_request, where + ": artifact: \"" + manifest.artifact_name +
                                                      "\" resolves to " + artifact.string() +
                                                      ", outside the model directory " + directory.string());
  return Ok{};
}

Result<ModelManifest> load_model_manifest(const std::filesystem::path& directory) {
  auto manifest_path = directory / "tandem-model.yaml";
  auto text = read_file(manifest_path);
  if (!text)
    return make_error(ErrorCode::not_found, "model directory " + directory.string() +
                                                " has no readable tandem-model.yaml");
  const std::string where = manifest_path.string();
  auto m = parse_model_manifest(*text, directory, where);
  if (!m) return m;
  if (auto inside = check_artifact_inside(*m, where); !inside) return inside.error();
  auto artifact = sha256_file(m->artifact);
  if (!artifact)
    return make_error(ErrorCode::not_found, where + ": artifact " + m->artifact.string() + " is not readable");
  m->manifest_sha256 = sha256_hex(*text);
  m->artifact_sha256 = artifact->sha256;
  m->digest = model_version_digest(m->manifest_sha256, m->artifact_sha256);
  m->version = m->digest.substr(0, 12);
  return m;
}

} // namespace tandem
