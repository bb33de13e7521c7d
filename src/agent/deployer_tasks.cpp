// Restart and remove tasks (deployer.h has the contract).
#include <algorithm>

#include "agent/deployer.h"
#include "agent/deployer_internal.h"
#include "agent/step_log.h"
#include "common/log.h"

namespace berth::agent {

agentlink::TaskResult Deployer::restart(const agentlink::RestartTask& task,
                                        const ProgressFn& progress) {
  auto lock_ptr = app_mutex(task.service_id);
  std::lock_guard app_lock(*lock_ptr);
  if (auto rec = deps_.state->recorded_result(task.task_id); rec.ok() && rec->has_value())
    return **rec;
  agentlink::TaskResult result;
  result.task_id = task.task_id;
  result.service_id = task.service_id;
  StepLog steps(deps_.now, progress);
  auto fail = [&](std::string why) {
    result.ok = false;
    result.error = std::move(why);
    return finish(std::move(result), "restart", steps.entries(), std::nullopt);
  };
  auto loaded = deps_.state->app(task.service_id);
  if (!loaded.ok()) return fail(loaded.error().message);
  if (!loaded->has_value() || (*loaded)->container.empty())
    return fail("The app has no running container on this agent.");
  AppRecord app = **loaded;
  result.revision_id = app.revision_id;
  result.image_digest = app.image_digest;
  result.stable_port = app.stable_port;
  {
    auto step = steps.begin("restart");
    // A container that is gone cannot be restarted in place: say so, and report the app
    // missing so the controller redeploys it from its current revision.
    auto info = deps_.driver->inspect(app.container);
    if (!info.ok() && info.error().code == ErrorCode::kNotFound) {
      const std::string why =
          "The container " + app.container + " no longer exists; the app has to be redeployed.";
      steps.failed(step, why);
      watch_mark(task.service_id, agentlink::AppState::kMissing, why);
      return fail(why);
    }
    if (auto st = deps_.driver->restart(app.container); !st.ok()) {
      const std::string why = "Restarting the container failed: " + st.error().message;
      steps.failed(step, why);
      if (st.error().code == ErrorCode::kNotFound)
        watch_mark(task.service_id, agentlink::AppState::kMissing, why);
      return fail(why);
    }
    steps.ok(step, "Restarted " + app.container + ".");
  }
  {
    auto step = steps.begin("probe");
    const ProbeOutcome outcome =
        deps_.prober->probe(probe_spec(app.health, app.backend_port, options_.probe_deadline));
    if (!outcome.healthy) {
      const std::string why =
          "The restarted container did not become healthy: " + outcome.last_error;
      steps.failed(step, why);
      return fail(why);
    }
    steps.ok(step, "Healthy after " + std::to_string(outcome.attempts) + " attempt(s).");
  }
  // The proxy survives a container restart; reopen it if it was missing.
  if (!deps_.proxies->is_open(task.service_id))
    if (auto r = deps_.proxies->route(task.service_id, app.stable_port, app.backend_port); r.ok())
      app.stable_port = *r;
  app.last_task_id = task.task_id;
  result.ok = true;
  result = finish(std::move(result), "restart", steps.entries(), app);
  watch_fresh(task.service_id);
  return result;
}

agentlink::TaskResult Deployer::remove(const agentlink::RemoveTask& task,
                                       const ProgressFn& progress) {
  auto lock_ptr = app_mutex(task.service_id);
  std::lock_guard app_lock(*lock_ptr);
  if (auto rec = deps_.state->recorded_result(task.task_id); rec.ok() && rec->has_value())
    return **rec;
  agentlink::TaskResult result;
  result.task_id = task.task_id;
  result.service_id = task.service_id;
  StepLog steps(deps_.now, progress);
  // Not recorded: the app stays known, and the re-delivered task tries again.
  auto fail_unrecorded = [&](std::string why) {
    result.ok = false;
    result.error = std::move(why);
    result.logs = steps.entries();
    result = bounded_result(std::move(result));
    log::warn("task failed", {{"task_id", result.task_id},
                              {"kind", "remove"},
                              {"app", result.service_id},
                              {"error", result.error}});
    return result;
  };
  auto step = steps.begin("remove");
  deps_.proxies->close(task.service_id);
  std::vector<std::string> names;
  if (auto loaded = deps_.state->app(task.service_id); loaded.ok() && loaded->has_value()) {
    if (!(*loaded)->container.empty()) names.push_back((*loaded)->container);
    if (!(*loaded)->pending_container.empty()) names.push_back((*loaded)->pending_container);
  }
  auto listed = deps_.driver->list_by_label(kLabelService, task.service_id);
  if (!listed.ok()) {
    const std::string why = "Listing the app's containers failed: " + listed.error().message;
    steps.failed(step, why);
    return fail_unrecorded(why);
  }
  for (const auto& c : *listed)
    if (std::find(names.begin(), names.end(), c.name) == names.end()) names.push_back(c.name);
  (void)take_leftovers(task.service_id);  // listed above if they still exist
  std::string failed;
  for (const auto& n : names) {
    (void)deps_.driver->stop(n, options_.stop_grace_seconds);
    if (auto st = deps_.driver->remove(n); !st.ok())
      failed += (failed.empty() ? "" : "; ") + n + ": " + st.error().message;
  }
  if (!failed.empty()) {
    const std::string why = "Removing the app's containers failed: " + failed;
    steps.failed(step, why);
    return fail_unrecorded(why);
  }
  steps.ok(step,
           "Removed " + std::to_string(names.size()) + " container(s) and closed the stable port.");
  result.ok = true;
  watch_forget(task.service_id);
  return finish(std::move(result), "remove", steps.entries(), std::nullopt, /*forget=*/true);
}

}  // namespace berth::agent
