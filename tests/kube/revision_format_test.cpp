#include <catch2/catch.hpp>

#include <string>

#include <nlohmann/json.hpp>

#include "kube/revision_format.h"

using namespace berth;
using namespace berth::kube;
using nlohmann::json;

namespace {

const std::string kDigest =
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

RevisionRecord sample() {
  RevisionRecord r;
  r.app_name = "billing";
  r.namespace_ = "payments";
  r.app_uid = "7f1c-uid";
  r.number = 3;
  r.spec = {{"imageRef", "registry.example:5000/billing:2.3.1"},
            {"containerPort", 8080},
            {"planName", "tier-1"},
            {"registryUsername", "deploy-bot"},
            {"registryPasswordSecretRef", {{"name", "deploy-token"}, {"key", "password"}}}};
  r.image_digest = kDigest;
  r.registry_host = "registry.example:5000";
  r.registry_username = "deploy-bot";
  return r;
}

json built(const RevisionRecord& r) {
  auto object = build_revision(r);
  REQUIRE(object.ok());
  return object.value();
}

}  // namespace

TEST_CASE("a revision is a ControllerRevision named after its app, labelled and owned by it",
          "[revision_format]") {
  json o = built(sample());
  CHECK(o["apiVersion"] == "apps/v1");
  CHECK(o["kind"] == "ControllerRevision");
  CHECK(o["metadata"]["name"] == "billing-3");
  CHECK(o["metadata"]["namespace"] == "payments");
  CHECK(o["metadata"]["labels"]["berth.dev/appservice"] == "billing");
  CHECK(o["revision"] == 3);
  json owner = o["metadata"]["ownerReferences"][0];
  CHECK(owner == json{{"apiVersion", "berth.dev/v1alpha1"},
                      {"kind", "AppService"},
                      {"name", "billing"},
                      {"uid", "7f1c-uid"},
                      {"controller", true},
                      {"blockOwnerDeletion", true}});
  CHECK(o["metadata"]["ownerReferences"].size() == 1);
}

TEST_CASE("a revision's data holds the spec, digest, registry host and username, nothing else",
          "[revision_format]") {
  json o = built(sample());
  CHECK(o["data"] == json{{"spec", sample().spec},
                          {"imageDigest", kDigest},
                          {"registryHost", "registry.example:5000"},
                          {"registryUsername", "deploy-bot"}});
  CHECK(o["metadata"]["annotations"] == json{{"berth.dev/state", "pending"}});
}

TEST_CASE("a revision round-trips through build and parse", "[revision_format]") {
  RevisionRecord r = sample();
  r.state = RevisionState::kFailed;
  r.finished_at = "2026-11-27T21:00:00Z";
  r.last_error = "pull: unauthorized";
  json o = built(r);
  o["metadata"]["creationTimestamp"] = "2026-11-27T20:59:00Z";
  o["metadata"]["resourceVersion"] = "42";
  auto parsed = parse_revision(o);
  REQUIRE(parsed.ok());
  CHECK(parsed->app_name == "billing");
  CHECK(parsed->namespace_ == "payments");
  CHECK(parsed->app_uid == "7f1c-uid");
  CHECK(parsed->number == 3);
  CHECK(parsed->spec == r.spec);
  CHECK(parsed->image_digest == kDigest);
  CHECK(parsed->registry_host == "registry.example:5000");
  CHECK(parsed->registry_username == "deploy-bot");
  CHECK(parsed->state == RevisionState::kFailed);
  CHECK(parsed->finished_at == "2026-11-27T21:00:00Z");
  CHECK(parsed->last_error == "pull: unauthorized");
  CHECK(parsed->name == "billing-3");
  CHECK(parsed->creation_timestamp == "2026-11-27T20:59:00Z");
  CHECK(parsed->resource_version == "42");
}

TEST_CASE(
    "a revision without a state annotation reads as pending, data keys it does not know "
    "are ignored",
    "[revision_format]") {
  json o = built(sample());
  o["metadata"].erase("annotations");
  o["data"]["addedByANewerController"] = true;
  auto parsed = parse_revision(o);
  REQUIRE(parsed.ok());
  CHECK(parsed->state == RevisionState::kPending);
}

TEST_CASE("parse errors name the field", "[revision_format]") {
  auto expect_error = [](json o, const std::string& field) {
    auto parsed = parse_revision(o);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code == ErrorCode::kInvalidArgument);
    CHECK(parsed.error().field == field);
    CHECK(parsed.error().message.find("payments/billing-3") != std::string::npos);
    CHECK(parsed.error().message.find(field) != std::string::npos);
  };
  json o = built(sample());
  SECTION("no spec") {
    o["data"].erase("spec");
    expect_error(o, "data.spec");
  }
  SECTION("a spec that is not an object") {
    o["data"]["spec"] = "web";
    expect_error(o, "data.spec");
  }
  SECTION("a digest of the wrong form") {
    o["data"]["imageDigest"] = "md5:abc";
    expect_error(o, "data.imageDigest");
  }
  SECTION("a username that is not a string") {
    o["data"]["registryUsername"] = 7;
    expect_error(o, "data.registryUsername");
  }
  SECTION("a registry host that is not a string") {
    o["data"]["registryHost"] = json::array();
    expect_error(o, "data.registryHost");
  }
  SECTION("no controlling AppService owner") {
    o["metadata"]["ownerReferences"][0]["controller"] = false;
    expect_error(o, "metadata.ownerReferences");
  }
  SECTION("no app label") {
    o["metadata"]["labels"].erase("berth.dev/appservice");
    expect_error(o, "metadata.labels.berth.dev/appservice");
  }
  SECTION("an app label of another app") {
    o["metadata"]["labels"]["berth.dev/appservice"] = "orders";
    expect_error(o, "metadata.labels.berth.dev/appservice");
  }
  SECTION("revision 0") {
    o["revision"] = 0;
    expect_error(o, "revision");
  }
  SECTION("a state berth does not know") {
    o["metadata"]["annotations"]["berth.dev/state"] = "rolling";
    expect_error(o, "metadata.annotations.berth.dev/state");
  }
}

TEST_CASE("build refuses a record it could not parse back, naming the field", "[revision_format]") {
  auto expect_error = [](const RevisionRecord& r, const std::string& field) {
    auto o = build_revision(r);
    REQUIRE_FALSE(o.ok());
    CHECK(o.error().code == ErrorCode::kInvalidArgument);
    CHECK(o.error().field == field);
  };
  RevisionRecord r = sample();
  SECTION("number 0") {
    r.number = 0;
    expect_error(r, "revision");
  }
  SECTION("no owner uid") {
    r.app_uid.clear();
    expect_error(r, "app_uid");
  }
  SECTION("a malformed digest") {
    r.image_digest = "sha256:XYZ";
    expect_error(r, "data.imageDigest");
  }
  SECTION("a spec that is not an object") {
    r.spec = json::array();
    expect_error(r, "data.spec");
  }
}

TEST_CASE("a revision never records a password, even one pasted into the spec",
          "[revision_format]") {
  RevisionRecord r = sample();
  r.spec["registryPasswordSecretRef"]["Password"] = "canary-hunter2";
  auto o = build_revision(r);
  REQUIRE_FALSE(o.ok());
  CHECK(o.error().field == "data.spec");
  CHECK(o.error().message.find("canary-hunter2") == std::string::npos);
}

TEST_CASE("a revision of an unresolved image has an empty digest", "[revision_format]") {
  RevisionRecord r = sample();
  r.image_digest.clear();
  auto parsed = parse_revision(built(r));
  REQUIRE(parsed.ok());
  CHECK(parsed->image_digest.empty());
}

TEST_CASE("long app names give valid, distinct revision names and label values",
          "[revision_format]") {
  const std::string long_a = std::string(250, 'a');
  const std::string long_b = std::string(249, 'a') + "b";
  CHECK(revision_name("web", 12) == "web-12");
  CHECK(revision_name(std::string(249, 'a'), 9) == std::string(249, 'a') + "-9");
  const std::string a = revision_name(long_a, 12);
  const std::string b = revision_name(long_b, 12);
  CHECK(a.size() <= 253);
  CHECK(b.size() <= 253);
  CHECK(a != b);
  CHECK(a.substr(a.size() - 3) == "-12");
  CHECK(a == revision_name(long_a, 12));  // deterministic

  CHECK(revision_label_value("web") == "web");
  CHECK(revision_label_value(std::string(63, 'x')) == std::string(63, 'x'));
  const std::string la = revision_label_value(long_a);
  CHECK(la.size() <= 63);
  CHECK(la != revision_label_value(long_b));
  CHECK(revision_label_selector("web") == "berth.dev/appservice=web");
}

TEST_CASE("a cut name never leaves a dot or dash before the hash", "[revision_format]") {
  // The cut keeps 240 characters (253 minus "-<10 hex>-1"); the 240th is a dot here.
  const std::string name = std::string(239, 'a') + "." + std::string(30, 'b');
  const std::string cut = revision_name(name, 1);
  CHECK(cut.size() <= 253);
  CHECK(cut.substr(0, 240) == std::string(239, 'a') + "-");
  CHECK(cut.find(".-") == std::string::npos);
}

TEST_CASE("a long app's revisions still parse: the label is the hashed value",
          "[revision_format]") {
  RevisionRecord r = sample();
  r.app_name = std::string(100, 'w');
  auto parsed = parse_revision(built(r));
  REQUIRE(parsed.ok());
  CHECK(parsed->app_name == r.app_name);
}

TEST_CASE("the state patch sets the state and removes cleared annotations", "[revision_format]") {
  CHECK(state_patch(RevisionState::kSucceeded, "2026-11-27T21:00:00Z", "") ==
        json::parse(R"({"metadata":{"annotations":{"berth.dev/state":"succeeded",
          "berth.dev/finished-at":"2026-11-27T21:00:00Z","berth.dev/last-error":null}}})"));
  CHECK(state_patch(RevisionState::kSuperseded, "",
                    "")["metadata"]["annotations"]["berth.dev/finished-at"]
            .is_null());
}
