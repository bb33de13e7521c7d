// berth-controller rotate-master-key --data-dir DIR
// Generates a new master key, re-seals every stored registry password under it in one
// transaction and retires the old key. Prints the old and new key ids (never key bytes). Run
// it while `serve` is stopped: a running server keeps the old key in memory and would seal new
// passwords under it. A crash part-way is completed by the next open of the store.
#include <iostream>
#include <memory>
#include <string>

#include "command.h"
#include "common/log.h"
#include "store/sqlite_store.h"

namespace berth::controller {
namespace {

struct Options {
  std::string data_dir;
};

int run(const Options& o) {
  log::set_level(log::Level::kWarn);
  auto store = store::SqliteStore::open(o.data_dir);
  if (!store.ok()) {
    std::cerr << "rotate-master-key: " << store.error().message << "\n";
    return 1;
  }
  auto rotation = (*store)->rotate_master_key();
  if (!rotation.ok()) {
    std::cerr << "rotate-master-key: " << rotation.error().message << "\n";
    return 1;
  }
  std::cout << "old key id: " << rotation->old_key_id << "\n"
            << "new key id: " << rotation->new_key_id << "\n"
            << "credentials re-sealed: " << rotation->resealed << "\n";
  return 0;
}

const Registration kRegistration([](CLI::App& root, Runner& runner) {
  auto opts = std::make_shared<Options>();
  auto* sub = root.add_subcommand("rotate-master-key",
                                  "re-seal every stored registry password under a new master key");
  sub->add_option("--data-dir", opts->data_dir, "controller data directory")->required();
  sub->callback([opts, &runner] { runner = [opts] { return run(*opts); }; });
});

}  // namespace
}  // namespace berth::controller
