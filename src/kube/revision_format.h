#pragma once
// The one format of berth's revisions in Kubernetes mode: an apps/v1 ControllerRevision per
// accepted AppService change. The controller writes them, `kubectl berth` reads them; both go
// through this file so the format has one definition (docs/kubernetes.md, "Revisions in
// Kubernetes").
//
//   metadata.name       <appservice>-<N> (revision_name(): cut and hashed when that is too long)
//   metadata.namespace  the AppService's
//   metadata.labels     berth.dev/appservice: <appservice> (revision_label_value())
//   metadata.ownerReferences  the AppService (controller: true, blockOwnerDeletion: true), so
//                       the garbage collector removes the history with the app
//   revision            N (1, 2, ...)
//   data                {"spec": <the AppService spec as the user wrote it, after the server's
//                       defaults>, "imageDigest": "sha256:<64 hex>", "registryHost": "...",
//                       "registryUsername": "..."}
//   annotations         berth.dev/state (pending|succeeded|failed|superseded),
//                       berth.dev/finished-at (RFC 3339), berth.dev/last-error
//
// A real API server refuses changes to `data` and `revision` after creation, so everything that
// changes later lives in the annotations (state_patch()). `data` never holds a password or any
// Secret's content: the spec names its Secret by reference only, and build_revision() refuses a
// spec that carries anything else under a "password" key.
//
// Pure conversions, safe from any thread, except list_revisions(), which has ResourceClient's
// threading and error contract. Errors are kInvalidArgument naming the field
// ("ControllerRevision default/web-3: data.imageDigest: not a sha256 digest").
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "core/types.h"
#include "kube/transport.h"

namespace berth::kube {

inline constexpr const char* kRevisionAppLabel = "berth.dev/appservice";
inline constexpr const char* kRevisionStateAnnotation = "berth.dev/state";
inline constexpr const char* kRevisionFinishedAtAnnotation = "berth.dev/finished-at";
inline constexpr const char* kRevisionLastErrorAnnotation = "berth.dev/last-error";
inline constexpr const char* kAppServiceApiVersion = "berth.dev/v1alpha1";
inline constexpr const char* kAppServiceKind = "AppService";

// The states of standalone mode's revisions (core/types.h), written as their to_string() names.
using RevisionState = core::RevisionState;

// One revision as berth reads and writes it.
struct RevisionRecord {
  // Identity of the owning AppService.
  std::string app_name;
  std::string namespace_;
  std::string app_uid;
  std::int64_t number = 0;  // >= 1
  // data
  nlohmann::json spec = nlohmann::json::object();
  std::string image_digest;  // "sha256:<64 hex>", or empty while not yet resolved
  std::string registry_host;
  std::string registry_username;  // empty for a public image
  // annotations (mutable)
  RevisionState state = RevisionState::kPending;
  std::string finished_at;
  std::string last_error;
  // Set by parse_revision() from the server's object; ignored by build_revision().
  std::string name;
  std::string creation_timestamp;
  std::string resource_version;
};

// "<app>-<number>" when that is a valid object name (at most 253 characters); otherwise the
// app's name is cut and a hash of the whole of it keeps names of different apps apart:
// "<prefix>-<10 hex of SHA-256(app)>-<number>". Deterministic.
std::string revision_name(std::string_view app_name, std::int64_t number);
// "<app><suffix>" for any object berth names after an app (the sealed credential's Secret), cut
// and hashed as revision_name() when too long.
std::string suffixed_name(std::string_view app_name, std::string_view suffix);
// The app's name when it is a valid label value (at most 63 characters); otherwise a cut prefix
// and a hash, as revision_name(). Selects the app's revisions; parse_revision() still checks the
// owner's name, so a collision could never mix two apps' histories.
std::string revision_label_value(std::string_view app_name);
// "berth.dev/appservice=<value>", for ListOptions::label_selector.
std::string revision_label_selector(std::string_view app_name);

// The ControllerRevision to create. kInvalidArgument when a field is missing or malformed
// (number < 1, no app name/namespace/uid, a spec that is not an object or has a "password" key,
// a digest that is not "sha256:<64 hex>").
Result<nlohmann::json> build_revision(const RevisionRecord& record);

// A ControllerRevision read from the server, back into a record. Needs the label, an
// AppService controller ownerReference, revision >= 1 and data.spec; unknown data keys are
// ignored (a newer controller may add some). An annotation state berth does not know is an error.
Result<RevisionRecord> parse_revision(const nlohmann::json& object);

// The JSON merge patch that records a revision's outcome in its annotations (empty strings
// remove finished-at / last-error).
nlohmann::json state_patch(RevisionState state, const std::string& finished_at,
                           const std::string& last_error);

// Every revision of `app_name` in `namespace_`, by number ascending (a label-selected list of
// controllerrevisions, all pages). Objects that carry the label but belong to another owner are
// skipped; one that does not parse fails the call, naming it.
Result<std::vector<RevisionRecord>> list_revisions(Transport& transport,
                                                   const std::string& namespace_,
                                                   const std::string& app_name);

}  // namespace berth::kube
