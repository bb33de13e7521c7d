#include "core/revision.h"

#include <algorithm>

#include "core/image_ref.h"

namespace berth::core {

std::string rollback_reason(std::string_view target_revision_id) {
  return "rollback to " + std::string(target_revision_id);
}

Result<Revision> make_revision(std::string id, std::string service_id, std::int64_t number,
                               const AppConfig& config, std::string_view reason, UnixMillis now) {
  auto ref = parse_image_ref(config.image_ref, "app_config.image_ref");
  if (!ref) return ref.take_error();
  Revision r;
  r.id = std::move(id);
  r.service_id = std::move(service_id);
  r.number = number;
  r.config = config;
  r.registry_host = ref->registry_host;
  r.reason = std::string(reason);
  r.state = RevisionState::kPending;
  r.created_at = now;
  return r;
}

bool transition_allowed(RevisionState from, RevisionState to) {
  return from == RevisionState::kPending &&
         (to == RevisionState::kSucceeded || to == RevisionState::kFailed ||
          to == RevisionState::kSuperseded);
}

Status finish_revision(Revision& revision, RevisionState to, UnixMillis now) {
  if (revision.state == to && to != RevisionState::kPending) return Status::Ok();
  if (!transition_allowed(revision.state, to)) {
    return make_error(ErrorCode::kFailedPrecondition,
                      std::string("revision ") + revision.id + " cannot move from " +
                          to_string(revision.state) + " to " + to_string(to));
  }
  revision.state = to;
  revision.finished_at = now;
  return Status::Ok();
}

std::vector<std::string> revisions_to_prune(const std::vector<Revision>& revisions, int keep,
                                            std::string_view protected_id) {
  std::vector<const Revision*> succeeded;
  for (const auto& r : revisions) {
    if (r.state == RevisionState::kSucceeded) succeeded.push_back(&r);
  }
  std::sort(succeeded.begin(), succeeded.end(),
            [](const Revision* a, const Revision* b) { return a->number > b->number; });
  const auto limit = static_cast<std::size_t>(std::max(keep, 1));
  std::vector<std::string> out;
  for (std::size_t i = limit; i < succeeded.size(); ++i) {
    if (!protected_id.empty() && succeeded[i]->id == protected_id) continue;
    out.push_back(succeeded[i]->id);
  }
  return out;
}

ServiceStatus status_after_outcome(ServiceStatus current, bool had_serving_revision,
                                   RevisionState outcome) {
  if (current == ServiceStatus::kDeleting) return current;
  switch (outcome) {
    case RevisionState::kPending:
    case RevisionState::kSuperseded:
      return current;
    case RevisionState::kSucceeded:
      return ServiceStatus::kRunning;
    case RevisionState::kFailed:
      return had_serving_revision ? ServiceStatus::kRunning : ServiceStatus::kFailed;
  }
  return current;
}

void apply_outcome(AppService& service, const Revision& revision, UnixMillis now) {
  if (revision.state == RevisionState::kPending || revision.state == RevisionState::kSuperseded) {
    return;
  }
  // An outcome of a rollout that a newer change superseded must not overwrite the status of
  // the newer rollout; if it succeeded it is still what serves until the newer one switches.
  const bool superseded =
      !service.desired_deployment_id.empty() && revision.id != service.desired_deployment_id;
  const bool had_serving = !service.current_deployment_id.empty();
  if (revision.state == RevisionState::kSucceeded) {
    service.current_deployment_id = revision.id;
    if (!superseded) service.last_error.clear();
  } else if (!superseded) {
    std::string message = "deployment failed";
    for (const auto& log : revision.deploy_logs) {
      if (log.status == "failed") {
        message = log.step.empty() ? log.message : log.step + ": " + log.message;
        break;
      }
    }
    service.last_error = std::move(message);
  }
  if (!superseded) {
    service.status = status_after_outcome(service.status, had_serving, revision.state);
  }
  service.updated_at = now;
}

}  // namespace berth::core
