#include "state/model_registry.hpp"

#include "base/sha256.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <fstream>
#include <system_error>

#include <unistd.h>

namespace tandem::registry {

namespace fs = std::filesystem;

bool is_sha256_hex(std::string_view text) {
  return text.size() == 64 &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

namespace {

std::int64_t unix_ms_of(fs::file_time_type t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::file_clock::to_sys(t).time_since_epoch())
      .count();
}

bool is_temporary_name(const std::string& name) { return name.find(".tmp-") != std::string::npos; }

} // namespace

BlobStore::BlobStore(const fs::path& state_dir, std::uint64_t max_total_bytes)
    : root_(state_dir / "blobs" / "sha256"), max_total_bytes_(max_total_bytes) {
  for (const auto& blob : list()) {
    total_bytes_ += blob.bytes;
    ++count_;
  }
}

std::vector<BlobInfo> BlobStore::list() const {
  std::vector<BlobInfo> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!is_sha256_hex(name) || !it->is_regular_file(ec)) continue;
    BlobInfo info;
    info.sha256 = name;
    info.bytes = it->file_size(ec);
    info.modified_unix_ms = unix_ms_of(it->last_write_time(ec));
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(), [](const BlobInfo& a, const BlobInfo& b) { return a.sha256 < b.sha256; });
  return out;
}

Status BlobStore::remove(std::string_view sha256_hex) {
  if (!contains(sha256_hex)) return make_error(ErrorCode::not_found, "no blob sha256:" + std::string(sha256_hex));
  std::error_code ec;
  const fs::path path = path_of(sha256_hex);
  const auto bytes = fs::file_size(path, ec);
  if (!fs::remove(path, ec) || ec)
    return make_error(ErrorCode::internal, "cannot remove " + path.string() + ": " + ec.message());
  total_bytes_ -= std::min<std::uint64_t>(total_bytes_, bytes);
  --count_;
  return Ok{};
}

std::int64_t BlobStore::remove_stale_temporaries(std::int64_t cutoff_unix_ms) {
  std::vector<fs::path> stale;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    if (is_temporary_name(it->path().filename().string()) && it->is_regular_file(ec) &&
        unix_ms_of(it->last_write_time(ec)) <= cutoff_unix_ms)
      stale.push_back(it->path());
  }
  std::int64_t removed = 0;
  for (const auto& path : stale) removed += fs::remove(path, ec) ? 1 : 0;
  return removed;
}

fs::path BlobStore::path_of(std::string_view sha256_hex) const {
  return root_ / std::string(sha256_hex.substr(0, 2)) / std::string(sha256_hex);
}

bool BlobStore::contains(std::string_view sha256_hex) const {
  std::error_code ec;
  return is_sha256_hex(sha256_hex) && fs::is_regular_file(path_of(sha256_hex), ec);
}

namespace {

// Writes `bytes` to a temporary file beside `target`, flushes it to disk, and renames it into
// place, so a reader never sees a half-written file and a crash leaves no partial one.
Status write_atomically(const fs::path& target, std::string_view bytes, fs::perms perms) {
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) return make_error(ErrorCode::internal, "cannot create " + target.parent_path().string() + ": " + ec.message());
  // Unique per process and call: concurrent writers of the same file never share a temporary.
  static std::atomic<std::uint64_t> sequence{0};
  const fs::path temporary =
      target.string() + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(sequence.fetch_add(1));
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      fs::remove(temporary, ec);
      return make_error(ErrorCode::internal, "cannot write " + temporary.string() + " (disk full?)");
    }
  }
  fs::permissions(temporary, perms, ec);
  fs::rename(temporary, target, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::remove(temporary, ec);
    return make_error(ErrorCode::internal, "cannot move " + temporary.string() + " into place: " + why);
  }
  return Ok{};
}

std::string join_tags(const std::map<std::string, std::string>& tags) {
  std::string out;
  for (const auto& [k, v] : tags) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out;
}

} // namespace

Status BlobStore::put(std::string_view bytes, std::string_view expected_sha256) {
  if (!is_sha256_hex(expected_sha256))
    return make_error(ErrorCode::invalid_request, "blob id must be sha256:<64 lowercase hex digits>");
  const std::string actual = sha256_hex(bytes);
  if (actual != expected_sha256)
    return make_error(ErrorCode::invalid_request, "blob content has sha256 " + actual + ", not the " +
                                                      std::string(expected_sha256) + " it was uploaded as");
  std::error_code ec;
  if (contains(expected_sha256)) {
    fs::last_write_time(path_of(expected_sha256), fs::file_time_type::clock::now(), ec);
    return Ok{};
  }
  if (total_bytes_ + bytes.size() > max_total_bytes_) {
    ++refused_for_quota_;
    return make_error(ErrorCode::insufficient_storage,
                      "blob store full: " + std::to_string(total_bytes_) + " of server.registry.max_blob_bytes (" +
                          std::to_string(max_total_bytes_) + ") bytes used, this blob is " +
                          std::to_string(bytes.size()) + " (GET /admin/v1/blobs lists them and the versions using each; DELETE one no version uses)");
  }
  auto written = write_atomically(path_of(expected_sha256), bytes,
                                  fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  if (!written) return written;
  total_bytes_ += bytes.size();
  ++count_;
  return Ok{};
}

ModelRegistry::ModelRegistry(StateStore& store, fs::path state_dir, std::function<std::int64_t()> now_unix_ms,
                             std::uint64_t max_blob_bytes)
    : store_(store), state_dir_(std::move(state_dir)), blobs_(state_dir_, max_blob_bytes),
      now_unix_ms_(std::move(now_unix_ms)) {}

Result<std::map<std::string, std::vector<std::string>>> ModelRegistry::blob_users() {
  auto models = store_.list_models();
  if (!models) return models.error();
  std::map<std::string, std::vector<std::string>> users;
  for (const auto& model : *models) {
    auto versions = store_.list_model_versions(model.name);
    if (!versions) return versions.error();
    for (const auto& v : *versions) users[v.artifact_sha256].push_back(v.name + "@" + v.version);
  }
  for (auto& [sha, names] : users) std::sort(names.begin(), names.end());
  return users;
}

Result<std::vector<std::string>> ModelRegistry::versions_using_blob(std::string_view sha256_hex) {
  auto users = blob_users();
  if (!users) return users.error();
  auto it = users->find(std::string(sha256_hex));
  return it == users->end() ? std::vector<std::string>{} : it->second;
}

Status ModelRegistry::delete_blob(std::string_view sha256_hex) {
  if (!blobs_.contains(sha256_hex)) return make_error(ErrorCode::not_found, "no blob sha256:" + std::string(sha256_hex));
  auto users = versions_using_blob(sha256_hex);
  if (!users) return users.error();
  if (!users->empty()) {
    std::string names;
    for (const auto& name : *users) names += (names.empty() ? "" : ", ") + name;
    return make_error(ErrorCode::conflict, "blob sha256:" + std::string(sha256_hex) + " is the artifact of " +
                                               std::to_string(users->size()) + " version(s): " + names +
                                               " (versions are immutable; their artifacts stay)");
  }
  std::error_code ec;
  const auto bytes = fs::file_size(blobs_.path_of(sha256_hex), ec);
  auto removed = blobs_.remove(sha256_hex);
  if (removed) {
    ++removed_.removed;
    removed_.removed_bytes += bytes;
  }
  return removed;
}

Result<BlobSweep> ModelRegistry::sweep_unused_blobs(std::int64_t grace_ms) {
  auto users = blob_users();
  if (!users) return users.error();
  const std::int64_t cutoff = now_unix_ms_() - grace_ms;
  BlobSweep sweep;
  for (const auto& blob : blobs_.list()) {
    if (users->count(blob.sha256) != 0 || blob.modified_unix_ms > cutoff) continue;
    if (blobs_.remove(blob.sha256)) {
      ++sweep.removed;
      sweep.removed_bytes += blob.bytes;
    }
  }
  sweep.temporaries_removed = blobs_.remove_stale_temporaries(cutoff);
  removed_.removed += sweep.removed;
  removed_.removed_bytes += sweep.removed_bytes;
  removed_.temporaries_removed += sweep.temporaries_removed;
  return sweep;
}

fs::path ModelRegistry::version_directory(const ModelVersionRecord& record) const {
  return state_dir_ / "models" / record.name / record.version;
}

Status ModelRegistry::materialize(const ModelVersionRecord& record) {
  const fs::path dir = version_directory(record);
  std::error_code ec;
  const fs::path artifact = dir / record.artifact_name;
  if (fs::is_regular_file(dir / "tandem-model.yaml", ec) && fs::is_regular_file(artifact, ec)) return Ok{};
  fs::create_directories(dir, ec);
  if (ec) return make_error(ErrorCode::internal, "cannot create " + dir.string() + ": " + ec.message());
  if (!fs::exists(artifact, ec)) {
    // A hard link costs no space; a copy is the fallback across file systems.
    fs::create_hard_link(blobs_.path_of(record.artifact_sha256), artifact, ec);
    if (ec) {
      ec.clear();
      fs::copy_file(blobs_.path_of(record.artifact_sha256), artifact, ec);
      if (ec) return make_error(ErrorCode::internal, "cannot place artifact in " + dir.string() + ": " + ec.message());
    }
  }
  return write_atomically(dir / "tandem-model.yaml", record.manifest_text,
                          fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
}

Result<PushResult> ModelRegistry::push(const PushRequest& request) {
  if (!is_valid_model_name(request.name))
    return make_error(ErrorCode::invalid_request,
                      "name: \"" + request.name + "\" is not a valid model name (1-64 of A-Z a-z 0-9 . _ -)");
  if (request.manifest_text.size() > (1u << 20))
    return make_error(ErrorCode::payload_too_large, "manifest: larger than 1 MiB");
  if (!is_sha256_hex(request.artifact_sha256))
    return make_error(ErrorCode::invalid_request, "artifact_sha256: expected 64 lowercase hex digits");
  auto manifest = parse_model_manifest(request.manifest_text, state_dir_, "manifest");
  if (!manifest) return manifest.error();
  const std::string& artifact_name = manifest->artifact_name;
  if (artifact_name.empty() || artifact_name.find('/') != std::string::npos || artifact_name == "." ||
      artifact_name == ".." || artifact_name == "tandem-model.yaml")
    return make_error(ErrorCode::invalid_request,
                      "manifest: artifact must be a plain file name beside tandem-model.yaml, got \"" + artifact_name + "\"");
  if (!blobs_.contains(request.artifact_sha256))
    return make_error(ErrorCode::invalid_request, "artifact sha256:" + request.artifact_sha256 +
                                                      " has not been uploaded: PUT /admin/v1/blobs/sha256:" +
                                                      request.artifact_sha256 + " first");
  if (artifact_check_) {
    ModelManifest checked = *manifest;
    checked.artifact = blobs_.path_of(request.artifact_sha256);
    if (auto ok = artifact_check_(checked); !ok)
      return make_error(ErrorCode::invalid_request, "artifact: " + ok.error().message);
  }
  if (!request.parent.empty() && !parse_model_ref(request.parent))
    return make_error(ErrorCode::invalid_request, "parent: expected NAME@VERSION, got \"" + request.parent + "\"");

  ModelVersionRecord r;
  r.name = request.name;
  r.manifest_sha256 = sha256_hex(request.manifest_text);
  r.artifact_sha256 = request.artifact_sha256;
  r.digest = model_version_digest(r.manifest_sha256, r.artifact_sha256);
  r.version = r.digest.substr(0, 12);
  r.artifact_name = artifact_name;
  std::error_code ec;
  r.artifact_bytes = static_cast<std::int64_t>(fs::file_size(blobs_.path_of(r.artifact_sha256), ec));
  r.format = manifest->format;
  r.manifest_text = request.manifest_text;
  const auto& lineage = manifest->lineage;
  r.dataset_name = request.dataset_name.empty() ? lineage.dataset_name : request.dataset_name;
  r.dataset_sha256 = request.dataset_sha256.empty() ? lineage.dataset_sha256 : request.dataset_sha256;
  r.training_code = request.training_code.empty() ? lineage.training_code : request.training_code;
  r.tags = lineage.tags;
  for (const auto& [k, v] : request.tags) r.tags[k] = v;
  r.pushed_by = request.pushed_by.empty() ? "unknown" : request.pushed_by;
  r.created_unix_ms = now_unix_ms_();

  auto existing = store_.find_model_version(r.name, r.digest);
  if (!existing) return existing.error();
  if (*existing) {
    // Identical content: a no-op, unless the push asks for different lineage, which would
    // be a change to an immutable version.
    const auto& e = **existing;
    auto differs = [&](const char* field, const std::string& asked, const std::string& stored) -> std::optional<Error> {
      if (asked.empty() || asked == stored) return std::nullopt;
      return make_error(ErrorCode::conflict, "model version " + e.name + "@" + e.version + " already exists with " +
                                                 field + " \"" + stored + "\"; versions are immutable (asked for \"" +
                                                 asked + "\")");
    };
    if (auto c = differs("parent", request.parent, e.parent_version)) return *c;
    if (auto c = differs("dataset", request.dataset_name, e.dataset_name)) return *c;
    if (auto c = differs("dataset sha256", request.dataset_sha256, e.dataset_sha256)) return *c;
    if (auto c = differs("training code", request.training_code, e.training_code)) return *c;
    for (const auto& [key, value] : request.tags) {
      auto stored = e.tags.find(key);
      if (stored == e.tags.end() || stored->second != value)
        return make_error(ErrorCode::conflict, "model version " + e.name + "@" + e.version + " already exists with tags " +
                                                   join_tags(e.tags) + "; versions are immutable (asked for " + key +
                                                   "=" + value + ")");
    }
    if (auto m = materialize(e); !m) return m.error();
    return PushResult{e, false};
  }
  if (auto clash = store_.find_model_version(r.name, r.version); !clash) {
    return clash.error();
  } else if (*clash) {
    return make_error(ErrorCode::conflict, "version id " + r.version + " of " + r.name +
                                               " is taken by different content (a sha256 prefix collision)");
  }
  if (request.parent.empty()) {
    auto latest = store_.latest_model_version(r.name);
    if (!latest) return latest.error();
    if (*latest) r.parent_version = r.name + "@" + (*latest)->version;
    else r.parent_version = lineage.parent;
  } else {
    // Lineage must point at something real: a parent that is not in the registry is refused
    // rather than recorded (a typo would otherwise break the chain silently).
    auto parent = resolve(*parse_model_ref(request.parent));
    if (!parent) {
      if (parent.error().code != ErrorCode::not_found) return parent.error();
      return make_error(ErrorCode::invalid_request,
                        "parent: " + request.parent + " is not a version in the registry (tandem models list)");
    }
    r.parent_version = parent->name + "@" + parent->version;
  }
  if (auto m = materialize(r); !m) return m.error();
  auto inserted = store_.insert_model_version(r);
  if (!inserted) return inserted.error();
  if (*inserted == InsertOutcome::already_exists) {
    auto now_there = store_.find_model_version(r.name, r.digest);
    if (!now_there || !*now_there) return make_error(ErrorCode::internal, "model version vanished during push");
    return PushResult{**now_there, false};
  }
  return PushResult{r, true};
}

Result<ModelVersionRecord> ModelRegistry::resolve(const ModelRef& ref) {
  auto found = ref.version == "latest" ? store_.latest_model_version(ref.name)
                                       : store_.find_model_version(ref.name, ref.version);
  if (!found) return found.error();
  if (!*found)
    return make_error(ErrorCode::not_found, "model " + ref.name + "@" + ref.version +
                                                " is not in the registry (push it with `tandem models push`)");
  if (auto m = materialize(**found); !m) return m.error();
  return **found;
}

} // namespace tandem::registry
