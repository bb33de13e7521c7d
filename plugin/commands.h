#pragma once
// The two things `kubectl berth` does to an AppService, over a connected Transport:
//   history:  its revisions (ControllerRevisions in kube/revision_format.h) as a table, the
//             current one (status.currentRevision) marked;
//   rollback: like `kubectl rollout undo`: copies one revision's recorded spec into the
//             AppService's spec with a JSON merge patch guarded by the resourceVersion read.
// Output for the user goes to `out`; a failure is returned as an Error whose message is the
// sentence to print. Refusals decided here are kFailedPrecondition; the API server's answers
// keep the codes kube/status_error.h maps (main.cpp prints them as kubectl's "Error from server
// (Reason): ...").
// Never prints a credential: revisions hold none, and the spec names its Secret by reference.
#include <cstdint>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "kube/transport.h"

namespace berth::plugin {

// "web", "appservice/web", "appservices/web", "appservice.berth.dev/web" -> "web".
// kInvalidArgument for another resource type or an empty name.
Result<std::string> app_name_argument(const std::string& argument);

// REVISION IMAGE DIGEST STATE AGE, oldest first. `now_ms` is the wall clock (AGE).
Status history(kube::Transport& transport, const std::string& namespace_, const std::string& name,
               std::int64_t now_ms, std::ostream& out);

// to_revision 0: the revision before status.currentRevision. Refuses an unknown revision, the
// revision the spec already matches, and one with another containerPort (immutable).
// kConflict when the AppService changed between the read and the patch.
Status rollback(kube::Transport& transport, const std::string& namespace_, const std::string& name,
                std::int64_t to_revision, std::ostream& out);

// The JSON merge patch (RFC 7386) that turns `from` into `to`: changed and new members as in
// `to`, members missing from `to` as explicit nulls, nested objects diffed member by member,
// arrays and scalars replaced whole. Pure.
nlohmann::json merge_patch_between(const nlohmann::json& from, const nlohmann::json& to);

// kubectl's AGE column (k8s.io/apimachinery duration.HumanDuration): "45s", "3m20s", "17m",
// "5h3m", "30h", "3d4h", "90d", "2y45d", "4y". "<unknown>" for an unparsable timestamp. Pure.
std::string human_age(const std::string& rfc3339, std::int64_t now_ms);

}  // namespace berth::plugin
