// berth-controller agent-credentials --data-dir DIR --name NAME --zone ZONE --out DIR
// Issues a client certificate for an agent from the controller's CA (creating the CA on first
// use) and writes ca.crt, agent.crt and agent.key (0600) into --out.
#include <iostream>
#include <memory>

#include "command.h"
#include "pki.h"

namespace berth::controller {
namespace {

struct Options {
  std::string data_dir;
  std::string name;
  std::string zone = "local";
  std::string out;
  int valid_days = 365;
};

int run(const Options& o) {
  auto pki = ensure_pki(o.data_dir, {});
  if (!pki.ok()) {
    std::cerr << "agent-credentials: " << pki.error().message << "\n";
    return 1;
  }
  Status st = issue_agent_credentials(pki->ca, o.name, o.zone, o.out,
                                      static_cast<std::int64_t>(o.valid_days) * 24 * 3600);
  if (!st.ok()) {
    std::cerr << "agent-credentials: " << st.error().message << "\n";
    return st.error().code == ErrorCode::kValidation ? 2 : 1;
  }
  std::cout << "wrote credentials for agent " << o.name << " (zone " << o.zone << ") to " << o.out
            << "\n";
  return 0;
}

const Registration kRegistration([](CLI::App& root, Runner& runner) {
  auto opts = std::make_shared<Options>();
  auto* sub = root.add_subcommand("agent-credentials",
                                  "issue a client certificate for an agent from the controller CA");
  sub->add_option("--data-dir", opts->data_dir, "controller data directory")->required();
  sub->add_option("--name", opts->name, "agent name (a DNS label)")->required();
  sub->add_option("--zone", opts->zone, "the agent's zone")->capture_default_str();
  sub->add_option("--out", opts->out, "directory to write ca.crt, agent.crt, agent.key")
      ->required();
  sub->add_option("--valid-days", opts->valid_days, "certificate validity")
      ->check(CLI::Range(1, 3650))
      ->capture_default_str();
  sub->callback([opts, &runner] { runner = [opts] { return run(*opts); }; });
});

}  // namespace
}  // namespace berth::controller
