// Kubernetes mode's RBAC against what the controller really does: the full story (a private app
// with its password Secret, a change, a revert to the first spec, deletion through the
// berth.dev/cleanup finalizer, leader election on the Lease, Events, status writes, the key
// Secret) run by `berth-controller serve --kubernetes` as the manifests' service account, with
// every request it makes recorded by the test API server (GET /_test/requests), then compared
// rule by rule with the Roles and ClusterRoles of manifests/rbac.yaml that bind that account.
//
// The test API server authorizes the service account with RBAC over those objects (system:masters
// bypasses it, so kubectl and the test's own clients are unaffected) and emulates the
// OwnerReferencesPermissionEnforcement admission plugin, whose checks (update on
// appservices/finalizers for a blockOwnerDeletion owner reference) it records on the request.
// The matcher below is the test's own, so a mistake in the server's authorizer cannot hide a
// missing or a spare rule.
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "e2e/kube_stack.h"
#include "support/skip.h"
#include "support/wait.h"

namespace e2e = berth::e2e;
using e2e::KubeStack;
using e2e::KubeStackOptions;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* kAccount = "system:serviceaccount:berth-system:berth-controller";

// One authorization the controller needed: a request, or an admission check inside one.
struct RbacAttrs {
  std::string verb;
  std::string group;
  std::string resource;  // "appservices/status" for a subresource
  std::string ns;
  std::string name;
  int code = 0;         // the request's answer (0 for an admission check)
  bool allowed = true;  // false: the server refused it (403, or a refused admission check)
};

// A rule of a Role or ClusterRole bound to the account, with where the binding applies.
struct RbacRule {
  std::string origin;  // "ClusterRole berth-controller, rule 2"
  std::string scope;   // "" = every namespace (ClusterRoleBinding), else the RoleBinding's
  std::set<std::string> verbs, groups, resources, names;
};

std::set<std::string> rbac_strings(const json& rule, const char* key) {
  std::set<std::string> out;
  for (const auto& v : rule.value(key, json::array())) out.insert(v.get<std::string>());
  return out;
}

bool rbac_binds_account(const json& binding) {
  for (const auto& s : binding.value("subjects", json::array())) {
    if (s.value("kind", "") == "ServiceAccount" && s.value("name", "") == "berth-controller" &&
        s.value("namespace", "") == KubeStack::kControllerNamespace) {
      return true;
    }
  }
  return false;
}

// Every rule that reaches the account: ClusterRoleBindings (cluster-wide) and the RoleBindings
// of the controller's namespace (a Role or a ClusterRole, in that namespace only).
std::vector<RbacRule> rbac_rules(KubeStack& stack) {
  std::vector<RbacRule> out;
  auto add_role = [&](const json& binding, const std::string& scope) {
    const json ref = binding.value("roleRef", json::object());
    const std::string kind = ref.value("kind", "");
    const std::string name = ref.value("name", "");
    const json role = kind == "ClusterRole"
                          ? stack.get("clusterrole.rbac.authorization.k8s.io", name, "")
                          : stack.get("role.rbac.authorization.k8s.io", name, scope);
    REQUIRE_FALSE(role.is_null());
    int i = 0;
    for (const auto& r : role.value("rules", json::array())) {
      out.push_back({kind + " " + name + ", rule " + std::to_string(i++), scope,
                     rbac_strings(r, "verbs"), rbac_strings(r, "apiGroups"),
                     rbac_strings(r, "resources"), rbac_strings(r, "resourceNames")});
    }
  };
  for (const auto& b : stack.list("clusterrolebinding.rbac.authorization.k8s.io", {}, "")) {
    if (rbac_binds_account(b)) add_role(b, "");
  }
  for (const auto& b : stack.list("rolebinding.rbac.authorization.k8s.io", {},
                                  std::string(KubeStack::kControllerNamespace))) {
    if (rbac_binds_account(b)) add_role(b, KubeStack::kControllerNamespace);
  }
  return out;
}

bool rbac_has(const std::set<std::string>& set, const std::string& value) {
  return set.count("*") > 0 || set.count(value) > 0;
}

bool rbac_matches(const RbacRule& rule, const RbacAttrs& a) {
  if (!rule.scope.empty() && rule.scope != a.ns) return false;
  if (!rbac_has(rule.verbs, a.verb) || !rbac_has(rule.groups, a.group) ||
      !rbac_has(rule.resources, a.resource)) {
    return false;
  }
  // resourceNames cannot name what a list, a watch or a create has not got: a name.
  return rule.names.empty() || (!a.name.empty() && rule.names.count(a.name) > 0);
}

// The account's authorizations, from the server's request log.
std::vector<RbacAttrs> rbac_recorded(KubeStack& stack) {
  std::vector<RbacAttrs> out;
  for (const auto& r : stack.server().requests()) {
    if (r.value("user", "") != kAccount) continue;
    const std::string resource = r.value("resource", "");
    // Non-resource paths (discovery, /version) are every authenticated user's.
    if (resource.empty() || resource[0] == '/') continue;
    const std::string sub = r.value("subresource", "");
    const int code = r.value("code", 0);
    out.push_back({r.value("verb", ""), r.value("group", ""),
                   sub.empty() ? resource : resource + "/" + sub, r.value("namespace", ""),
                   r.value("name", ""), code, code != 403});
    for (const auto& c : r.value("checks", json::array())) {
      const std::string csub = c.value("subresource", "");
      const std::string cres = c.value("resource", "");
      out.push_back({c.value("verb", ""), c.value("group", ""),
                     csub.empty() ? cres : cres + "/" + csub, c.value("namespace", ""),
                     c.value("name", ""), 0, c.value("allowed", false)});
    }
  }
  return out;
}

std::string rbac_describe(const RbacAttrs& a) {
  return a.verb + " " + a.resource + (a.group.empty() ? "" : "." + a.group) +
         (a.ns.empty() ? "" : " in " + a.ns) + (a.name.empty() ? "" : " name " + a.name) +
         (a.code ? " -> " + std::to_string(a.code) : " (admission check)");
}

// stack.wait_for, but a request of the account refused on the way fails at once and names it
// (a missing rule stalls the story, which would otherwise only show as a timeout).
void rbac_wait_for(KubeStack& stack, const std::string& name,
                   const std::function<bool(const json&)>& pred, const std::string& what,
                   berth::e2e::Seconds limit = berth::e2e::Seconds(120)) {
  std::string refused;
  berth::testing::wait_until(
      [&] {
        for (const auto& a : rbac_recorded(stack)) {
          if (!a.allowed) {
            refused = rbac_describe(a);
            return true;
          }
        }
        const json app = stack.app(name);
        return !app.is_null() && pred(app);
      },
      limit, 300ms);
  if (!refused.empty()) FAIL("the controller was refused: " << refused);
  stack.wait_for(name, pred, what, berth::e2e::Seconds(5));  // the diagnostics when it timed out
}

}  // namespace

TEST_CASE(
    "Kubernetes mode: every request the controller makes is allowed by manifests/rbac.yaml, and "
    "every verb the manifests grant is used by the story or listed here with the reason",
    "[e2e][kube][rbac]") {
  BERTH_REQUIRE_KUBE_E2E_PEERS();
  KubeStackOptions options;
  options.leader_elect = true;  // the Lease
  KubeStack stack(options);
  stack.start();
  auto& registry = stack.registry();

  // The story: a private app whose Secret first holds wrong passwords (refused twice: an Event
  // and its series), then the right one; a change, a revert, deletion through the finalizer.
  const std::string name = "web";
  stack.apply_password_secret("registry-creds", e2e::wrong_password());
  stack.apply(stack.app_yaml(name, "v1", "registry-creds"));
  rbac_wait_for(
      stack, name,
      [](const json& a) {
        return KubeStack::observed(a) &&
               KubeStack::condition_status(a, "CredentialsResolved") == "False";
      },
      "CredentialsResolved=False", 30s);
  stack.apply_password_secret("registry-creds", e2e::wrong_password());
  REQUIRE(berth::testing::wait_until(
      [&] {
        for (const auto& a : rbac_recorded(stack)) {
          if (a.verb == "patch" && a.resource == "events") return true;
        }
        return false;
      },
      30s, 300ms));
  stack.apply_password_secret("registry-creds", registry.password());
  rbac_wait_for(stack, name, KubeStack::running_at(1), "Running at revision 1");
  stack.patch("appservice", name, {{"spec", {{"imageRef", registry.image("v2")}}}});
  rbac_wait_for(stack, name, KubeStack::running_at(2), "Running at revision 2");
  stack.patch("appservice", name, {{"spec", {{"imageRef", registry.image("v1")}}}});
  rbac_wait_for(stack, name, KubeStack::running_at(3), "Running at revision 3 (the revert)");
  REQUIRE(stack.events_for(name).size() > 0);
  stack.remove("appservice", name);
  stack.wait_gone("appservice", name, 60s);
  // A renewal of the Lease (every 2 s) after its creation.
  REQUIRE(berth::testing::wait_until(
      [&] {
        for (const auto& a : rbac_recorded(stack)) {
          if (a.verb == "update" && a.resource == "leases") return true;
        }
        return false;
      },
      20s));

  const std::vector<RbacRule> rules = rbac_rules(stack);
  REQUIRE_FALSE(rules.empty());
  const std::vector<RbacAttrs> recorded = rbac_recorded(stack);
  REQUIRE_FALSE(recorded.empty());

  // The table of requests (and admission checks): verb, resource, answer, count.
  std::map<std::string, int> table;
  for (const auto& a : recorded) {
    char row[160];
    std::snprintf(row, sizeof row, "%-8s %-45s %s", a.verb.c_str(),
                  (a.resource + (a.group.empty() ? "" : "." + a.group)).c_str(),
                  a.code ? std::to_string(a.code).c_str() : "check");
    ++table[row];
  }
  std::printf("requests of %s:\n%-8s %-45s %-5s %s\n", kAccount, "verb", "resource", "code",
              "count");
  for (const auto& [row, count] : table) std::printf("%s %5d\n", row.c_str(), count);
  std::fflush(stdout);

  // 1. Nothing the controller asked for was refused, and the manifests' rules (read by this
  // test, not the server) allow each of them.
  for (const auto& a : recorded) {
    INFO(rbac_describe(a));
    CHECK(a.allowed);
    bool covered = false;
    for (const auto& rule : rules) covered = covered || rbac_matches(rule, a);
    CHECK(covered);
  }

  // 2. Every verb of every rule is used, or intended though the story does not reach it.
  const std::map<std::string, std::string> intended = {
      {"update secrets",
       "replacing a sealed copy that exists (<app>-berth-credential) when the user's Secret gets "
       "another password the registry accepts: the test registry has one password per user, so "
       "the story only ever creates the sealed copy"},
      {"delete secrets",
       "removing the sealed copy when the app no longer needs a credential (a public image): "
       "every image of the test registry is private; when the app goes, the garbage collector "
       "removes it (owner reference)"},
      {"delete controllerrevisions.apps",
       "pruning the history beyond 20 succeeded revisions (runtime::ReconcilerOptions::"
       "keep_succeeded): the story makes 3"},
  };
  std::set<std::string> unused_seen;
  for (const auto& rule : rules) {
    for (const auto& verb : rule.verbs) {
      for (const auto& group : rule.groups) {
        for (const auto& resource : rule.resources) {
          const std::string grant = verb + " " + resource + (group.empty() ? "" : "." + group) +
                                    (rule.scope.empty() ? "" : " in " + rule.scope);
          int uses = 0;
          for (const auto& a : recorded) {
            if (a.verb == verb && a.group == group && a.resource == resource &&
                rbac_matches(rule, a)) {
              ++uses;
            }
          }
          INFO(rule.origin << ": " << grant);
          if (intended.count(grant)) {
            unused_seen.insert(grant);
            CHECK(uses == 0);  // used after all: take it off the list
          } else {
            CHECK(uses > 0);
          }
        }
      }
    }
  }
  // The list names only grants that exist.
  for (const auto& [grant, why] : intended) {
    INFO(grant << ": " << why);
    CHECK(unused_seen.count(grant) == 1);
  }
}
