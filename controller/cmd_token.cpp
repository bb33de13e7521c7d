// berth-controller token create NAME --data-dir DIR [--label L]
// Issues an API token (Bearer) for account NAME and prints it once on stdout; the store keeps
// only its SHA-256, so a lost token cannot be shown again, only replaced.
#include <iostream>
#include <memory>
#include <string>

#include "command.h"
#include "common/log.h"
#include "store/sqlite_store.h"

namespace berth::controller {
namespace {

struct Options {
  std::string account;
  std::string data_dir;
  std::string label;
};

int run(const Options& o) {
  log::set_level(log::Level::kWarn);
  auto store = store::SqliteStore::open(o.data_dir);
  if (!store.ok()) {
    std::cerr << "token create: " << store.error().message << "\n";
    return 1;
  }
  auto token = (*store)->create_token(o.account, o.label);
  if (!token.ok()) {
    std::cerr << "token create: " << token.error().message << "\n";
    return token.error().code == ErrorCode::kNotFound ? 2 : 1;
  }
  // The one place the token is shown: it was just created for this operator.
  std::cout << token->reveal() << "\n";
  return 0;
}

const Registration kRegistration([](CLI::App& root, Runner& runner) {
  auto* token = root.add_subcommand("token", "manage API tokens (standalone mode)");
  token->require_subcommand(1);
  auto opts = std::make_shared<Options>();
  auto* create = token->add_subcommand("create", "issue an API token and print it once");
  create->add_option("NAME", opts->account, "account name")->required();
  create->add_option("--data-dir", opts->data_dir, "controller data directory")->required();
  create->add_option("--label", opts->label, "what the token is for");
  create->callback([opts, &runner] { runner = [opts] { return run(*opts); }; });
});

}  // namespace
}  // namespace berth::controller
