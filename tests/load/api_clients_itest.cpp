// Load: 200 concurrent API clients for 60 s mixing reads and PATCHes (issue 12, "Load").
//
// A real berth-controller (its own process, SQLite file, the REST API over loopback TCP) with
// three accounts and 51 app services, rolled out by 5 simulated agents (bench/sim_agent.h: the
// real agent link, every task acknowledged and reported successful without podman) so the
// runtime keeps writing the same rows the API writes: placement, deploy results and status race
// every PATCH, which is where a lost update or a busy database would show. 200 client threads,
// each on one keep-alive connection, Basic and Bearer mixed, GET one app, list, PATCH (a unique
// env value and the image tag) and probe another account's app, for BERTH_LOAD_API_SECONDS
// (default 60). BERTH_LOAD_API_KEEP_LOG=FILE keeps a copy of the controller's log.
//
// Asserted: no 5xx; no transport error (a refused, reset or timed-out request); 429/503
// backpressure is counted and retried after its Retry-After; account isolation (a list holds
// only the account's apps, another account's id is 404 for GET and PATCH); no lost update (each
// PATCH answered 200 stored exactly one revision: the revision numbers the controller logged as
// accepted are 2..1+K for K acknowledgements, the history's newest is 1+K, every revision still
// kept (berth prunes old ones) holds one acknowledged value and none answered otherwise, kept
// revisions are ordered as their acknowledgements, the app's config is its newest revision's,
// and every GET shows a revision no older than the newest one acknowledged before it was sent).
// Printed: requests/s, p50/p90/p99/max per operation, counts by status code.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "crypto/certs.h"
#include "e2e/stack.h"
#include "sim_agent.h"
#include "support/http_client.h"
#include "support/skip.h"
#include "support/testenv.h"
#include "support/wait.h"

using namespace berth;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

constexpr int kClients = 200;
constexpr int kAccounts = 3;
constexpr int kAppsPerAccount = 17;
constexpr int kAgents = 5;
constexpr const char* kMark = "LOAD_MARK";

enum Op { kGet = 0, kList = 1, kPatch = 2, kProbe = 3, kOps = 4 };
const char* const kOpNames[kOps] = {"get", "list", "patch", "probe"};

struct Account {
  std::string name;
  std::string basic;   // "Basic ..."
  std::string bearer;  // "Bearer berth_..."
  std::vector<std::string> apps;
};

struct PatchRecord {
  int app = 0;  // index into the account's apps
  std::string value;
  Clock::time_point sent, answered;
  int status = 0;  // 0: transport error, outcome unknown
};

// A GET of one app: what it showed and when it was sent.
struct ReadRecord {
  int app = 0;
  std::string value;
  Clock::time_point sent;
};

struct ClientResult {
  int account = 0;
  std::vector<double> latency_ms[kOps];
  std::map<int, std::uint64_t> statuses[kOps];
  std::vector<PatchRecord> patches;
  std::vector<ReadRecord> reads;
  std::uint64_t transport_errors = 0;
  std::uint64_t backoffs = 0;         // 429/503 answers waited out
  std::vector<std::string> problems;  // isolation breaches, bad bodies (first few)
  std::vector<std::string> errors;    // transport errors (first few)
  std::vector<std::uint32_t> per_second = std::vector<std::uint32_t>(600);  // answers
};

int load_seconds() {
  const char* v = std::getenv("BERTH_LOAD_API_SECONDS");
  if (v == nullptr || *v == '\0') return 60;
  const int s = std::atoi(v);
  return s > 0 ? s : 60;
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

std::uint16_t port_of(const std::string& url) {
  return static_cast<std::uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
}

testing::HttpResult call(std::uint16_t port, const std::string& auth, const std::string& method,
                         const std::string& path, const json& body = nullptr) {
  testing::HttpClientOptions o;
  o.port = port;
  o.timeout = 30000ms;
  return testing::http_request(o, method, path, body.is_null() ? std::string() : body.dump(),
                               {{"Authorization", auth}, {"Content-Type", "application/json"}});
}

// An account with a Basic password and a Bearer token, made by the controller's own commands
// (as an operator would) before `serve` starts.
Account add_account(e2e::Stack& stack, const std::string& name) {
  Account a;
  a.name = name;
  const std::string password = "load-" + e2e::unique_name("pw");
  const std::string pw_file = stack.dir() + "/password-" + name;
  {
    std::FILE* f = std::fopen(pw_file.c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs((password + "\n").c_str(), f);
    std::fclose(f);
  }
  e2e::ChildProcess add({e2e::bin_dir() + "/berth-controller", "account", "add", name, "--data-dir",
                         stack.data_dir()},
                        stack.dir() + "/account-" + name + ".log", {}, pw_file);
  REQUIRE(add.started());
  REQUIRE(add.wait(60s) == 0);
  a.basic = testing::basic_auth(name, password);
  std::string out;
  REQUIRE(testenv::run_command({e2e::bin_dir() + "/berth-controller", "token", "create", name,
                                "--data-dir", stack.data_dir()},
                               &out, {}, 60) == 0);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  REQUIRE(out.rfind("berth_", 0) == 0);
  a.bearer = "Bearer " + out;
  return a;
}

std::vector<sim::AgentCredentials> load_agent_credentials(const std::string& data_dir) {
  auto ca = crypto::read_pem_files(data_dir + "/pki", "ca");
  REQUIRE(ca.ok());
  auto creds = sim::issue_agent_credentials(*ca, kAgents);
  REQUIRE(creds.ok());
  return std::move(creds).value();
}

std::string mark_of(const json& config) {
  if (!config.is_object() || !config.contains("env")) return {};
  const auto& env = config["env"];
  return env.contains(kMark) ? env[kMark].get<std::string>() : std::string();
}

int retry_after_ms(const testing::HttpResult& r) {
  const std::string v = r.header("retry-after");
  const int s = v.empty() ? 1 : std::atoi(v.c_str());
  return std::clamp(s, 1, 2) * 1000;
}

// One client: its own keep-alive connection and credential, a fixed seed, until `stop`.
void run_client(int index, std::uint16_t port, const std::vector<Account>& accounts,
                const std::string& registry_v1, const std::string& registry_v2,
                const std::string& registry_user, Clock::time_point begin, Clock::time_point stop,
                ClientResult& out) {
  out.account = index % kAccounts;
  const Account& mine = accounts[out.account];
  const Account& other = accounts[(out.account + 1) % kAccounts];
  const std::string auth = (index / kAccounts) % 2 == 0 ? mine.basic : mine.bearer;
  std::mt19937 rng(static_cast<unsigned>(1000 + index));
  std::uniform_int_distribution<int> pick_op(0, 99);
  std::uniform_int_distribution<int> pick_app(0, static_cast<int>(mine.apps.size()) - 1);
  testing::HttpConnection conn({.port = port, .timeout = 30000ms});
  const std::map<std::string, std::string> headers = {{"Authorization", auth},
                                                      {"Content-Type", "application/json"}};
  const std::set<std::string> own(mine.apps.begin(), mine.apps.end());
  auto problem = [&](const std::string& what) {
    if (out.problems.size() < 5) out.problems.push_back(what);
  };
  int seq = 0;
  while (Clock::now() < stop) {
    const int roll = pick_op(rng);
    const Op op = roll < 50 ? kGet : roll < 65 ? kList : roll < 95 ? kPatch : kProbe;
    const int app = pick_app(rng);
    std::string method = "GET", path, body;
    PatchRecord patch;
    if (op == kGet) {
      path = "/app-services/" + mine.apps[app];
    } else if (op == kList) {
      path = "/app-services";
    } else if (op == kPatch) {
      method = "PATCH";
      path = "/app-services/" + mine.apps[app];
      patch.app = app;
      patch.value = "c" + std::to_string(index) + "-" + std::to_string(seq++);
      body = json{{"app_config",
                   {{"image_ref", seq % 2 == 0 ? registry_v1 : registry_v2},
                    {"container_port", e2e::Stack::kContainerPort},
                    {"registry_username", registry_user},
                    {"env", {{kMark, patch.value}}}}}}
                 .dump();
    } else {
      // Another account's app, by id: must look exactly like a missing one.
      const std::string target = other.apps[static_cast<std::size_t>(app) % other.apps.size()];
      path = "/app-services/" + target;
      if (roll % 2 == 0) {
        method = "PATCH";
        body = json{{"app_config", {{"env", {{kMark, "probe-" + std::to_string(index)}}}}}}.dump();
      }
    }
    // Backpressure (429/503) is retried after its Retry-After; each attempt is one request.
    testing::HttpResult r;
    Clock::time_point sent;
    for (;;) {
      sent = Clock::now();
      r = conn.request(method, path, body, headers);
      const auto answered = Clock::now();
      const auto second = static_cast<std::size_t>(
          std::chrono::duration_cast<std::chrono::seconds>(answered - begin).count());
      if (second < out.per_second.size()) ++out.per_second[second];
      if (!r.ok()) {
        ++out.transport_errors;
        if (out.errors.size() < 5) out.errors.push_back(method + " " + path + ": " + r.error);
        if (op == kPatch) {
          patch.sent = sent;
          patch.answered = answered;
          patch.status = 0;
        }
        break;
      }
      out.latency_ms[op].push_back(
          std::chrono::duration<double, std::milli>(answered - sent).count());
      ++out.statuses[op][r.status];
      if (op == kPatch) {
        patch.sent = sent;
        patch.answered = answered;
        patch.status = r.status;
      }
      if ((r.status == 429 || r.status == 503) && Clock::now() < stop) {
        // Retried with the same value: had the refused attempt been stored, the value would
        // show up twice in the history.
        ++out.backoffs;
        std::this_thread::sleep_for(std::chrono::milliseconds(retry_after_ms(r)));
        continue;
      }
      break;
    }
    if (!r.ok()) {
      if (op == kPatch) out.patches.push_back(patch);
      continue;
    }
    const json j = r.json();
    switch (op) {
      case kGet:
        if (r.status == 200) {
          if (j.value("id", "") != mine.apps[app]) problem("GET answered another app: " + r.body);
          out.reads.push_back({app, mark_of(j.value("app_config", json::object())), sent});
        }
        break;
      case kList:
        if (r.status == 200) {
          const auto list = j.value("app_services", json::array());
          if (list.size() != own.size()) {
            problem("list holds " + std::to_string(list.size()) + " apps, the account has " +
                    std::to_string(own.size()));
          }
          for (const auto& s : list) {
            if (own.count(s.value("id", "")) == 0) problem("list shows a foreign app " + s.dump());
          }
        }
        break;
      case kPatch:
        if (r.status == 200 && mark_of(j.value("app_config", json::object())) != patch.value) {
          problem("PATCH answered 200 without its value: " + r.body);
        }
        out.patches.push_back(patch);
        break;
      case kProbe:
        if (r.status != 404) {
          problem(method + " of another account's app answered " + std::to_string(r.status) + ": " +
                  r.body);
        }
        break;
      default:
        break;
    }
  }
}

}  // namespace

TEST_CASE("200 API clients mixing reads and PATCHes for a minute lose no update and see no 5xx",
          "[load][api]") {
  BERTH_REQUIRE_PEERS(testenv::Peer::kRegistry);
  const auto wall = Clock::now();
  const int seconds = load_seconds();

  e2e::Stack stack({.separate_agent = true});
  std::vector<Account> accounts;
  accounts.push_back({stack.account_name(),
                      testing::basic_auth(stack.account_name(), stack.account_password()),
                      "",
                      {}});
  {
    std::string out;
    REQUIRE(testenv::run_command({e2e::bin_dir() + "/berth-controller", "token", "create",
                                  stack.account_name(), "--data-dir", stack.data_dir()},
                                 &out, {}, 60) == 0);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    accounts[0].bearer = "Bearer " + out;
  }
  accounts.push_back(add_account(stack, "load-b"));
  accounts.push_back(add_account(stack, "load-c"));
  auto creds = load_agent_credentials(stack.data_dir());
  stack.start_controller();
  const std::uint16_t port = port_of(stack.api_url());

  sim::Arrivals arrivals;
  auto started =
      sim::start_agents(creds, "wss://127.0.0.1:" + std::to_string(stack.agent_port()), arrivals);
  REQUIRE(started.ok());
  // Stopped before they are destroyed, also when a REQUIRE ends the test early: a SimAgent's
  // callbacks use its members until its client's threads are joined.
  struct StopAgents {
    std::vector<std::unique_ptr<sim::SimAgent>>& agents;
    ~StopAgents() {
      for (auto& a : agents) a->stop();
    }
  } stop_agents{*started};

  auto& registry = stack.registry();
  for (auto& a : accounts) {
    for (int i = 0; i < kAppsPerAccount; ++i) {
      const json body = {{"name", e2e::unique_name("api")},
                         {"plan_name", "tier-2"},
                         {"app_config",
                          {{"image_ref", registry.image("v1")},
                           {"container_port", e2e::Stack::kContainerPort},
                           {"registry_username", registry.username()},
                           {"registry_password", registry.password()},
                           {"env", {{kMark, "initial"}}}}}};
      auto r = call(port, a.basic, "POST", "/app-services", body);
      INFO(r.error << " " << r.body);
      REQUIRE(r.status == 201);
      a.apps.push_back(r.json()["id"].get<std::string>());
    }
  }
  // Every app placed and running at revision 1 before the load starts, so PATCHes race rollouts.
  const bool all_running = testing::wait_until(
      [&] {
        for (const auto& a : accounts) {
          auto r = call(port, a.bearer, "GET", "/app-services");
          if (r.status != 200) return false;
          for (const auto& s : r.json().value("app_services", json::array())) {
            if (s.value("status", "") != "Running") return false;
          }
        }
        return true;
      },
      60s);
  REQUIRE(all_running);
  const double setup_s = std::chrono::duration<double>(Clock::now() - wall).count();

  // --- the load
  std::vector<ClientResult> results(kClients);
  const auto begin = Clock::now();
  const auto stop = begin + std::chrono::seconds(seconds);
  {
    std::vector<std::thread> threads;
    threads.reserve(kClients);
    for (int i = 0; i < kClients; ++i) {
      threads.emplace_back(run_client, i, port, std::cref(accounts), registry.image("v1"),
                           registry.image("v2"), registry.username(), begin, stop,
                           std::ref(results[i]));
    }
    for (auto& t : threads) t.join();
  }
  const double load_s = std::chrono::duration<double>(Clock::now() - begin).count();

  // --- figures
  std::vector<double> latency[kOps];
  std::map<int, std::uint64_t> statuses[kOps];
  std::map<int, std::uint64_t> all_statuses;
  std::uint64_t requests = 0, transport_errors = 0, backoffs = 0;
  std::vector<std::string> problems, errors;
  for (auto& c : results) {
    for (int op = 0; op < kOps; ++op) {
      latency[op].insert(latency[op].end(), c.latency_ms[op].begin(), c.latency_ms[op].end());
      for (const auto& [code, n] : c.statuses[op]) {
        statuses[op][code] += n;
        all_statuses[code] += n;
        requests += n;
      }
    }
    transport_errors += c.transport_errors;
    backoffs += c.backoffs;
    problems.insert(problems.end(), c.problems.begin(), c.problems.end());
    errors.insert(errors.end(), c.errors.begin(), c.errors.end());
  }
  std::printf(
      "load/api_clients: %d clients, %d accounts, %zu apps, %d agents, %.1f s: %llu "
      "requests, %.0f requests/s, %llu transport errors, %llu 429/503 waited out\n",
      kClients, kAccounts, accounts.size() * kAppsPerAccount, kAgents, load_s,
      static_cast<unsigned long long>(requests), static_cast<double>(requests) / load_s,
      static_cast<unsigned long long>(transport_errors), static_cast<unsigned long long>(backoffs));
  for (int op = 0; op < kOps; ++op) {
    std::string codes;
    for (const auto& [code, n] : statuses[op]) {
      codes += " " + std::to_string(code) + ":" + std::to_string(n);
    }
    auto& v = latency[op];
    std::printf(
        "load/api_clients: %-5s n=%zu p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms;"
        " status%s\n",
        kOpNames[op], v.size(), percentile(v, 0.5), percentile(v, 0.9), percentile(v, 0.99),
        percentile(v, 1.0), codes.c_str());
  }
  {
    // Answers per second of the run: a stall shows as a row of small numbers.
    std::string timeline;
    for (int sec = 0; sec <= static_cast<int>(load_s); ++sec) {
      std::uint64_t n = 0;
      for (const auto& c : results) n += c.per_second[static_cast<std::size_t>(sec)];
      timeline += " " + std::to_string(n);
    }
    std::printf("load/api_clients: answers per second:%s\n", timeline.c_str());
  }
  for (const auto& e : errors) std::printf("load/api_clients: transport error: %s\n", e.c_str());
  for (const auto& p : problems) std::printf("load/api_clients: problem: %s\n", p.c_str());

  std::uint64_t server_errors = 0;
  for (const auto& [code, n] : all_statuses) {
    if (code >= 500 && code != 503) server_errors += n;
  }
  // 503 is the documented backpressure (store busy, hashing queue full) and is retried; any
  // other 5xx is a failure.
  CHECK(server_errors == 0);
  CHECK(transport_errors == 0);
  CHECK(problems.empty());
  for (int op = 0; op < kOps; ++op) {
    for (const auto& [code, n] : statuses[op]) {
      INFO(kOpNames[op] << " answered " << code << " " << n << " times");
      if (op == kProbe) {
        CHECK((code == 404 || code == 429 || code == 503));
      } else if (op == kPatch) {
        // 409: another PATCH of the same app committed between this one's read and write.
        CHECK((code == 200 || code == 409 || code == 429 || code == 503));
      } else {
        CHECK((code == 200 || code == 429 || code == 503));
      }
    }
  }

  // --- no lost update. Each acknowledged PATCH stored one revision. berth keeps a bounded
  // history (docs/store.md, "Bounded history": the newest 20 succeeded and 20 superseded or
  // failed revisions of an app, pending ones always), so older revisions are gone by the end;
  // what the API accepted is also in the controller's log, one `app service change accepted`
  // line with the revision number per stored change. So: the accepted numbers of an app are
  // 2..1+K, each once, K = its acknowledged PATCHes (plus stored ones whose answer was lost);
  // the history's newest revision is 1+K; every revision kept holds the value of exactly one
  // PATCH that was acknowledged (or lost in transit), never a refused one; the acknowledged
  // values missing from it are no more than the pruned numbers; kept revisions are ordered as
  // their acknowledgements; the app's config is its newest revision's.
  std::map<std::string, std::vector<int>> accepted;  // app id -> revision numbers, log order
  {
    std::istringstream log(stack.controller_log());
    for (std::string line; std::getline(log, line);) {
      if (line.find("app service change accepted") == std::string::npos) continue;
      const json j = json::parse(line, nullptr, false);
      if (j.is_object() && j.value("msg", "") == "app service change accepted") {
        accepted[j.value("app", "")].push_back(j.value("revision", 0));
      }
    }
  }
  std::uint64_t acked = 0, refused = 0, unknown = 0, verified = 0, pruned_acks = 0;
  std::uint64_t checked_reads = 0, unmapped_reads = 0;
  for (int a = 0; a < kAccounts; ++a) {
    const Account& account = accounts[a];
    for (int app = 0; app < static_cast<int>(account.apps.size()); ++app) {
      const std::string& id = account.apps[app];
      INFO("app " << id);
      std::vector<const PatchRecord*> patches;
      std::vector<const ReadRecord*> reads;
      for (const auto& c : results) {
        if (c.account != a) continue;
        for (const auto& p : c.patches)
          if (p.app == app) patches.push_back(&p);
        for (const auto& r : c.reads)
          if (r.app == app) reads.push_back(&r);
      }
      std::uint64_t app_acked = 0, app_unknown = 0;
      for (const PatchRecord* p : patches) {
        if (p->status == 200) ++app_acked;
        if (p->status == 0) ++app_unknown;
      }
      std::vector<int> numbers = accepted[id];
      std::sort(numbers.begin(), numbers.end());
      const auto k = static_cast<std::uint64_t>(numbers.size());
      CHECK(k >= app_acked);
      CHECK(k <= app_acked + app_unknown);
      for (std::size_t i = 0; i < numbers.size(); ++i) {
        if (numbers[i] != static_cast<int>(i) + 2) {
          FAIL_CHECK("accepted revision numbers are not 2..1+K: " << numbers[i] << " at " << i);
          break;
        }
      }

      auto h = call(port, account.basic, "GET", "/app-services/" + id + "/deployments?all=true");
      INFO(h.error << " " << h.status);
      REQUIRE(h.status == 200);
      std::unordered_map<std::string, std::vector<int>> revisions_of;
      std::set<int> kept;
      int newest = 0;
      std::string newest_value;
      for (const auto& d : h.json().value("deployments", json::array())) {
        const int n = d.value("revision", 0);
        const std::string v = mark_of(d);
        revisions_of[v].push_back(n);
        CHECK(kept.insert(n).second);
        if (n > newest) {
          newest = n;
          newest_value = v;
        }
      }
      CHECK(newest == static_cast<int>(k) + 1);
      if (auto init = revisions_of.find("initial"); init != revisions_of.end()) {
        CHECK(init->second == std::vector<int>{1});
      }

      std::set<std::string> may_be_stored;
      std::vector<std::pair<const PatchRecord*, int>> acks;  // with its revision
      std::uint64_t app_absent = 0;
      for (const PatchRecord* p : patches) {
        const auto found = revisions_of.find(p->value);
        const std::size_t times = found == revisions_of.end() ? 0 : found->second.size();
        INFO("PATCH " << p->value << " answered " << p->status);
        if (p->status == 200) {
          ++acked;
          may_be_stored.insert(p->value);
          CHECK(times <= 1);
          if (times == 1) {
            acks.emplace_back(p, found->second[0]);
            ++verified;
          } else {
            ++app_absent;
          }
        } else if (p->status == 0) {
          ++unknown;
          may_be_stored.insert(p->value);
          CHECK(times <= 1);
        } else {
          ++refused;
          CHECK(times == 0);
        }
      }
      pruned_acks += app_absent;
      // Numbers 2..1+K minus those still kept: the pruned ones.
      const auto kept_changes = static_cast<std::uint64_t>(
          std::count_if(kept.begin(), kept.end(), [](int n) { return n >= 2; }));
      CHECK(app_absent <= k - std::min(k, kept_changes));
      for (const auto& [value, revs] : revisions_of) {
        INFO("revision value " << value);
        CHECK((value == "initial" || may_be_stored.count(value) == 1));
      }
      // Acknowledged before another was sent => an older revision.
      std::sort(acks.begin(), acks.end(),
                [](const auto& x, const auto& y) { return x.second < y.second; });
      for (std::size_t i = 0; i < acks.size(); ++i) {
        for (std::size_t j = 0; j < i; ++j) {
          // acks[j] has the lower revision, so it must not have been sent after acks[i]'s
          // answer arrived.
          if (acks[i].first->answered < acks[j].first->sent) {
            FAIL_CHECK("PATCH " << acks[i].first->value << " (revision " << acks[i].second
                                << ") was acknowledged before " << acks[j].first->value
                                << " was sent, yet the latter has revision " << acks[j].second);
          }
        }
      }
      // Reads: never older than the newest acknowledgement (still in the history) before the
      // GET was sent.
      std::vector<std::pair<Clock::time_point, int>> by_answer;
      for (const auto& [p, rev] : acks) by_answer.emplace_back(p->answered, rev);
      std::sort(by_answer.begin(), by_answer.end());
      for (std::size_t i = 1; i < by_answer.size(); ++i) {
        by_answer[i].second = std::max(by_answer[i].second, by_answer[i - 1].second);
      }
      for (const ReadRecord* r : reads) {
        auto it = std::lower_bound(by_answer.begin(), by_answer.end(), std::make_pair(r->sent, 0),
                                   [](const auto& x, const auto& y) { return x.first < y.first; });
        if (it == by_answer.begin()) continue;
        const int floor = std::prev(it)->second;
        const auto seen = revisions_of.find(r->value);
        if (seen == revisions_of.end()) {
          // Its revision was pruned: its number is unknown, so the read cannot be placed.
          ++unmapped_reads;
          continue;
        }
        ++checked_reads;
        if (seen->second[0] < floor) {
          FAIL_CHECK("GET showed " << r->value << " (revision " << seen->second[0]
                                   << ") after revision " << floor << " had been acknowledged");
        }
      }
      // The app's own config is its newest revision's.
      auto s = call(port, account.bearer, "GET", "/app-services/" + id);
      REQUIRE(s.status == 200);
      CHECK(mark_of(s.json().value("app_config", json::object())) == newest_value);
    }
  }
  std::printf(
      "load/api_clients: history: %llu acknowledged PATCHes (%llu found in the kept "
      "history exactly once, %llu pruned and counted by revision number), %llu refused "
      "ones absent, %llu with unknown outcome, %llu reads checked against earlier "
      "acknowledgements; setup %.1f s, wall %.1f s\n",
      static_cast<unsigned long long>(acked), static_cast<unsigned long long>(verified),
      static_cast<unsigned long long>(pruned_acks), static_cast<unsigned long long>(refused),
      static_cast<unsigned long long>(unknown), static_cast<unsigned long long>(checked_reads),
      setup_s, std::chrono::duration<double>(Clock::now() - wall).count());
  std::printf("load/api_clients: %llu reads showed a pruned revision (not checked)\n",
              static_cast<unsigned long long>(unmapped_reads));
  CHECK(acked > 0);
  // For a look at the server's side (request durations, the runtime's work) after a run.
  if (const char* keep = std::getenv("BERTH_LOAD_API_KEEP_LOG"); keep != nullptr && *keep) {
    std::error_code ec;
    std::filesystem::copy_file(stack.controller_log_path(), keep,
                               std::filesystem::copy_options::overwrite_existing, ec);
  }
}
