#pragma once
// What the store benchmarks populate a data directory with, shared by berth-bench-scale and
// berth-bench-agents so both measure the same objects: the Change that POST /app-services
// commits (service, first revision, deploy task, optionally a sealed registry credential), and
// temp directories under a chosen base (tmpfs or a real disk).
//
// Contract: make_change is deterministic but for the random UUIDs; make_temp_dir ends the
// benchmark (bench::die) when the directory cannot be created.
#include <filesystem>
#include <string>

#include "core/change.h"
#include "core/types.h"

namespace berth::bench {

inline constexpr core::UnixMillis kEpoch = 1'800'000'000'000;
// The digest every benchmark image resolves to.
std::string fixed_digest();

struct ChangeOptions {
  std::string registry_host = "127.0.0.1:5000";
  std::string zone = "local";
  int credential_every = 10;  // every n-th service carries a sealed credential; 0: none
};

// The Change for service number i of account_id (named app-<100000+i>).
core::Change make_change(int i, const std::string& account_id, const ChangeOptions& o = {});

// A fresh directory base/berth-bench-<tag>-XXXXXX.
std::filesystem::path make_temp_dir(const std::filesystem::path& base, const char* tag);

}  // namespace berth::bench
