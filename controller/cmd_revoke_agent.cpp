// berth-controller revoke-agent NAME --data-dir DIR [--fingerprint SHA256]
// Adds an entry to the agent revocation list (DATA_DIR/pki/revoked-agents): the agent link
// refuses the agent at its next handshake, and a running serve closes its connection within a
// maintenance tick (5 s), telling the agent why. Safe to run while serve runs.
#include <iostream>
#include <memory>

#include "command.h"
#include "pki.h"

namespace berth::controller {
namespace {

struct Options {
  std::string data_dir;
  std::string name;
  std::string fingerprint;
};

int run(const Options& o) {
  Status st = revoke_agent(o.data_dir, Revocation{o.name, o.fingerprint});
  if (!st.ok()) {
    std::cerr << "revoke-agent: " << st.error().message << "\n";
    return st.error().code == ErrorCode::kValidation ? 2 : 1;
  }
  if (o.fingerprint.empty())
    std::cout << "revoked every certificate of agent " << o.name << "\n";
  else
    std::cout << "revoked the certificate " << o.fingerprint << " of agent " << o.name << "\n";
  return 0;
}

const Registration kRegistration([](CLI::App& root, Runner& runner) {
  auto opts = std::make_shared<Options>();
  auto* sub = root.add_subcommand(
      "revoke-agent",
      "refuse an agent on the agent link (at its next handshake, and now if connected)");
  sub->add_option("NAME", opts->name, "agent name (its certificate CN)")->required();
  sub->add_option("--data-dir", opts->data_dir, "controller data directory")->required();
  sub->add_option("--fingerprint", opts->fingerprint,
                  "revoke only the certificate with this SHA-256 fingerprint (lowercase hex)");
  sub->callback([opts, &runner] { runner = [opts] { return run(*opts); }; });
});

}  // namespace
}  // namespace berth::controller
