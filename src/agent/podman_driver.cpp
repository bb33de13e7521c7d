#include "agent/podman_driver.h"

#include <filesystem>
#include <future>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "common/subprocess.h"
#include "common/text.h"

namespace berth::agent {
namespace {

Result<ProcessOutput> checked(Result<ProcessOutput> r, std::chrono::milliseconds deadline,
                              const std::string& what) {
  if (!r.ok()) return r.take_error();
  if (r->timed_out)
    return make_error(ErrorCode::kDeadlineExceeded, "podman " + what + " did not finish within " +
                                                        std::to_string(deadline.count() / 1000) +
                                                        " s.");
  if (r->exit_code != 0) {
    const std::string reason = podman_reason(r->err, "podman " + what + " failed");
    const bool missing = reason.find("no such container") != std::string::npos ||
                         reason.find("no container with") != std::string::npos;
    return make_error(missing ? ErrorCode::kNotFound : ErrorCode::kUnavailable, reason);
  }
  return r;
}

Result<ProcessOutput> call(const PodmanOptions& o, std::vector<std::string> args,
                           std::chrono::milliseconds deadline, const std::string& what) {
  args.insert(args.begin(), o.command);
  return checked(run_process(args, deadline), deadline, what);
}

// The sizes of the regular files under `dir` (podman keeps each blob of a pull in its own
// file there). Files vanish and appear while podman works: errors just skip an entry.
std::vector<std::int64_t> blob_sizes(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<std::int64_t> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e2;
    if (!it->is_regular_file(e2) || e2) continue;
    const auto size = it->file_size(e2);
    if (!e2) out.push_back(static_cast<std::int64_t>(size));
  }
  return out;
}

ContainerInfo from_ps(const nlohmann::json& j) {
  ContainerInfo c;
  c.id = j.value("Id", "");
  if (j.contains("Names") && j["Names"].is_array() && !j["Names"].empty())
    c.name = j["Names"][0].get<std::string>();
  c.image = j.value("Image", "");
  c.state = j.value("State", "");
  if (j.contains("Labels") && j["Labels"].is_object())
    for (auto& [k, v] : j["Labels"].items())
      if (v.is_string()) c.labels[k] = v.get<std::string>();
  return c;
}

}  // namespace

std::string podman_reason(const std::string& stderr_text, const std::string& fallback) {
  std::string last;
  std::size_t pos = 0;
  while (pos <= stderr_text.size()) {
    auto nl = stderr_text.find('\n', pos);
    if (nl == std::string::npos) nl = stderr_text.size();
    std::string line(trim_ascii_whitespace(std::string_view(stderr_text).substr(pos, nl - pos)));
    if (!line.empty()) last = line;
    pos = nl + 1;
  }
  if (last.rfind("Error: ", 0) == 0) last = last.substr(7);
  if (last.empty()) return fallback + ".";
  if (last.size() > 400) last = last.substr(0, 400) + "...";
  if (last.back() != '.') last += '.';
  return last;
}

PodmanDriver::PodmanDriver(PodmanOptions options) : options_(std::move(options)) {}

Result<std::string> PodmanDriver::pull(const PullRequest& request) {
  std::vector<std::string> args{"pull", "--quiet"};
  if (!request.authfile.empty()) {
    args.push_back("--authfile");
    args.push_back(request.authfile);
  }
  if (!request.cert_dir.empty()) {
    args.push_back("--cert-dir");
    args.push_back(request.cert_dir);
  }
  args.push_back(request.image);
  if (request.tmp_dir.empty() || !request.on_blobs) {
    auto r = call(options_, args, options_.pull_deadline, "pull");
    if (!r.ok()) return r.take_error();
    return std::string(trim_ascii_whitespace(r->out));
  }
  // With progress: podman writes each blob into TMPDIR while it downloads (its output has no
  // byte counts without a terminal), so the pull runs on its own thread and this one measures
  // the directory until it ends. The pull's own deadline still bounds it.
  args.insert(args.begin(), options_.command);
  RunOptions run;
  run.deadline = options_.pull_deadline;
  run.env.emplace_back("TMPDIR", request.tmp_dir);
  auto pending = std::async(std::launch::async, [&args, &run] { return run_process(args, run); });
  while (pending.wait_for(options_.progress_interval) != std::future_status::ready) {
    request.on_blobs(blob_sizes(request.tmp_dir));
  }
  auto r = checked(pending.get(), options_.pull_deadline, "pull");
  if (!r.ok()) return r.take_error();
  return std::string(trim_ascii_whitespace(r->out));
}

Result<std::optional<std::string>> PodmanDriver::local_image(const std::string& image) {
  auto r = run_process({options_.command, "image", "inspect", "--format", "{{.Id}}", image},
                       options_.call_deadline);
  if (!r.ok()) return r.take_error();
  if (!r->timed_out && r->exit_code != 0 &&
      (r->err.find("image not known") != std::string::npos ||
       r->err.find("no such image") != std::string::npos)) {
    return std::optional<std::string>{};
  }
  auto checked_r = checked(std::move(r), options_.call_deadline, "image inspect");
  if (!checked_r.ok()) return checked_r.take_error();
  const std::string id(trim_ascii_whitespace(checked_r->out));
  if (id.empty()) return std::optional<std::string>{};
  return std::optional<std::string>(id);
}

Result<std::string> PodmanDriver::run(const ContainerSpec& spec) {
  std::vector<std::string> args{
      "run", "-d",
      // catatonit (installed with podman) as PID 1 forwards SIGTERM to the app, so a stop
      // takes milliseconds instead of the whole grace period.
      "--init", "--stop-timeout", std::to_string(spec.stop_grace_seconds), "--name", spec.name,
      "-p",
      "127.0.0.1:" + std::to_string(spec.host_port) + ":" + std::to_string(spec.container_port)};
  for (const auto& [k, v] : spec.labels) {
    args.push_back("--label");
    args.push_back(k + "=" + v);
  }
  if (!spec.env_file.empty()) {
    args.push_back("--env-file");
    args.push_back(spec.env_file);
  }
  args.push_back(spec.image);
  auto r = call(options_, args, options_.call_deadline, "run");
  if (!r.ok()) return r.take_error();
  return std::string(trim_ascii_whitespace(r->out));
}

Result<ContainerInfo> PodmanDriver::inspect(const std::string& name) {
  auto r = call(options_, {"ps", "-a", "--format", "json", "--filter", "name=^" + name + "$"},
                options_.call_deadline, "ps");
  if (!r.ok()) return r.take_error();
  try {
    const auto j = nlohmann::json::parse(r->out.empty() ? "[]" : r->out);
    for (const auto& item : j) {
      ContainerInfo c = from_ps(item);
      if (c.name == name) return c;
    }
  } catch (const nlohmann::json::exception&) {
    return make_error(ErrorCode::kInternal, "podman ps printed output that is not JSON.");
  }
  return make_error(ErrorCode::kNotFound, "No container named " + name + ".");
}

Result<std::vector<ContainerInfo>> PodmanDriver::list_by_label(const std::string& key,
                                                               const std::string& value) {
  const std::string filter = value.empty() ? "label=" + key : "label=" + key + "=" + value;
  auto r = call(options_, {"ps", "-a", "--format", "json", "--filter", filter},
                options_.call_deadline, "ps");
  if (!r.ok()) return r.take_error();
  std::vector<ContainerInfo> out;
  try {
    const auto j = nlohmann::json::parse(r->out.empty() ? "[]" : r->out);
    for (const auto& item : j) out.push_back(from_ps(item));
  } catch (const nlohmann::json::exception&) {
    return make_error(ErrorCode::kInternal, "podman ps printed output that is not JSON.");
  }
  return out;
}

Status PodmanDriver::stop(const std::string& name, int grace_seconds) {
  auto r = call(options_, {"stop", "-t", std::to_string(grace_seconds), name},
                options_.call_deadline + std::chrono::seconds(grace_seconds), "stop");
  if (!r.ok()) return r.take_error();
  return Status::Ok();
}

Status PodmanDriver::remove(const std::string& name) {
  auto r = call(options_, {"rm", "-f", "--ignore", name}, options_.call_deadline, "rm");
  if (!r.ok()) return r.take_error();
  return Status::Ok();
}

Status PodmanDriver::restart(const std::string& name) {
  auto r = call(options_, {"restart", name}, options_.call_deadline, "restart");
  if (!r.ok()) return r.take_error();
  return Status::Ok();
}

Result<std::string> PodmanDriver::logs_tail(const std::string& name, int lines) {
  auto r = call(options_, {"logs", "--tail", std::to_string(lines), name}, options_.call_deadline,
                "logs");
  if (!r.ok()) return r.take_error();
  return r->out + r->err;
}

}  // namespace berth::agent
