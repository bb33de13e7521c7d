// API authentication over real loopback sockets with a real SqliteStore: the failure limits
// per client address and per account, the Basic cache, SHA-256 tokens, and the bounded hashing
// pool that keeps the I/O threads answering during a flood of wrong passwords. Clients connect
// from chosen loopback source addresses (127.0.0.x) so "another address" is real.
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <SQLiteCpp/SQLiteCpp.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>

#include "api/server.h"
#include "api_fixture.h"
#include "common/base64.h"
#include "common/log.h"
#include "crypto/password.h"
#include "store/sqlite_store.h"
#include "support/log_capture.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace fs = std::filesystem;
using berth::testing::LogCapture;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using berth::Secret;
using namespace std::chrono_literals;

namespace {

struct Reply {
  int status = 0;
  std::string retry_after;
  std::string body;
  std::string error;
};

// One request on a fresh connection from `source` (a loopback address) to 127.0.0.1:port.
Reply request_from(const std::string& source, std::uint16_t port, const std::string& target,
                   const std::string& authorization) {
  Reply out;
  try {
    asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    auto& sock = stream.socket();
    sock.open(asio::ip::tcp::v4());
    sock.bind(asio::ip::tcp::endpoint(asio::ip::make_address(source), 0));
    stream.expires_after(30s);
    stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!authorization.empty()) req.set(http::field::authorization, authorization);
    req.keep_alive(false);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    out.status = res.result_int();
    out.retry_after = std::string(res[http::field::retry_after]);
    out.body = res.body();
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  return out;
}

struct Fixture {
  LogCapture logs;
  berth::testing::ScratchDir dir{"berth-auth"};
  std::unique_ptr<berth::store::SqliteStore> store;
  std::unique_ptr<berth::api::ApiServer> server;
  std::string alice_id;
  std::string alice_token;

  explicit Fixture(berth::api::ApiOptions options = {}) {
    auto opened = berth::testing::open_api_store(dir.path);
    store = std::move(opened.store);
    alice_id = opened.alice_id;
    alice_token = opened.alice_token;
    options = berth::testing::loopback_api_options(std::move(options));
    server = std::make_unique<berth::api::ApiServer>(
        options, *store, [] { return berth::core::UnixMillis{1'700'000'000'000}; },
        [](const std::string&) {});
    auto started = server->start();
    if (!started.ok()) FAIL(started.error().message);
  }
  ~Fixture() { server->stop(); }

  Reply get(const std::string& source, const std::string& authorization,
            const std::string& target = "/app-services") {
    return request_from(source, server->port(), target, authorization);
  }
};

// Long refill intervals: no failure is forgiven while a test runs, whatever the machine's speed.
berth::api::ApiOptions limited(double per_address, double per_account) {
  berth::api::ApiOptions o;
  o.auth.per_address = {per_address, std::chrono::hours(1), 1000};
  o.auth.per_account = {per_account, std::chrono::hours(1), 1000};
  return o;
}

// Holds Basic verifications until opened, counting them; answers "acct-<name>" for the
// password "right", kUnauthenticated otherwise.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  int entered = 0;
  int finished = 0;

  berth::Result<std::string> verify(const berth::api::Credentials& c) {
    std::unique_lock lock(mu);
    ++entered;
    cv.notify_all();
    cv.wait(lock, [&] { return open; });
    ++finished;
    if (c.secret.reveal() == "right") return "acct-" + c.account_name;
    return berth::make_error(berth::ErrorCode::kUnauthenticated, "wrong");
  }
  void release() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
  void wait_entered(int n) {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return entered >= n; });
  }
};

std::string basic_auth(const std::string& user, const std::string& password) {
  return "Basic " + berth::base64::encode(user + ":" + password);
}

}  // namespace

TEST_CASE("Repeated wrong passwords from one address are answered 429 with Retry-After",
          "[auth][limit]") {
  Fixture f(limited(3, 5));
  const std::string wrong = basic_auth("alice", "guess-1");
  for (int i = 0; i < 3; ++i) {
    auto r = f.get("127.0.0.1", wrong);
    REQUIRE(r.error.empty());
    CHECK(r.status == 401);
  }
  auto limited_reply = f.get("127.0.0.1", wrong);
  CHECK(limited_reply.status == 429);
  CHECK(std::stoi(limited_reply.retry_after) >= 1);
  // The address is refused before any verification, right password or not.
  CHECK(f.get("127.0.0.1", basic_auth("alice", "alice-password")).status == 429);
  CHECK(f.get("127.0.0.1", basic_auth("bob", "bob-password")).status == 429);

  // The same account from another address still signs in: its own limit is not reached yet.
  CHECK(f.get("127.0.0.2", basic_auth("alice", "alice-password")).status == 200);
  // So does another account from another address.
  CHECK(f.get("127.0.0.3", basic_auth("bob", "bob-password")).status == 200);
  // Bearer failures have budgets of their own (tests/access): a Basic-limited address keeps them.
  CHECK(f.get("127.0.0.1", "Bearer " + f.alice_token).status == 200);

  // Failures are warn lines naming the client and the account, never the password.
  auto failed = f.logs.matching("api authentication failed");
  REQUIRE(failed.size() >= 3);
  CHECK(failed[0].find("warn") != std::string::npos);
  CHECK(failed[0].find("127.0.0.1") != std::string::npos);
  CHECK(failed[0].find("alice") != std::string::npos);
  CHECK_FALSE(f.logs.contains("guess-1"));
  CHECK(f.logs.contains("api authentication rate-limited"));
}

TEST_CASE("Wrong passwords for one account from many addresses lock that account only",
          "[auth][limit]") {
  Fixture f(limited(100, 3));
  for (int i = 0; i < 3; ++i) {
    const std::string source = "127.0.0." + std::to_string(10 + i);
    CHECK(f.get(source, basic_auth("alice", "guess")).status == 401);
  }
  auto r = f.get("127.0.0.20", basic_auth("alice", "alice-password"));
  CHECK(r.status == 429);
  CHECK_FALSE(r.retry_after.empty());
  CHECK(f.get("127.0.0.20", basic_auth("bob", "bob-password")).status == 200);
  // An unknown account name is limited like a known one (the limit cannot tell them apart).
  for (int i = 0; i < 3; ++i) CHECK(f.get("127.0.0.21", basic_auth("mallory", "x")).status == 401);
  CHECK(f.get("127.0.0.22", basic_auth("mallory", "x")).status == 429);
}

TEST_CASE("A verified Basic header is served from the cache until the account changes",
          "[auth][cache]") {
  berth::api::ApiOptions o;
  std::atomic<int> calls{0};
  o.auth.verify_basic = [&](const berth::api::Credentials& c) -> berth::Result<std::string> {
    ++calls;
    if (c.account_name == "alice" && c.secret.reveal() == "right") return std::string("acct-a");
    return berth::make_error(berth::ErrorCode::kUnauthenticated, "wrong");
  };
  Fixture f(o);
  const std::string good = basic_auth("alice", "right");
  // The verdict is only the account id; the fake id owns nothing, so the list is empty.
  CHECK(f.get("127.0.0.1", good).status == 200);
  CHECK(f.get("127.0.0.1", good).status == 200);
  CHECK(f.get("127.0.0.2", good).status == 200);
  CHECK(calls == 1);
  // Wrong passwords are never cached.
  CHECK(f.get("127.0.0.1", basic_auth("alice", "wrong")).status == 401);
  CHECK(f.get("127.0.0.1", basic_auth("alice", "wrong")).status == 401);
  CHECK(calls == 3);
  f.server->account_changed("acct-a");
  CHECK(f.get("127.0.0.1", good).status == 200);
  CHECK(calls == 4);
}

TEST_CASE("Concurrent requests with one uncached Basic header share a single verification",
          "[auth][cache]") {
  // A client that opens many connections at once (or many requests right after its cache entry
  // expired) used to queue one scrypt per request on the hash thread: seconds of stall.
  auto gate = std::make_shared<Gate>();
  berth::api::ApiOptions o = limited(1000, 1000);
  o.auth.hash_threads = 1;
  o.auth.hash_queue = 16;
  o.auth.verify_basic = [gate](const berth::api::Credentials& c) { return gate->verify(c); };
  const auto previous_level = berth::log::level();
  berth::log::set_level(berth::log::Level::kDebug);
  Fixture f(o);
  constexpr int kClients = 6;
  for (const std::string password : {"right", "wrong"}) {
    const int entered_before = [&] {
      std::lock_guard lock(gate->mu);
      return gate->entered;
    }();
    const auto joined_before = f.logs.matching("joined a verification in flight").size();
    const std::string header = basic_auth("carol", password);
    std::vector<Reply> replies(kClients);
    std::vector<std::thread> clients;
    for (int i = 0; i < kClients; ++i)
      clients.emplace_back([&, i] { replies[i] = f.get("127.0.0.1", header); });
    // One verification runs (held at the gate); every other request joins it.
    gate->wait_entered(entered_before + 1);
    CHECK(berth::testing::wait_until(
        [&] {
          return f.logs.matching("joined a verification in flight").size() ==
                 joined_before + kClients - 1;
        },
        30s));
    {
      std::lock_guard lock(gate->mu);
      gate->open = true;
      gate->cv.notify_all();
    }
    for (auto& t : clients) t.join();
    {
      std::lock_guard lock(gate->mu);
      CHECK(gate->entered == entered_before + 1);
      gate->open = false;
    }
    for (const auto& r : replies) CHECK(r.status == (password == "right" ? 200 : 401));
  }
  // The shared verdict was cached only when it was a success: the wrong one is verified again.
  CHECK(f.get("127.0.0.1", basic_auth("carol", "right")).status == 200);
  {
    std::lock_guard lock(gate->mu);
    gate->open = true;
  }
  CHECK(f.get("127.0.0.1", basic_auth("carol", "wrong")).status == 401);
  {
    std::lock_guard lock(gate->mu);
    CHECK(gate->entered == 3);
  }
  berth::log::set_level(previous_level);
}

TEST_CASE("The cache expires entries after its TTL", "[auth][cache]") {
  berth::api::ApiOptions o;
  std::atomic<int> calls{0};
  std::atomic<std::int64_t> now_s{1000};
  o.auth.cache.ttl = 60s;
  o.auth.clock = [&] { return std::chrono::steady_clock::time_point(std::chrono::seconds(now_s)); };
  o.auth.verify_basic = [&](const berth::api::Credentials&) -> berth::Result<std::string> {
    ++calls;
    return std::string("acct-a");
  };
  Fixture f(o);
  const std::string good = basic_auth("alice", "right");
  CHECK(f.get("127.0.0.1", good).status == 200);
  now_s += 59;
  CHECK(f.get("127.0.0.1", good).status == 200);
  CHECK(calls == 1);
  now_s += 1;
  CHECK(f.get("127.0.0.1", good).status == 200);
  CHECK(calls == 2);
}

TEST_CASE("Bearer tokens authenticate and the database holds only their SHA-256", "[auth][token]") {
  Fixture f;
  CHECK(f.get("127.0.0.1", "Bearer " + f.alice_token).status == 200);
  std::string tampered = f.alice_token;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  auto bad = f.get("127.0.0.1", "Bearer " + tampered);
  CHECK(bad.status == 401);

  const std::string token_id = f.alice_token.substr(6, 16);
  const std::string secret = f.alice_token.substr(23);
  {
    SQLite::Database db((f.dir.path / "data" / "berth.db").string(), SQLite::OPEN_READONLY);
    SQLite::Statement st(db, "SELECT secret_hash FROM api_tokens WHERE id = ?");
    st.bind(1, token_id);
    REQUIRE(st.executeStep());
    const std::string stored = st.getColumn(0).getString();
    CHECK(stored == berth::crypto::hash_token_secret(Secret(secret)));
    CHECK(stored.rfind("sha256$", 0) == 0);
    CHECK(stored.size() == 7 + 64);
  }
  CHECK(f.logs.contains("api authentication failed"));
  CHECK_FALSE(f.logs.contains(secret));
}

TEST_CASE("A token stored by an older berth (scrypt) is refused with the remedy", "[auth][token]") {
  Fixture f;
  const std::string secret(43, 'q');
  const std::string token = "berth_00112233aabbccdd_" + secret;
  auto legacy = berth::crypto::hash_password(Secret(secret));
  REQUIRE(legacy.ok());
  {
    SQLite::Database db((f.dir.path / "data" / "berth.db").string(), SQLite::OPEN_READWRITE);
    db.exec("PRAGMA busy_timeout = 5000");
    SQLite::Statement ins(db,
                          "INSERT INTO api_tokens (id, account_id, label, secret_hash, created_at) "
                          "VALUES ('00112233aabbccdd', ?, 'old', ?, 0)");
    ins.bind(1, f.alice_id);
    ins.bind(2, *legacy);
    ins.exec();
  }
  auto r = f.get("127.0.0.1", "Bearer " + token);
  CHECK(r.status == 401);
  CHECK(r.body.find("token create") != std::string::npos);
  CHECK(r.body.find(secret) == std::string::npos);
}

TEST_CASE("A flood of wrong Basic attempts does not block /healthz or a Bearer request",
          "[auth][flood]") {
  auto gate = std::make_shared<Gate>();
  berth::api::ApiOptions o = limited(1000, 1000);
  o.threads = 2;
  o.auth.hash_threads = 1;
  o.auth.hash_queue = 2;
  o.auth.verify_basic = [gate](const berth::api::Credentials& c) { return gate->verify(c); };
  Fixture f(o);

  // Eight attempts at once: three fill the hashing pool (one running, two queued) and stay
  // there, since the gate is closed; the other five are refused at once. Before hashing left
  // the I/O threads, two such attempts stalled the whole API.
  constexpr int kAttempts = 8;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Reply> replies;
  std::vector<std::thread> flood;
  for (int i = 0; i < kAttempts; ++i) {
    flood.emplace_back([&, i] {
      Reply r = f.get("127.0.0.1", basic_auth("user" + std::to_string(i), "guess"));
      std::lock_guard lock(mu);
      replies.push_back(r);
      cv.notify_all();
    });
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return replies.size() == kAttempts - 3; });
    for (const auto& r : replies) {
      CHECK(r.status == 503);
      CHECK(r.retry_after == "1");
    }
  }
  gate->wait_entered(1);

  // Everything that needs no scrypt is still answered.
  auto health = f.get("127.0.0.3", "", "/healthz");
  REQUIRE(health.error.empty());
  CHECK(health.status == 200);
  auto bearer = f.get("127.0.0.3", "Bearer " + f.alice_token);
  REQUIRE(bearer.error.empty());
  CHECK(bearer.status == 200);
  {
    std::lock_guard lock(gate->mu);
    CHECK(gate->finished == 0);  // the held attempts really were still held
  }
  CHECK(f.logs.contains("api authentication queue full"));

  gate->release();
  for (auto& t : flood) t.join();
  int unauthorized = 0;
  for (const auto& r : replies) unauthorized += r.status == 401;
  CHECK(unauthorized == 3);
}
