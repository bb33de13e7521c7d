// berth-controller: the composition root. Subcommands live in cmd_*.cpp and register themselves
// (see command.h); main() only parses the command line and runs the chosen one.
#include <cstdio>
#include <vector>

#include "command.h"
#include "common/process.h"

namespace berth::controller {
namespace {
std::vector<Setup>& registry() {
  static std::vector<Setup> setups;
  return setups;
}
}  // namespace

Registration::Registration(Setup setup) { registry().push_back(std::move(setup)); }

void apply_registrations(CLI::App& root, Runner& run) {
  for (const auto& setup : registry()) setup(root, run);
}

}  // namespace berth::controller

int main(int argc, char** argv) {
  berth::harden_process();
  CLI::App app{"berth-controller: deploys container images onto VMs through agents"};
  app.require_subcommand(1);
  berth::controller::Runner run;
  berth::controller::apply_registrations(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return run ? run() : 0;
}
