// berth-bench-scale: the controller's state and reconcile loop at 10,000 app services.
//
//   store       SqliteStore with 10,000 services (revision + task each, every tenth with a
//               sealed credential) across 100 accounts: per-call latency of the per-request and
//               per-event paths at 10,000 services against the same calls at 100 services in
//               the same store; create_service against a raw sqlite3 single-row insert.
//   reconciler  the real Reconciler + SqliteStore with a fake agent gateway and digest resolver:
//               prime(), driving every service through placement, digest resolution, dispatch
//               and a successful result until converged, a converged reconcile, agent_connected,
//               and resident memory per service, at 10,000 against 100 (memory: against 1,000).
//
// Each phase runs in a forked child (bench_util.h) so that its memory figures are its own.
// The data directory defaults to /dev/shm (tmpfs): the figures measure berth's work (SQL,
// indexes, encoding), not the disk's fsync latency, which is a constant per commit and is
// reported separately (store.disk.*) for the disk under /tmp.
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_fixture.h"
#include "bench_util.h"
#include "common/log.h"
#include "core/execution.h"
#include "core/ports.h"
#include "core/revision.h"
#include "crypto/password.h"
#include "runtime/controller.h"
#include "runtime/reconciler.h"
#include "runtime/workqueue.h"
#include "store/sqlite_store.h"

using namespace berth;
using bench::Figures;
using bench::Samples;
using bench::Unit;
namespace fs = std::filesystem;

namespace {

using bench::kEpoch;
const std::string kDigest = bench::fixed_digest();

struct Options {
  int services = 10'000;
  int small = 100;
  int mid = 1'000;
  int accounts = 100;
  int agents = 200;
  int more_agents = 1'000;
  fs::path dir;       // tmpfs (or what --dir says)
  fs::path disk_dir;  // a real disk, for the fsync figures; empty: skipped
  bool disk_dir_set = false;
  bool store = true;
  bool reconciler = true;
};

// --- fakes of the reconciler's outward ports (the real ones need agents and a registry) ------

class RecordingGateway final : public core::AgentGateway {
 public:
  struct Sent {
    std::string agent, task_id, service_id, revision_id;
  };
  std::vector<Sent> sent;  // drained by the driver after every reconcile

  Status send_deploy(const std::string& agent, const core::DeployOrder& order,
                     const Secret*) override {
    sent.push_back({agent, order.task_id, order.service_id, order.revision_id});
    return Status::Ok();
  }
  Status send_restart(const std::string& agent, const std::string& task_id,
                      const std::string& service_id) override {
    sent.push_back({agent, task_id, service_id, {}});
    return Status::Ok();
  }
  Status send_remove(const std::string& agent, const std::string& task_id,
                     const std::string& service_id) override {
    sent.push_back({agent, task_id, service_id, {}});
    return Status::Ok();
  }
};

class FixedResolver final : public core::DigestResolver {
 public:
  Result<std::string> resolve(const std::string&, const core::RegistryLogin*) override {
    return kDigest;
  }
};

// --- helpers -----------------------------------------------------------------------------------

template <class T>
T must(Result<T> r, const char* what) {
  if (!r.ok()) bench::die(what, r.error().message);
  return std::move(r).value();
}

void must(const Status& st, const char* what) {
  if (!st.ok()) bench::die(what, st.error().message);
}

std::unique_ptr<store::SqliteStore> open_store(const fs::path& dir) {
  return must(store::SqliteStore::open(dir), "SqliteStore::open");
}

using bench::make_change;
using bench::make_temp_dir;

// One row per transaction (BEGIN IMMEDIATE; INSERT; COMMIT) with the store's durability
// settings, a reused prepared statement and a random UUID key: the floor under create_service.
Samples raw_inserts(const fs::path& dir, int n) {
  sqlite3* db = nullptr;
  const std::string file = (dir / "raw.db").string();
  if (sqlite3_open(file.c_str(), &db) != SQLITE_OK) bench::die("sqlite3_open", file);
  const char* setup =
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
      "CREATE TABLE IF NOT EXISTS t (id TEXT PRIMARY KEY, payload TEXT NOT NULL);";
  if (sqlite3_exec(db, setup, nullptr, nullptr, nullptr) != SQLITE_OK) {
    bench::die("sqlite3 setup", sqlite3_errmsg(db));
  }
  sqlite3_stmt* ins = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO t (id, payload) VALUES (?, ?)", -1, &ins, nullptr);
  const std::string payload(400, 'p');
  Samples s;
  for (int i = 0; i < n; ++i) {
    const std::string id = crypto::random_uuid();
    const auto t0 = bench::Clock::now();
    sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    sqlite3_bind_text(ins, 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(ins, 2, payload.data(), static_cast<int>(payload.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(ins) != SQLITE_DONE) bench::die("sqlite3 insert", sqlite3_errmsg(db));
    sqlite3_reset(ins);
    if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      bench::die("sqlite3 commit", sqlite3_errmsg(db));
    }
    s.add(bench::since_ns(t0));
  }
  sqlite3_finalize(ins);
  sqlite3_close(db);
  return s;
}

void put(Figures& f, const std::string& key, Samples& s) {
  f[key + ".p50"] = s.p50();
  f[key + ".p99"] = s.p99();
  f[key + ".mean"] = s.mean();
}

// --- store ----------------------------------------------------------------------------------

struct Svc {
  std::string id;
  std::string account;
};

// The per-request and per-event store calls on random services of one store, accumulated
// over rounds so that the small and the large store are measured alternately (on a loaded
// machine both then see the same contention).
struct StoreOps {
  store::SqliteStore* st = nullptr;
  std::vector<Svc> svcs;
  std::string list_account;
  std::size_t list_rows = 0;
  std::mt19937 rng{42};
  Samples get, load, list, pending, outcome;

  void round() {
    std::uniform_int_distribution<std::size_t> pick(0, svcs.size() - 1);
    for (int i = 0; i < 300; ++i) {
      const Svc& s = svcs[pick(rng)];
      auto t0 = bench::Clock::now();
      must(st->get_service(s.account, s.id), "get_service");
      get.add(bench::since_ns(t0));
      const Svc& s2 = svcs[pick(rng)];
      t0 = bench::Clock::now();
      must(st->load_service(s2.id), "load_service");
      load.add(bench::since_ns(t0));
      const Svc& s3 = svcs[pick(rng)];
      t0 = bench::Clock::now();
      auto v = must(st->pending_tasks(s3.id), "pending_tasks");
      pending.add(bench::since_ns(t0));
      if (v.size() != 1) bench::die("pending_tasks", "expected one queued task");
    }
    for (int i = 0; i < 20; ++i) {
      const auto t0 = bench::Clock::now();
      auto v = must(st->list_services(list_account), "list_services");
      list.add(bench::since_ns(t0));
      if (v.size() != list_rows) bench::die("list_services", "unexpected row count");
    }
    for (int i = 0; i < 50; ++i) {
      const Svc& s = svcs[pick(rng)];
      core::AppService svc = must(st->load_service(s.id), "load_service");
      core::Revision rev = must(st->get_revision(s.id, svc.desired_deployment_id), "get_revision");
      rev.image_digest = kDigest;  // what the resolve step records
      svc.updated_at += 1;
      const auto t0 = bench::Clock::now();
      must(st->record_outcome(rev, svc, core::kDefaultKeepSucceededRevisions), "record_outcome");
      outcome.add(bench::since_ns(t0));
    }
  }

  void report(const std::string& tag, Figures& f) {
    put(f, tag + ".get_service", get);
    put(f, tag + ".load_service", load);
    put(f, tag + ".list_services", list);
    put(f, tag + ".pending_tasks", pending);
    put(f, tag + ".record_outcome", outcome);
  }
};

void store_phase(const Options& o, Figures& f) {
  const Secret pw("bench-account-password");
  auto create = [](store::SqliteStore& st, std::vector<Svc>& svcs, int i,
                   const std::string& account) {
    core::Change c = make_change(i, account);
    const auto t0 = bench::Clock::now();
    must(st.create_service(c), "create_service");
    const double ns = bench::since_ns(t0);
    svcs.push_back({c.service.id, account});
    return ns;
  };

  // The baseline: a store that holds `small` services of one account.
  bench::progress("store: creating " + std::to_string(o.small) + " services");
  const fs::path small_dir = make_temp_dir(o.dir, "store-small");
  auto small_st = open_store(small_dir);
  StoreOps small;
  small.st = small_st.get();
  small.list_account = must(small_st->add_account("acct-000", pw), "add_account");
  small.list_rows = static_cast<std::size_t>(o.small);
  Samples first;
  for (int i = 0; i < o.small; ++i) first.add(create(*small_st, small.svcs, i, small.list_account));
  put(f, "create.first", first);

  // The same first `small` services for account 0, then the rest across the other accounts, so
  // list_services(account 0) returns as many rows in both stores and only the total differs.
  bench::progress("store: adding " + std::to_string(o.accounts) +
                  " accounts (scrypt, ~0.1 s each) and creating " + std::to_string(o.services) +
                  " services");
  const fs::path dir = make_temp_dir(o.dir, "store");
  auto st = open_store(dir);
  StoreOps large;
  large.st = st.get();
  std::vector<std::string> accounts;
  for (int a = 0; a < o.accounts; ++a) {
    char name[32];
    std::snprintf(name, sizeof name, "acct-%03d", a);
    accounts.push_back(must(st->add_account(name, pw), "add_account"));
  }
  large.list_account = accounts[0];
  large.list_rows = static_cast<std::size_t>(o.small);
  std::vector<double> grow;
  const auto t_grow = bench::Clock::now();
  for (int i = 0; i < o.services; ++i) {
    const std::size_t a = i < o.small ? 0 : 1 + static_cast<std::size_t>(i) % (accounts.size() - 1);
    grow.push_back(create(*st, large.svcs, i, accounts[a]));
  }
  f["create.grow_total_ns"] = bench::since_ns(t_grow);
  f["create.grow_count"] = static_cast<double>(grow.size());
  Samples last;
  for (std::size_t i = grow.size() - static_cast<std::size_t>(o.small); i < grow.size(); ++i) {
    last.add(grow[i]);
  }
  put(f, "create.last", last);

  bench::progress("store: measuring " + std::to_string(o.small) + " and " +
                  std::to_string(o.services) + " services alternately");
  for (int r = 0; r < 10; ++r) {
    small.round();
    large.round();
  }
  small.report("small", f);
  large.report("large", f);
  small_st.reset();
  std::error_code ec;
  f["store.db_bytes"] = static_cast<double>(fs::file_size(dir / "berth.db", ec));
  st.reset();
  fs::remove_all(dir, ec);
  fs::remove_all(small_dir, ec);

  const fs::path raw_dir = make_temp_dir(o.dir, "raw");
  auto raw = raw_inserts(raw_dir, 2000);
  put(f, "raw_insert", raw);
  fs::remove_all(raw_dir, ec);

  if (!o.disk_dir.empty()) {
    bench::progress("store: fsync-bound figures on " + o.disk_dir.string());
    const fs::path ddir = make_temp_dir(o.disk_dir, "disk");
    auto raw_disk = raw_inserts(ddir, 100);
    put(f, "disk.raw_insert", raw_disk);
    auto dst = open_store(ddir / "store");
    const std::string acct = must(dst->add_account("acct-disk", pw), "add_account");
    Samples disk_create;
    for (int i = 0; i < 100; ++i) {
      core::Change c = make_change(i, acct);
      const auto t0 = bench::Clock::now();
      must(dst->create_service(c), "create_service");
      disk_create.add(bench::since_ns(t0));
    }
    put(f, "disk.create", disk_create);
    dst.reset();
    fs::remove_all(ddir, ec);
  }
}

// --- reconciler -------------------------------------------------------------------------------

// Fills a fresh data dir with `n` services of one account (in its own child: the account's
// scrypt hash takes 32 MiB, which would otherwise hide the reconciler's growth under maxrss).
fs::path populate(const Options& o, int n) {
  const fs::path dir = make_temp_dir(o.dir, "reconciler");
  bench::run_child("populate", [&](Figures& f) {
    auto st = open_store(dir);
    const std::string acct =
        must(st->add_account("acct-rec", Secret("bench-account-password")), "add_account");
    for (int i = 0; i < n; ++i) must(st->create_service(make_change(i, acct)), "create_service");
    f["services"] = n;
  });
  return dir;
}

std::string agent_name(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "vm-%04d", i);
  return buf;
}

// One controller: the real reconciler over a SqliteStore, the fake ports, a work queue on a
// manual clock (never advanced: timed requeues stay parked, as in a quiet minute) and the
// Controller's outcome handling, driven synchronously with process_one().
struct Loop {
  std::unique_ptr<store::SqliteStore> st;
  RecordingGateway gateway;
  FixedResolver resolver;
  runtime::ManualClock clock;
  runtime::WorkQueue queue;
  core::UnixMillis now = kEpoch + 10'000'000;
  runtime::Reconciler rec;
  runtime::Controller ctl;
  std::uint64_t dispatched = 0;
  int port = 20000;
  Samples reconciles, results;  // of drive()

  explicit Loop(const fs::path& dir)
      : st(open_store(dir)),
        queue(clock,
              runtime::BackoffPolicy{std::chrono::milliseconds(5), std::chrono::seconds(1), 0.0}),
        rec(*st, gateway, resolver, queue,
            runtime::ReconcilerOptions{core::kDefaultKeepSucceededRevisions,
                                       [this] { return ++now; },
                                       [] { return crypto::random_uuid(); }, "127.0.0.1"}),
        ctl(
            queue, [this](const std::string& k) { return rec.reconcile(k); },
            runtime::ControllerOptions{"appservice", 1, runtime::Duration::zero(), {}}) {}

  // Reconciles until nothing is ready; every dispatched task is answered with a success right
  // after the reconcile that sent it (the agent link would deliver it on another thread).
  void drive() {
    for (;;) {
      const auto r0 = bench::Clock::now();
      const bool any = ctl.process_one();
      if (any) reconciles.add(bench::since_ns(r0));
      if (gateway.sent.empty()) {
        if (!any) break;
        continue;
      }
      for (const auto& s : gateway.sent) {
        ++dispatched;
        core::TaskOutcome out;
        out.task_id = s.task_id;
        out.service_id = s.service_id;
        out.revision_id = s.revision_id;
        out.ok = true;
        out.image_digest = kDigest;
        out.stable_port = port++;
        out.logs.push_back(core::DeployLogEntry{"pull", "ok", "pulled", "", now, 120});
        out.logs.push_back(core::DeployLogEntry{"switch", "ok", "switched", "", now, 3});
        const auto q0 = bench::Clock::now();
        rec.task_result(s.agent, out);
        results.add(bench::since_ns(q0));
      }
      gateway.sent.clear();
    }
  }

  void drain() {
    while (auto k = queue.try_get()) queue.done(*k);
  }

  // Reconciles `keys` once each (all converged), timing every call into `into`.
  void converged(const std::vector<std::string>& keys, Samples& into) {
    for (const auto& id : keys) queue.add(id);
    for (;;) {
      const auto c0 = bench::Clock::now();
      if (!ctl.process_one()) break;
      into.add(bench::since_ns(c0));
    }
    if (!gateway.sent.empty()) bench::die("reconciler", "a converged service dispatched a task");
  }
};

// A fresh controller over freshly created services: prime, deploy everything, memory.
void reconciler_phase(const Options& o, const fs::path& dir, int n, Figures& f) {
  Loop l(dir);
  for (int a = 0; a < o.agents; ++a) l.rec.agent_connected(agent_name(a), "local", {});
  const std::int64_t rss0 = bench::rss_bytes(), maxrss0 = bench::maxrss_bytes();
  auto t0 = bench::Clock::now();
  must(l.rec.prime(), "prime");
  f["prime_ns"] = bench::since_ns(t0);
  t0 = bench::Clock::now();
  l.drive();
  f["drive_ns"] = bench::since_ns(t0);
  const auto stats = l.rec.stats();
  if (stats.deploys_succeeded != static_cast<std::uint64_t>(n)) {
    bench::die("reconciler", "did not converge: " + std::to_string(stats.deploys_succeeded) +
                                 " of " + std::to_string(n) + " deployed");
  }
  f["rss_per_service"] = static_cast<double>(bench::rss_bytes() - rss0) / n;
  f["maxrss_per_service"] = static_cast<double>(bench::maxrss_bytes() - maxrss0) / n;
  f["reconciles"] = static_cast<double>(l.reconciles.size());
  put(f, "drive_reconcile", l.reconciles);
  put(f, "task_result", l.results);
}

// A restarted controller over converged services: every agent reconnects reporting the apps it
// runs, so nothing is deployed again. Returns the service ids.
std::vector<std::string> restart(const Options& o, Loop& l) {
  auto ids = must(l.st->list_service_ids(), "list_service_ids");
  std::map<std::string, std::vector<std::pair<std::string, core::ObservedApp>>> apps;
  for (const auto& id : ids) {
    auto svc = must(l.st->load_service(id), "load_service");
    apps[svc.agent].push_back(
        {id, core::ObservedApp{svc.current_deployment_id, kDigest, 20000, true, ""}});
  }
  for (int a = 0; a < o.agents; ++a)
    l.rec.agent_connected(agent_name(a), "local", apps[agent_name(a)]);
  must(l.rec.prime(), "prime");
  l.drive();
  if (l.dispatched != 0) bench::die("reconciler", "a restart redeployed converged services");
  return ids;
}

// The per-event paths of a converged controller, the small and the large one alternately.
void steady_phase(const Options& o, const fs::path& small_dir, const fs::path& large_dir,
                  Figures& f) {
  Loop small(small_dir), large(large_dir);
  const auto small_ids = restart(o, small);
  auto t0 = bench::Clock::now();
  const auto large_ids = restart(o, large);
  f["restart_ns"] = bench::since_ns(t0);

  Samples conv_s, conv_l, idle_s, idle_l, app_s, app_l;
  auto hello = [](const std::vector<std::string>& ids) {
    std::vector<std::pair<std::string, core::ObservedApp>> h;
    for (const auto& id : ids)
      h.push_back({id, core::ObservedApp{"rev", kDigest, 20000, true, "task"}});
    return h;
  };
  const auto hello_s = hello(small_ids), hello_l = hello(large_ids);
  const int per_round = 2'000;
  std::size_t cursor = 0;
  for (int r = 0; r < 10; ++r) {
    for (int i = 0; i < per_round / static_cast<int>(small_ids.size()); ++i)
      small.converged(small_ids, conv_s);
    std::vector<std::string> slice;
    for (int i = 0; i < per_round; ++i) slice.push_back(large_ids[cursor++ % large_ids.size()]);
    large.converged(slice, conv_l);

    for (int i = 0; i < 200; ++i) {
      auto c0 = bench::Clock::now();
      small.rec.agent_connected("idle-agent", "elsewhere", {});
      idle_s.add(bench::since_ns(c0));
      c0 = bench::Clock::now();
      large.rec.agent_connected("idle-agent", "elsewhere", {});
      idle_l.add(bench::since_ns(c0));
    }
    // One agent reconnects reporting every service (a one-VM deployment): linear in its
    // report, so the cost per reported app should not depend on the total.
    for (std::size_t i = 0; i < large_ids.size() / small_ids.size(); ++i) {
      const auto c0 = bench::Clock::now();
      small.rec.agent_connected("vm-all", "local", hello_s);
      app_s.add(bench::since_ns(c0) / static_cast<double>(small_ids.size()));
      small.drain();
    }
    const auto c0 = bench::Clock::now();
    large.rec.agent_connected("vm-all", "local", hello_l);
    app_l.add(bench::since_ns(c0) / static_cast<double>(large_ids.size()));
    large.drain();
  }
  put(f, "small.converged", conv_s);
  put(f, "large.converged", conv_l);
  put(f, "small.connect_idle", idle_s);
  put(f, "large.connect_idle", idle_l);
  put(f, "small.connect_per_app", app_s);
  put(f, "large.connect_per_app", app_l);
  small.rec.agent_disconnected("vm-all");
  large.rec.agent_disconnected("vm-all");
  small.drain();
  large.drain();

  // Hundreds more agents (in another zone, hosting nothing): a converged reconcile should not
  // pay for them. Best p50 of five rounds each, before and after they connect.
  auto best_p50 = [&](double& out) {
    out = 1e18;
    for (int r = 0; r < 5; ++r) {
      Samples s;
      std::vector<std::string> slice;
      for (int i = 0; i < per_round; ++i) slice.push_back(large_ids[cursor++ % large_ids.size()]);
      large.converged(slice, s);
      out = std::min(out, s.p50());
    }
  };
  best_p50(f["agents_base.p50"]);
  for (int a = o.agents; a < o.more_agents; ++a)
    large.rec.agent_connected(agent_name(a), "elsewhere", {});
  best_p50(f["agents_more.p50"]);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) bench::die("usage", a + " needs a value");
      return argv[++i];
    };
    if (a == "--dir")
      o.dir = next();
    else if (a == "--disk-dir") {
      o.disk_dir = next();
      o.disk_dir_set = true;
    } else if (a == "--services")
      o.services = std::stoi(next());
    else if (a == "--agents")
      o.agents = std::stoi(next());
    else if (a == "store")
      o.reconciler = false;
    else if (a == "reconciler")
      o.store = false;
    else {
      std::fprintf(stderr,
                   "usage: berth-bench-scale [store|reconciler] [--dir DIR] [--disk-dir DIR|''] "
                   "[--services N] [--agents N]\n");
      std::exit(2);
    }
  }
  if (o.dir.empty()) o.dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : fs::temp_directory_path();
  // The fsync figures need a real disk: TMPDIR (or /tmp) unless that is where --dir already is.
  if (!o.disk_dir_set && fs::temp_directory_path() != o.dir) o.disk_dir = fs::temp_directory_path();
  if (o.services < 2 * o.small) bench::die("usage", "--services must be at least 200");
  o.mid = std::min(o.mid, o.services);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  log::set_level(log::Level::kWarn);
  log::set_sink([](std::string_view) {});  // the reconciler's info lines are not the figure
  const std::string N = bench::thousands(o.services), S = bench::thousands(o.small);
  bench::Table t;

  if (o.store) {
    Figures f = bench::run_child("store", [&](Figures& out) { store_phase(o, out); });
    t.section("store at scale (SqliteStore in " + o.dir.string() + ", " + N + " services, " +
              std::to_string(o.accounts) + " accounts)");
    t.figure("raw sqlite3 insert, 1 row/txn (mean)", f["raw_insert.mean"], Unit::kNanos,
             "baseline");
    t.ratio("create_service, first " + S + " (mean) vs raw insert", f["create.first.mean"],
            f["raw_insert.mean"], Unit::kNanos, 15, "overhead");
    t.ratio("create_service, last " + S + " at " + N + " vs first " + S, f["create.last.mean"],
            f["create.first.mean"], Unit::kNanos, 3);
    t.figure("create_service throughput while growing to " + N,
             f["create.grow_count"] / (f["create.grow_total_ns"] / 1e9), Unit::kPerSecond);
    for (const char* op : {"get_service", "load_service", "pending_tasks", "record_outcome"}) {
      const std::string k = op;
      t.ratio(k + " p50, " + N + " vs " + S, f["large." + k + ".p50"], f["small." + k + ".p50"],
              Unit::kNanos, 3);
      t.ratio(k + " p99, " + N + " vs " + S, f["large." + k + ".p99"], f["small." + k + ".p99"],
              Unit::kNanos, 5);
    }
    t.ratio("list_services (" + S + " rows) p50, " + N + " vs " + S + " total",
            f["large.list_services.p50"], f["small.list_services.p50"], Unit::kNanos, 3);
    t.figure("database file at " + N + " services", f["store.db_bytes"], Unit::kBytes);
    if (f.count("disk.raw_insert.mean")) {
      t.ratio("raw insert on disk vs on tmpfs (fsync cost)", f["disk.raw_insert.mean"],
              f["raw_insert.mean"], Unit::kNanos, 1e9, "info");
      t.ratio("create_service on disk vs raw insert on disk", f["disk.create.mean"],
              f["disk.raw_insert.mean"], Unit::kNanos, 3, "overhead");
    }
  }

  if (o.reconciler) {
    bench::progress("reconciler: " + S + " services");
    const fs::path small_dir = populate(o, o.small);
    Figures s = bench::run_child(
        "reconciler small", [&](Figures& out) { reconciler_phase(o, small_dir, o.small, out); });
    bench::progress("reconciler: " + bench::thousands(o.mid) + " services (memory baseline)");
    const fs::path mid_dir = populate(o, o.mid);
    Figures m = bench::run_child("reconciler mid",
                                 [&](Figures& out) { reconciler_phase(o, mid_dir, o.mid, out); });
    bench::progress("reconciler: " + N + " services");
    const fs::path large_dir = populate(o, o.services);
    Figures l = bench::run_child(
        "reconciler large", [&](Figures& out) { reconciler_phase(o, large_dir, o.services, out); });
    bench::progress("reconciler: restart over converged services, " + S + " and " + N +
                    " alternately");
    Figures c = bench::run_child("reconciler steady",
                                 [&](Figures& out) { steady_phase(o, small_dir, large_dir, out); });
    std::error_code ec;
    for (const auto& d : {small_dir, mid_dir, large_dir}) fs::remove_all(d, ec);

    const double ns = o.services, ss = o.small;
    t.section("reconciler at scale (real SqliteStore, fake gateway/resolver, " +
              std::to_string(o.agents) + " agents)");
    t.figure("prime(), " + N + " services", l["prime_ns"], Unit::kNanos);
    t.ratio("prime() per service, " + N + " vs " + S, l["prime_ns"] / ns, s["prime_ns"] / ss,
            Unit::kNanos, 3);
    t.figure(
        "drive " + N + " services to Running", l["drive_ns"], Unit::kNanos,
        bench::thousands(static_cast<int>(l["reconciles"])) + " reconciles + " + N + " results");
    t.ratio("drive per service, " + N + " vs " + S, l["drive_ns"] / ns, s["drive_ns"] / ss,
            Unit::kNanos, 3);
    t.ratio("reconcile while deploying (p50), " + N + " vs " + S, l["drive_reconcile.p50"],
            s["drive_reconcile.p50"], Unit::kNanos, 3);
    t.ratio("task_result (p50), " + N + " vs " + S, l["task_result.p50"], s["task_result.p50"],
            Unit::kNanos, 3);
    t.figure("restart over " + N + " converged (hello+prime+pass)", c["restart_ns"], Unit::kNanos,
             "nothing redeployed");
    t.ratio("converged reconcile p50, " + N + " vs " + S, c["large.converged.p50"],
            c["small.converged.p50"], Unit::kNanos, 3);
    t.ratio("converged reconcile p99, " + N + " vs " + S, c["large.converged.p99"],
            c["small.converged.p99"], Unit::kNanos, 5);
    t.ratio("converged reconcile p50, " + bench::thousands(o.more_agents) + " vs " +
                std::to_string(o.agents) + " agents (" + N + ")",
            c["agents_more.p50"], c["agents_base.p50"], Unit::kNanos, 1.2);
    t.ratio("agent_connected, idle agent (p50), " + N + " vs " + S, c["large.connect_idle.p50"],
            c["small.connect_idle.p50"], Unit::kNanos, 3);
    t.ratio("agent_connected per reported app (p50), " + N + " vs " + S,
            c["large.connect_per_app.p50"], c["small.connect_per_app.p50"], Unit::kNanos, 3);
    t.figure("resident memory per service (RSS delta), " + N, l["rss_per_service"], Unit::kBytes);
    t.ratio("RSS delta per service, " + N + " vs " + bench::thousands(o.mid), l["rss_per_service"],
            m["rss_per_service"], Unit::kBytes, 2);
    t.figure("maxrss delta per service, " + N, l["maxrss_per_service"], Unit::kBytes,
             bench::thousands(o.mid) + ": " + bench::format(m["maxrss_per_service"], Unit::kBytes));
  }
  return 0;
}
