// `tandem models push|list|show`: the model registry, over the admin API.
#include "cli/admin_client.hpp"
#include "cli/commands.hpp"
#include "model/model_manifest.hpp"

#include <boost/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

namespace tandem::cli {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

struct CommonArgs {
  std::string server;
  bool as_json = false;
  int timeout_s = 300;
};

struct PushArgs {
  std::string path;
  std::string name;
  std::vector<std::string> tags;
  std::string parent;
  std::string dataset;
  std::string dataset_sha256;
  std::string training_code;
  std::string pushed_by;
};

int report_failure(const std::string& what, const Error& error) {
  std::fprintf(stderr, "tandem models %s: %s\n", what.c_str(), error.message.c_str());
  return error.code == ErrorCode::invalid_request ? 2 : 1;
}

int report_http(const std::string& what, const AdminResponse& response) {
  std::fprintf(stderr, "tandem models %s: HTTP %d: %s\n", what.c_str(), response.status, error_message(response).c_str());
  return 1;
}

Result<std::string> read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::not_found, "cannot read " + path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string str(const json::value& v) {
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_null()) return "-";
  return json::serialize(v);
}

void print_version(const json::object& v) {
  const auto& lineage = v.at("lineage").as_object();
  const auto& dataset = lineage.at("dataset").as_object();
  const auto& artifact = v.at("artifact").as_object();
  std::printf("model:         %s\n", str(v.at("ref")).c_str());
  std::printf("id:            sha256:%s\n", str(v.at("id")).c_str());
  std::printf("format:        %s\n", str(v.at("format")).c_str());
  std::printf("artifact:      %s (%s bytes, sha256:%s)\n", str(artifact.at("name")).c_str(),
              str(artifact.at("bytes")).c_str(), str(artifact.at("sha256")).c_str());
  std::printf("dataset:       %s%s\n", str(dataset.at("name")).c_str(),
              dataset.at("sha256").as_string().empty() ? "" : (" (sha256:" + str(dataset.at("sha256")) + ")").c_str());
  std::printf("training code: %s\n", str(lineage.at("training_code")).c_str());
  std::printf("parent:        %s\n", str(lineage.at("parent")).c_str());
  std::string tags;
  for (const auto& [k, t] : lineage.at("tags").as_object()) tags += (tags.empty() ? "" : ", ") + std::string(k) + "=" + str(t);
  std::printf("tags:          %s\n", tags.empty() ? "-" : tags.c_str());
  std::printf("created:       %s by %s\n", str(v.at("created")).c_str(), str(v.at("pushed_by")).c_str());
}

int run_push(const CommonArgs& common, const PushArgs& args) {
  fs::path path(args.path);
  fs::path directory = fs::is_directory(path) ? path : path.parent_path();
  if (!fs::is_directory(path) && path.filename() != "tandem-model.yaml") {
    std::fprintf(stderr, "tandem models push: %s: expected a model directory or its tandem-model.yaml\n",
                 args.path.c_str());
    return 2;
  }
  if (directory.empty()) directory = ".";
  auto manifest_text = read_text(directory / "tandem-model.yaml");
  if (!manifest_text) return report_failure("push", manifest_text.error());
  auto manifest = parse_model_manifest(*manifest_text, directory, (directory / "tandem-model.yaml").string());
  if (!manifest) return report_failure("push", manifest.error());
  // Checked here, before any byte leaves this machine: the server's refusal would come after the upload.
  if (auto inside = check_artifact_inside(*manifest, (directory / "tandem-model.yaml").string()); !inside)
    return report_failure("push", inside.error());
  auto artifact = sha256_file(manifest->artifact);
  if (!artifact) return report_failure("push", artifact.error());

  auto client = AdminClient::create(common.server, std::chrono::seconds(common.timeout_s));
  if (!client) return report_failure("push", client.error());
  const std::string blob = "/admin/v1/blobs/sha256:" + artifact->sha256;
  auto head = client->request("HEAD", blob);
  if (!head) return report_failure("push", head.error());
  if (head->status == 404) {
    auto bytes = read_text(manifest->artifact);
    if (!bytes) return report_failure("push", bytes.error());
    auto put = client->request("PUT", blob, *bytes, "application/octet-stream");
    if (!put) return report_failure("push", put.error());
    if (put->status != 201) return report_http("push", *put);
  } else if (head->status != 200) {
    return report_http("push", *head);
  }
  json::object body{{"name", args.name.empty() ? manifest->name : args.name},
                    {"manifest", *manifest_text},
                    {"artifact_sha256", artifact->sha256}};
  json::object tags;
  for (const auto& tag : args.tags) {
    auto eq = tag.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "tandem models push: --tag %s: expected KEY=VALUE\n", tag.c_str());
      return 2;
    }
    tags[tag.substr(0, eq)] = tag.substr(eq + 1);
  }
  if (!tags.empty()) body["tags"] = std::move(tags);
  if (!args.parent.empty()) body["parent"] = args.parent;
  if (!args.dataset.empty()) body["dataset"] = args.dataset;
  if (!args.dataset_sha256.empty()) body["dataset_sha256"] = args.dataset_sha256;
  if (!args.training_code.empty()) body["training_code"] = args.training_code;
  std::string who = args.pushed_by;
  if (who.empty()) {
    const char* user = std::getenv("USER");
    who = user && *user ? user : "unknown";
  }
  body["pushed_by"] = who;
  auto pushed = client->request("POST", "/admin/v1/models", json::serialize(body));
  if (!pushed) return report_failure("push", pushed.error());
  if (pushed->status != 200 && pushed->status != 201) return report_http("push", *pushed);
  if (common.as_json) {
    std::printf("%s\n", pushed->body.c_str());
    return 0;
  }
  auto value = json::parse(pushed->body).as_object();
  std::printf("%s %s\n", str(value.at("ref")).c_str(),
              pushed->status == 201 ? "pushed (new version)" : "already registered with identical content: unchanged");
  return 0;
}

int run_list(const CommonArgs& common) {
  auto client = AdminClient::create(common.server, std::chrono::seconds(common.timeout_s));
  if (!client) return report_failure("list", client.error());
  auto res = client->request("GET", "/admin/v1/models");
  if (!res) return report_failure("list", res.error());
  if (res->status != 200) return report_http("list", *res);
  if (common.as_json) {
    std::printf("%s\n", res->body.c_str());
    return 0;
  }
  auto models = json::parse(res->body).as_object().at("models").as_array();
  std::printf("%-32s %-14s %8s  %s\n", "NAME", "LATEST", "VERSIONS", "UPDATED");
  for (const auto& m : models) {
    const auto& o = m.as_object();
    std::printf("%-32s %-14s %8s  %s\n", str(o.at("name")).c_str(), str(o.at("latest")).c_str(),
                str(o.at("versions")).c_str(), str(o.at("updated")).c_str());
  }
  return 0;
}

int run_show(const CommonArgs& common, const std::string& what) {
  auto client = AdminClient::create(common.server, std::chrono::seconds(common.timeout_s));
  if (!client) return report_failure("show", client.error());
  const auto at = what.find('@');
  const std::string name = what.substr(0, at);
  const std::string target = at == std::string::npos ? "/admin/v1/models/" + name
                                                     : "/admin/v1/models/" + name + "/versions/" + what.substr(at + 1);
  auto res = client->request("GET", target);
  if (!res) return report_failure("show", res.error());
  if (res->status != 200) return report_http("show", *res);
  if (common.as_json) {
    std::printf("%s\n", res->body.c_str());
    return 0;
  }
  auto value = json::parse(res->body).as_object();
  if (at != std::string::npos) {
    print_version(value);
    return 0;
  }
  std::printf("%-14s %-24s %-22s %-28s %s\n", "VERSION", "CREATED", "PARENT", "DATASET", "TAGS");
  for (const auto& v : value.at("versions").as_array()) {
    const auto& o = v.as_object();
    const auto& lineage = o.at("lineage").as_object();
    std::string tags;
    for (const auto& [k, t] : lineage.at("tags").as_object())
      tags += (tags.empty() ? "" : ",") + std::string(k) + "=" + str(t);
    std::printf("%-14s %-24s %-22s %-28s %s\n", str(o.at("version")).c_str(), str(o.at("created")).c_str(),
                str(lineage.at("parent")).c_str(), str(lineage.at("dataset").as_object().at("name")).c_str(),
                tags.empty() ? "-" : tags.c_str());
  }
  return 0;
}

void add_common(CLI::App* cmd, CommonArgs& common) {
  cmd->add_option("--server", common.server,
                  "tandem server URL (default: $TANDEM_SERVER, else http://127.0.0.1:8080)");
  cmd->add_flag("--json", common.as_json, "Print the API's JSON instead of a table");
  cmd->add_option("--timeout", common.timeout_s, "Seconds to wait for the server")->capture_default_str();
}

} // namespace

void add_models_command(CLI::App& app, int& exit_code) {
  auto common = std::make_shared<CommonArgs>();
  auto push = std::make_shared<PushArgs>();
  auto show_what = std::make_shared<std::string>();
  auto* models = app.add_subcommand("models", "The model registry: immutable, content-addressed model versions");
  models->require_subcommand(1);

  auto* push_cmd = models->add_subcommand("push", "Push a model directory (or its tandem-model.yaml) as a version");
  push_cmd->add_option("path", push->path, "Model directory, or the path of its tandem-model.yaml")->required();
  push_cmd->add_option("--name", push->name, "Registry name (default: the manifest's name)");
  push_cmd->add_option("--tag", push->tags, "A free tag KEY=VALUE (repeatable)");
  push_cmd->add_option("--parent", push->parent, "Parent version NAME@VERSION (default: the name's latest version)");
  push_cmd->add_option("--dataset", push->dataset, "Data set name (default: the manifest's lineage)");
  push_cmd->add_option("--dataset-sha256", push->dataset_sha256, "Data set hash (default: the manifest's lineage)");
  push_cmd->add_option("--training-code", push->training_code,
                       "Training code reference, e.g. a commit or a path (default: the manifest's lineage)");
  push_cmd->add_option("--pushed-by", push->pushed_by, "Who pushes (default: $USER)");
  add_common(push_cmd, *common);
  push_cmd->callback([common, push, &exit_code] { exit_code = run_push(*common, *push); });

  auto* list_cmd = models->add_subcommand("list", "List registered models with their latest version");
  add_common(list_cmd, *common);
  list_cmd->callback([common, &exit_code] { exit_code = run_list(*common); });

  auto* show_cmd = models->add_subcommand("show", "Show a model's versions, or one version's lineage");
  show_cmd->add_option("model", *show_what, "NAME, NAME@VERSION or NAME@latest")->required();
  add_common(show_cmd, *common);
  show_cmd->callback([common, show_what, &exit_code] { exit_code = run_show(*common, *show_what); });
}

} // namespace tandem::cli
