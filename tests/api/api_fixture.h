#pragma once
// What the API suites' fixtures share (api_itest, auth_itest, progress_itest): a real
// SqliteStore in a test's directory with the accounts alice and bob (passwords "alice-password"
// and "bob-password") and an API token for alice, and ApiOptions that listen on loopback, port 0,
// with random UUIDs as ids. Failures are Catch2 REQUIREs of the calling test.
#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include <catch2/catch.hpp>

#include "api/server.h"
#include "common/secret.h"
#include "crypto/password.h"
#include "store/sqlite_store.h"

namespace berth::testing {

struct ApiStore {
  std::unique_ptr<store::SqliteStore> store;
  std::string alice_id;
  std::string alice_token;
};

inline ApiStore open_api_store(const std::filesystem::path& dir) {
  ApiStore out;
  auto opened = store::SqliteStore::open(dir / "data");
  REQUIRE(opened.ok());
  out.store = std::move(opened).value();
  auto alice = out.store->add_account("alice", Secret("alice-password"));
  REQUIRE(alice.ok());
  out.alice_id = *alice;
  REQUIRE(out.store->add_account("bob", Secret("bob-password")).ok());
  auto token = out.store->create_token("alice", "tests");
  REQUIRE(token.ok());
  out.alice_token = std::string(token->reveal());
  return out;
}

inline api::ApiOptions loopback_api_options(api::ApiOptions options = {}) {
  options.listen_host = "127.0.0.1";
  options.listen_port = 0;
  options.new_id = [] { return crypto::random_uuid(); };
  return options;
}

}  // namespace berth::testing
