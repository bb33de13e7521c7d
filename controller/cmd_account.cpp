// berth-controller account add NAME --data-dir DIR
// Creates an API account in the standalone store. The password is read from stdin (one line,
// so it never appears on a command line or in the environment); an empty one is refused.
// Prints the account id. Exit codes: 0 created, 2 invalid input, 1 any other failure (3 when
// the name is taken).
#include <iostream>
#include <memory>
#include <string>

#include "command.h"
#include "common/log.h"
#include "common/secret.h"
#include "store/sqlite_store.h"

namespace berth::controller {
namespace {

struct Options {
  std::string name;
  std::string data_dir;
};

Secret read_password_line() {
  std::string line;
  std::getline(std::cin, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  Secret out(line);
  wipe_string(line);  // the whole capacity, also what getline read beyond size()
  return out;
}

int run(const Options& o) {
  log::set_level(log::Level::kWarn);
  const Secret password = read_password_line();
  if (password.empty()) {
    std::cerr << "account add: the password read from stdin is empty\n";
    return 2;
  }
  auto store = store::SqliteStore::open(o.data_dir);
  if (!store.ok()) {
    std::cerr << "account add: " << store.error().message << "\n";
    return 1;
  }
  auto id = (*store)->add_account(o.name, password);
  if (!id.ok()) {
    std::cerr << "account add: " << id.error().message << "\n";
    if (id.error().code == ErrorCode::kValidation) return 2;
    return id.error().code == ErrorCode::kConflict ? 3 : 1;
  }
  std::cout << *id << "\n";
  return 0;
}

const Registration kRegistration([](CLI::App& root, Runner& runner) {
  auto* account = root.add_subcommand("account", "manage API accounts (standalone mode)");
  account->require_subcommand(1);
  auto opts = std::make_shared<Options>();
  auto* add = account->add_subcommand("add", "create an account; the password is read from stdin");
  add->add_option("NAME", opts->name, "account name")->required();
  add->add_option("--data-dir", opts->data_dir, "controller data directory")->required();
  add->callback([opts, &runner] { runner = [opts] { return run(*opts); }; });
});

}  // namespace
}  // namespace berth::controller
