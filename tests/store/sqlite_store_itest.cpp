// SqliteStore against real database files in temp directories: round trips, conflicts, secret
// hygiene on disk, sealing, key rotation, crash safety (kill -9), disk full, read-only files and
// schema migration.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include <SQLiteCpp/SQLiteCpp.h>
#include <catch2/catch.hpp>

#include "crypto/password.h"
#include "crypto/sealer.h"
#include "store/schema.h"
#include "store/sqlite_store.h"
#include "store/store_testing.h"

namespace fs = std::filesystem;
using namespace berth;
using store::SqliteStore;
using store::StoreOptions;

namespace {

using namespace berth::store_testing;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every byte of every file in the data directory (db, -wal, -shm, journals, keys).
std::string files_containing(const fs::path& dir, const std::string& needle) {
  std::string hits;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    if (read_all(e.path()).find(needle) != std::string::npos) hits += e.path().string() + " ";
  }
  return hits;
}

int file_mode(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return static_cast<int>(st.st_mode & 07777);
}

}  // namespace

TEST_CASE("every port method round-trips through a real database file", "[store]") {
  TempDir tmp;
  core::UnixMillis now = 5000;
  auto s = open_ok(tmp.data(), fixed_clock(&now));
  const std::string acct = add_account(*s, "alice");

  auto auth = s->authenticate_password("alice", Secret("account-password-alice"));
  REQUIRE(auth.ok());
  CHECK(*auth == acct);
  auto wrong = s->authenticate_password("alice", Secret("nope"));
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().code == ErrorCode::kUnauthenticated);
  auto unknown = s->authenticate_password("bob", Secret("account-password-alice"));
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().code == ErrorCode::kUnauthenticated);

  auto token = s->create_token("alice", "ci");
  REQUIRE(token.ok());
  CHECK(token->reveal().rfind("berth_", 0) == 0);
  auto by_token = s->authenticate_token(*token);
  REQUIRE(by_token.ok());
  CHECK(*by_token == acct);
  std::string tampered(token->reveal());
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  auto bad_token = s->authenticate_token(Secret(tampered));
  REQUIRE_FALSE(bad_token.ok());
  CHECK(bad_token.error().code == ErrorCode::kUnauthenticated);
  CHECK(s->authenticate_token(Secret("not-a-token")).error().code == ErrorCode::kUnauthenticated);
  auto no_account = s->create_token("nobody", "x");
  REQUIRE_FALSE(no_account.ok());
  CHECK(no_account.error().code == ErrorCode::kNotFound);

  core::Change c = new_service(acct, "api");
  REQUIRE(s->create_service(c).ok());
  const std::string sid = c.service.id;

  auto got = s->get_service(acct, sid);
  REQUIRE(got.ok());
  CHECK(got->name == "api");
  CHECK(got->config == c.service.config);
  CHECK(got->conditions == c.service.conditions);
  CHECK(got->desired_deployment_id == c.revision->id);
  CHECK(got->status == core::ServiceStatus::kPending);
  CHECK(got->generation == 1);
  auto listed = s->list_services(acct);
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK(listed->front().id == sid);
  REQUIRE(s->load_service(sid).ok());
  auto ids = s->list_service_ids();
  REQUIRE(ids.ok());
  CHECK(*ids == std::vector<std::string>{sid});

  auto cred = s->get_credential(sid);
  REQUIRE(cred.ok());
  REQUIRE(cred->has_value());
  CHECK((*cred)->registry_host == "ghcr.io");
  CHECK((*cred)->username == "bot");
  CHECK((*cred)->set_at == 1000);
  CHECK_FALSE((*cred)->expires_at.has_value());
  auto pw = unseal(*s, sid);
  REQUIRE(pw.ok());
  CHECK(pw->reveal() == kCanary);
  // The password is only unsealed for the registry and username the caller checked.
  CHECK(s->unseal_password(sid, "registry.example.com", "bot").error().code ==
        ErrorCode::kFailedPrecondition);
  CHECK(s->unseal_password(sid, "ghcr.io", "other").error().code == ErrorCode::kFailedPrecondition);

  auto next = s->next_revision_number(sid);
  REQUIRE(next.ok());
  CHECK(*next == 2);
  CHECK(s->list_revisions(sid, false)->empty());  // pending is not a successful deploy
  auto all = s->list_revisions(sid, true);
  REQUIRE(all.ok());
  REQUIRE(all->size() == 1);
  CHECK(all->front().config == c.service.config);
  auto rev = s->get_revision(sid, c.revision->id);
  REQUIRE(rev.ok());
  CHECK(rev->reason == "initial deployment");
  CHECK(s->get_revision(sid, "missing").error().code == ErrorCode::kNotFound);

  auto tasks = s->pending_tasks(sid);
  REQUIRE(tasks.ok());
  REQUIRE(tasks->size() == 1);
  CHECK(tasks->front().kind == core::TaskKind::kDeploy);
  core::Task t = tasks->front();
  t.state = core::TaskState::kSent;
  t.agent = "vm-1";
  t.attempts = 1;
  t.updated_at = 2000;
  REQUIRE(s->update_task(t).ok());
  tasks = s->pending_tasks(sid);
  REQUIRE(tasks->size() == 1);
  CHECK(tasks->front().agent == "vm-1");
  CHECK(tasks->front().attempts == 1);

  core::Revision done = *rev;
  done.state = core::RevisionState::kSucceeded;
  done.image_digest = "sha256:" + std::string(64, 'a');
  done.deploy_logs = {{"pull", "ok", "pulled", "", 1100, 900},
                      {"switch", "ok", "live", "", 2000, 5}};
  done.finished_at = 2100;
  core::AppService observed = *got;
  observed.status = core::ServiceStatus::kRunning;
  observed.current_deployment_id = done.id;
  observed.agent = "vm-1";
  observed.url = "http://127.0.0.1:30001";
  observed.updated_at = 2100;
  REQUIRE(s->record_outcome(done, observed, 20).ok());
  t.state = core::TaskState::kDone;
  REQUIRE(s->update_task(t).ok());
  CHECK(s->pending_tasks(sid)->empty());
  // A done task is never changed again: a late "sent" write cannot resurrect it.
  core::Task late = t;
  late.state = core::TaskState::kSent;
  CHECK(s->update_task(late).error().code == ErrorCode::kFailedPrecondition);
  CHECK(s->pending_tasks(sid)->empty());
  auto ok_revs = s->list_revisions(sid, false);
  REQUIRE(ok_revs->size() == 1);
  CHECK(ok_revs->front().deploy_logs == done.deploy_logs);
  CHECK(ok_revs->front().image_digest == done.image_digest);

  REQUIRE(s->upsert_agent({"vm-1", "zone-a", "ab12", 100}).ok());
  REQUIRE(s->upsert_agent({"vm-1", "zone-b", "cd34", 200}).ok());
  auto agents = s->list_agents();
  REQUIRE(agents->size() == 1);
  CHECK(agents->front().zone == "zone-b");
  CHECK(agents->front().last_seen == 200);

  // A PATCH that drops the credential, then a reopen: everything acknowledged is still there.
  core::Change patch;
  patch.service = *s->load_service(sid);
  patch.service.config.registry_username.clear();
  patch.service.status = core::ServiceStatus::kPendingModification;
  patch.service.generation = 2;
  patch.credential.action = core::CredentialWrite::Action::kRemove;
  REQUIRE(s->apply_change(patch, 1).ok());
  s.reset();
  s = open_ok(tmp.data(), fixed_clock(&now));
  auto after = s->load_service(sid);
  REQUIRE(after.ok());
  CHECK(after->generation == 2);
  CHECK(after->status == core::ServiceStatus::kPendingModification);
  CHECK(after->current_deployment_id == done.id);
  CHECK(after->agent == "vm-1");
  CHECK_FALSE(s->get_credential(sid)->has_value());
  CHECK(unseal(*s, sid).error().code == ErrorCode::kNotFound);

  REQUIRE(s->delete_service(sid).ok());
  CHECK(s->load_service(sid).error().code == ErrorCode::kNotFound);
  CHECK(s->list_revisions(sid, true)->empty());
  CHECK(s->pending_tasks(sid)->empty());
  CHECK(s->delete_service(sid).error().code == ErrorCode::kNotFound);
}

TEST_CASE("a second service with a taken name is a conflict and writes nothing", "[store]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  const std::string acct = add_account(*s, "alice");
  REQUIRE(s->create_service(new_service(acct, "api")).ok());
  core::Change dup = new_service(acct, "api");
  Status st = s->create_service(dup);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kConflict);
  CHECK(st.error().message == "an app service with this name already exists");
  CHECK(s->get_revision(dup.service.id, dup.revision->id).error().code == ErrorCode::kNotFound);
  CHECK(s->list_service_ids()->size() == 1);
  // The same name in another account is fine.
  const std::string other = add_account(*s, "bob");
  CHECK(s->create_service(new_service(other, "api")).ok());
  // And a taken account name is a conflict too.
  auto again = s->add_account("alice", Secret("x"));
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == ErrorCode::kConflict);
}

TEST_CASE("a change against a stale generation is a conflict and changes nothing", "[store]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  const std::string acct = add_account(*s, "alice");
  core::Change c = new_service(acct, "api");
  REQUIRE(s->create_service(c).ok());
  core::Change patch;
  patch.service = c.service;
  patch.service.generation = 2;
  patch.service.config.image_ref = "ghcr.io/acme/api:2";
  REQUIRE(s->apply_change(patch, 1).ok());
  core::Change stale = patch;
  stale.service.config.image_ref = "ghcr.io/acme/api:3";
  stale.service.generation = 2;
  core::Revision r = *c.revision;
  r.id = crypto::random_uuid();
  r.number = 2;
  stale.revision = r;
  Status st = s->apply_change(stale, 1);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kConflict);
  CHECK(s->load_service(c.service.id)->config.image_ref == "ghcr.io/acme/api:2");
  CHECK(s->get_revision(c.service.id, r.id).error().code == ErrorCode::kNotFound);
}

TEST_CASE("another account's app service is not found, for reads and writes", "[store]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  const std::string alice = add_account(*s, "alice");
  const std::string bob = add_account(*s, "bob");
  core::Change c = new_service(alice, "api");
  REQUIRE(s->create_service(c).ok());
  CHECK(s->get_service(bob, c.service.id).error().code == ErrorCode::kNotFound);
  CHECK(s->list_services(bob)->empty());
  core::Change hijack;
  hijack.service = c.service;
  hijack.service.account_id = bob;
  hijack.service.generation = 2;
  CHECK(s->apply_change(hijack, 1).error().code == ErrorCode::kNotFound);
  CHECK(s->load_service(c.service.id)->account_id == alice);
}

TEST_CASE("a registry password appears in no byte of the data directory", "[store][secrets]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  const std::string acct = add_account(*s, "alice");
  REQUIRE(s->add_account("carol", Secret(std::string("acct-") + kCanary)).ok());
  auto token = s->create_token("alice", "ci");
  REQUIRE(token.ok());
  const std::string token_text(token->reveal());
  // berth_<16 hex id>_<secret>; split by position: the base64url secret may contain '_'.
  const std::string token_secret = token_text.substr(23);
  REQUIRE(token_secret.size() == 43);
  for (int i = 0; i < 20; ++i) {
    REQUIRE(s->create_service(new_service(acct, "svc-" + std::to_string(i))).ok());
  }
  // Replace one credential with another password: the old ciphertext row is overwritten.
  core::Change patch;
  patch.service = s->list_services(acct)->front();
  patch.service.generation = 2;
  patch.credential.action = core::CredentialWrite::Action::kReplace;
  patch.credential.registry_host = "ghcr.io";
  patch.credential.username = "bot";
  patch.credential.password = Secret(std::string("second-") + kCanary);
  REQUIRE(s->apply_change(patch, 1).ok());
  REQUIRE(fs::exists(tmp.data() / "berth.db-wal"));
  CHECK(files_containing(tmp.data(), kCanary).empty());
  CHECK(files_containing(tmp.data(), token_secret).empty());
  REQUIRE(s->checkpoint().ok());
  CHECK(files_containing(tmp.data(), kCanary).empty());
  CHECK(files_containing(tmp.data(), token_secret).empty());
  s.reset();
  CHECK(files_containing(tmp.data(), kCanary).empty());
  // The scan itself can find what is there: the plain username is stored.
  CHECK_FALSE(files_containing(tmp.data(), "ghcr.io/acme/svc-3").empty());
}

TEST_CASE("data directory, key and database files are private to the owner", "[store][secrets]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  REQUIRE(s->add_account("alice", Secret("pw")).ok());
  CHECK(file_mode(tmp.data()) == 0700);
  CHECK(file_mode(tmp.data() / "master.key") == 0600);
  CHECK(file_mode(tmp.data() / "berth.db") == 0600);
  CHECK(file_mode(tmp.data() / "berth.db-wal") == 0600);
}

TEST_CASE("a credential row copied to another app service does not unseal", "[store][secrets]") {
  TempDir tmp;
  std::string a, b;
  {
    auto s = open_ok(tmp.data());
    const std::string acct = add_account(*s, "alice");
    core::Change ca = new_service(acct, "one");
    core::Change cb = new_service(acct, "two", "other-password");
    REQUIRE(s->create_service(ca).ok());
    REQUIRE(s->create_service(cb).ok());
    a = ca.service.id;
    b = cb.service.id;
    REQUIRE(unseal(*s, b)->reveal() == "other-password");
  }
  {
    SQLite::Database db((tmp.data() / "berth.db").string(), SQLite::OPEN_READWRITE);
    SQLite::Statement st(db,
                         "UPDATE credentials SET (key_id, nonce, ciphertext) = (SELECT key_id, "
                         "nonce, ciphertext FROM credentials WHERE service_id = ?) "
                         "WHERE service_id = ?");
    st.bind(1, a);
    st.bind(2, b);
    REQUIRE(st.exec() == 1);
  }
  auto s = open_ok(tmp.data());
  auto pw = unseal(*s, b);
  REQUIRE_FALSE(pw.ok());
  CHECK(pw.error().code == ErrorCode::kDataLoss);
  CHECK(unseal(*s, a)->reveal() == kCanary);
}

TEST_CASE("rotating the master key re-seals every credential and retires the old key",
          "[store][secrets]") {
  TempDir tmp;
  auto s = open_ok(tmp.data());
  const std::string acct = add_account(*s, "alice");
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    core::Change c = new_service(acct, "svc-" + std::to_string(i));
    ids.push_back(c.service.id);
    REQUIRE(s->create_service(c).ok());
  }
  const std::string old_id = s->current_key_id();
  auto rot = s->rotate_master_key();
  REQUIRE(rot.ok());
  CHECK(rot->old_key_id == old_id);
  CHECK(rot->new_key_id != old_id);
  CHECK(rot->resealed == 3);
  CHECK(s->current_key_id() == rot->new_key_id);
  CHECK_FALSE(fs::exists(tmp.data() / "master.key.next"));
  for (const auto& id : ids) CHECK(unseal(*s, id)->reveal() == kCanary);
  REQUIRE(s->checkpoint().ok());
  s.reset();

  {
    SQLite::Database db((tmp.data() / "berth.db").string(), SQLite::OPEN_READONLY);
    CHECK(db.execAndGet("SELECT count(*) FROM credentials WHERE key_id = '" + old_id + "'")
              .getInt() == 0);
    CHECK(db.execAndGet("SELECT count(*) FROM credentials WHERE key_id = '" + rot->new_key_id + "'")
              .getInt() == 3);
  }
  auto ring = crypto::Keyring::load(tmp.data() / "master.key");
  REQUIRE(ring.ok());
  CHECK(ring->current_key_id() == rot->new_key_id);
  CHECK_FALSE(ring->has_key(old_id));
  CHECK(files_containing(tmp.data(), kCanary).empty());
  s = open_ok(tmp.data());
  for (const auto& id : ids) CHECK(unseal(*s, id)->reveal() == kCanary);
}

TEST_CASE("a rotation interrupted before the re-seal is completed by the next open",
          "[store][secrets]") {
  TempDir tmp;
  std::string sid, old_id;
  {
    auto s = open_ok(tmp.data());
    core::Change c = new_service(add_account(*s, "alice"), "api");
    sid = c.service.id;
    REQUIRE(s->create_service(c).ok());
    old_id = s->current_key_id();
  }
  std::string new_id;
  {
    // The crash: begin_rotation wrote master.key.next, nothing was re-sealed or renamed.
    auto ring = crypto::Keyring::load(tmp.data() / "master.key");
    REQUIRE(ring.ok());
    REQUIRE(ring->begin_rotation().ok());
    new_id = ring->current_key_id();
    REQUIRE(fs::exists(tmp.data() / "master.key.next"));
  }
  auto s = open_ok(tmp.data());
  CHECK_FALSE(fs::exists(tmp.data() / "master.key.next"));
  CHECK(s->current_key_id() == new_id);
  CHECK(unseal(*s, sid)->reveal() == kCanary);
  s.reset();
  auto ring = crypto::Keyring::load(tmp.data() / "master.key");
  REQUIRE(ring.ok());
  CHECK(ring->current_key_id() == new_id);
  CHECK_FALSE(ring->has_key(old_id));
  s = open_ok(tmp.data());
  CHECK(unseal(*s, sid)->reveal() == kCanary);
}

TEST_CASE("kill -9 in the middle of a write loop loses no acknowledged write", "[store][crash]") {
  TempDir tmp;
  std::string acct;
  {
    auto s = open_ok(tmp.data());
    acct = add_account(*s, "alice");
  }
  // The child writes until it is killed and acknowledges each committed service id.
  const std::vector<std::string> lines = acks_until_killed(
      [&](const Ack& ack) {
        auto opened = SqliteStore::open(tmp.data());
        if (!opened.ok()) ::_exit(3);
        auto& s = *opened.value();
        for (int i = 0;; ++i) {
          core::Change c = new_service(acct, "svc-" + std::to_string(i));
          if (!s.create_service(c).ok()) ::_exit(4);
          core::Revision r = *c.revision;
          r.state = core::RevisionState::kSucceeded;
          r.image_digest = "sha256:" + std::string(64, 'b');
          r.deploy_logs = {{"pull", "ok", "pulled", std::string(2000, 'x'), 1, 2}};
          r.finished_at = 3000;
          core::AppService svc = c.service;
          svc.status = core::ServiceStatus::kRunning;
          svc.current_deployment_id = r.id;
          if (!s.record_outcome(r, svc, 20).ok()) ::_exit(5);
          ack(c.service.id);
        }
      },
      [](const std::vector<std::string>& so_far) { return so_far.size() >= 25; });
  REQUIRE(lines.size() >= 25);
  const std::set<std::string> acked(lines.begin(), lines.end());

  {
    SQLite::Database db((tmp.data() / "berth.db").string(), SQLite::OPEN_READWRITE);
    CHECK(db.execAndGet("PRAGMA integrity_check").getString() == "ok");
  }
  auto s = open_ok(tmp.data());
  auto ids = s->list_service_ids();
  REQUIRE(ids.ok());
  for (const auto& id : acked) {
    auto svc = s->load_service(id);
    REQUIRE(svc.ok());
    CHECK(svc->status == core::ServiceStatus::kRunning);
    CHECK(unseal(*s, id)->reveal() == kCanary);
  }
  // Every revision row that exists is whole: decodable, and its outcome written with its
  // service (a Running service always has its succeeded revision, never a pending one).
  for (const auto& id : *ids) {
    auto revs = s->list_revisions(id, true);
    REQUIRE(revs.ok());
    REQUIRE(revs->size() == 1);
    const auto svc = s->load_service(id);
    if (svc->status == core::ServiceStatus::kRunning) {
      CHECK(revs->front().state == core::RevisionState::kSucceeded);
      CHECK(revs->front().deploy_logs.size() == 1);
      CHECK(revs->front().deploy_logs.front().detail.size() == 2000);
    } else {
      CHECK(revs->front().state == core::RevisionState::kPending);
    }
  }
  CHECK(ids->size() >= acked.size());
}

TEST_CASE("a full disk surfaces as resource exhausted and leaves the store usable",
          "[store][errors]") {
  TempDir tmp;
  std::string acct;
  {
    auto s = open_ok(tmp.data());
    acct = add_account(*s, "alice");
  }
  StoreOptions o;
  o.max_page_count = 60;
  auto s = open_ok(tmp.data(), o);
  CHECK_FALSE(s->write_blocked().has_value());
  Status last;
  int written = 0;
  for (int i = 0; i < 500 && last.ok(); ++i) {
    core::Change c = new_service(acct, "svc-" + std::to_string(i));
    c.service.config.env["BIG"] = std::string(3000, 'z');
    last = s->create_service(c);
    if (last.ok()) ++written;
  }
  REQUIRE_FALSE(last.ok());
  CHECK(last.error().code == ErrorCode::kResourceExhausted);
  CHECK(last.error().message == "the database disk is full");
  CHECK(written > 0);
  auto ids = s->list_service_ids();
  REQUIRE(ids.ok());
  CHECK(static_cast<int>(ids->size()) == written);
  for (const auto& id : *ids) CHECK(s->list_revisions(id, true)->size() == 1);
  // Readiness reads the verdict of the last write; a write that commits clears it.
  CHECK(s->write_blocked() == std::optional<std::string>("the database disk is full"));
  REQUIRE(s->delete_service(ids->front()).ok());
  CHECK_FALSE(s->write_blocked().has_value());
}

TEST_CASE("a read-only database surfaces writes as permission denied", "[store][errors]") {
  TempDir tmp;
  std::string acct;
  {
    auto s = open_ok(tmp.data());
    acct = add_account(*s, "alice");
  }
  StoreOptions o;
  o.read_only = true;
  auto s = open_ok(tmp.data(), o);
  CHECK(s->authenticate_password("alice", Secret("account-password-alice")).ok());
  Status st = s->create_service(new_service(acct, "api"));
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::kPermissionDenied);
  CHECK(s->upsert_agent({"vm", "z", "f", 1}).error().code == ErrorCode::kPermissionDenied);
  CHECK(s->write_blocked() == std::optional<std::string>("the database is read-only"));
  CHECK(s->list_service_ids()->empty());
}

TEST_CASE("a file that is not a database is data loss, not a crash", "[store][errors]") {
  TempDir tmp;
  fs::create_directories(tmp.data());
  std::ofstream(tmp.data() / "berth.db") << std::string(8192, 'G');
  auto s = SqliteStore::open(tmp.data());
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == ErrorCode::kDataLoss);
}

TEST_CASE("a version 1 database is upgraded in place with its data intact", "[store][schema]") {
  TempDir tmp;
  fs::create_directories(tmp.data());
  const std::string sid = "11111111-1111-4111-8111-111111111111";
  {
    SQLite::Database db((tmp.data() / "berth.db").string(),
                        SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
    db.exec(store::migrations()[0].sql);
    db.exec("INSERT INTO schema_version VALUES (1, 0)");
    db.exec("INSERT INTO accounts VALUES ('acct-1', 'alice', 'scrypt$x', 10)");
    db.exec(
        "INSERT INTO app_services VALUES ('" + sid +
        "', 'acct-1', 'legacy', 'tier-1', 'zone-a', 10, 'standard', 'Running', "
        "'docker.io/library/nginx:1', 80, '{\"A\":\"1\"}', '[]', '', "
        "'{\"path\":\"\",\"interval_seconds\":5,\"timeout_seconds\":3,\"healthy_threshold\":1}', "
        "'docker.io', '', 'rev-1', 'rev-1', 'vm-1', '[]', '', 4, 10, 20)");
    db.exec("INSERT INTO revisions VALUES ('rev-1', '" + sid +
            "', 1, '{\"image_ref\":\"docker.io/library/nginx:1\",\"container_port\":80,"
            "\"env\":{},\"custom_domains\":[],\"registry_username\":\"\",\"health\":{\"path\":"
            "\"\",\"interval_seconds\":5,\"timeout_seconds\":3,\"healthy_threshold\":1}}', "
            "'docker.io', 'initial deployment', 'succeeded', 'sha256:aa', '[]', 10, 15)");
    db.exec("INSERT INTO tasks VALUES ('task-1', '" + sid +
            "', 'rev-1', 'deploy', 'sent', 'vm-1', 2, 10, 12)");
  }
  {
    auto s = open_ok(tmp.data());
    CHECK(s->schema_version() == store::latest_schema_version());
    auto svc = s->load_service(sid);
    REQUIRE(svc.ok());
    CHECK(svc->name == "legacy");
    CHECK(svc->generation == 4);
    CHECK(svc->config.env.at("A") == "1");
    CHECK(s->get_service("acct-1", sid).ok());
    auto revs = s->list_revisions(sid, false);
    REQUIRE(revs->size() == 1);
    CHECK(revs->front().image_digest == "sha256:aa");
    auto tasks = s->pending_tasks(sid);
    REQUIRE(tasks->size() == 1);
    CHECK(tasks->front().attempts == 2);
  }
  SQLite::Database db((tmp.data() / "berth.db").string(), SQLite::OPEN_READONLY);
  CHECK(db.execAndGet("SELECT MAX(version) FROM schema_version").getInt() ==
        store::latest_schema_version());
  CHECK(db.execAndGet("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = "
                      "'tasks_service_state'")
            .getInt() == 1);
  // The per-service task lookup now uses the v2 index rather than a scan.
  SQLite::Statement plan(db,
                         "EXPLAIN QUERY PLAN SELECT id FROM tasks WHERE service_id = 'x' AND "
                         "state != 'done'");
  REQUIRE(plan.executeStep());
  CHECK(plan.getColumn(3).getString().find("tasks_service_state") != std::string::npos);
}

TEST_CASE("a database from a newer berth is refused rather than misread", "[store][schema]") {
  TempDir tmp;
  { auto s = open_ok(tmp.data()); }
  {
    SQLite::Database db((tmp.data() / "berth.db").string(), SQLite::OPEN_READWRITE);
    db.exec("INSERT INTO schema_version VALUES (999, 0)");
  }
  auto s = SqliteStore::open(tmp.data());
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == ErrorCode::kFailedPrecondition);
}
