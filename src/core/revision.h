#pragma once
// Revisions (SPEC section 5): building the next revision of a service, the allowed state
// transitions, history pruning, and the service status that follows a rollout outcome.
//
// Contract: pure functions over plain records; `now` and ids are supplied by the caller.
// Thread-safe. Errors are values: an illegal transition is kFailedPrecondition.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "core/types.h"

namespace berth::core {

inline constexpr int kDefaultKeepSucceededRevisions = 20;

inline constexpr std::string_view kReasonInitial = "initial deployment";
inline constexpr std::string_view kReasonUpdate = "configuration update";
std::string rollback_reason(std::string_view target_revision_id);  // "rollback to <id>"

// The next revision in state pending. registry_host is derived from config.image_ref
// (kValidation with field "app_config.image_ref" if it does not parse). `number` comes from
// the store (StateStore::next_revision_number).
Result<Revision> make_revision(std::string id, std::string service_id, std::int64_t number,
                               const AppConfig& config, std::string_view reason, UnixMillis now);

// pending -> succeeded, failed or superseded only; the other states are terminal.
bool transition_allowed(RevisionState from, RevisionState to);
// Moves `revision` to `to` and sets finished_at, or kFailedPrecondition. Re-applying the state
// a revision is already in is accepted and changes nothing (outcomes arrive at least once).
Status finish_revision(Revision& revision, RevisionState to, UnixMillis now);

// Ids of the succeeded revisions to delete so that only the newest `keep` (by number) remain.
// Pending and failed revisions are never chosen, nor is `protected_id` (the one serving).
// keep < 1 is treated as 1: the serving revision is always kept.
std::vector<std::string> revisions_to_prune(const std::vector<Revision>& revisions, int keep,
                                            std::string_view protected_id = {});

// The service status after a rollout outcome. `had_serving_revision`: a previous revision was
// serving (current_deployment_id non-empty) before this rollout.
//   succeeded                        -> Running
//   failed, nothing served before    -> Failed
//   failed, an old revision serves   -> Running (blue keeps serving)
// Deleting stays Deleting; a pending or superseded outcome changes nothing.
ServiceStatus status_after_outcome(ServiceStatus current, bool had_serving_revision,
                                   RevisionState outcome);

// Applies a finished revision to its service record: status, current_deployment_id (on
// success), last_error (the failed step's message, cleared on success), updated_at.
// Outcomes for a revision other than the desired one (a superseded rollout) only update
// current_deployment_id when they succeeded and nothing newer serves; see docs/app-services.md.
void apply_outcome(AppService& service, const Revision& revision, UnixMillis now);

}  // namespace berth::core
