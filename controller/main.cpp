// berth-controller: the composition root. Subcommands live in cmd_*.cpp and register themselves
// (see command.h); main() only parses the command line and runs the chosen one.
#include <cstdio>
#include <string>
#include <vector>

#include "command.h"
#include "common/log.h"
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
  // Before anything reads a secret: a process that cannot turn core files off does not start.
  if (const berth::Status hardened = berth::harden_process(); !hardened) {
    berth::log::error("cannot harden the process, refusing to start",
                      {{"error", hardened.error().message}});
    return 1;
  }
  CLI::App app{"berth-controller: deploys container images onto VMs through agents"};
  app.require_subcommand(1);
  std::string log_format;
  app.add_option("--log-format", log_format,
                 "json|text (default: text when stderr is a terminal, else json)")
      ->check(CLI::IsMember({"json", "text"}));
  // Root options may follow the subcommand (`berth-controller serve --log-format text`).
  // Subcommands copy this setting when they are added, so it is set before the registrations.
  app.fallthrough();
  berth::controller::Runner run;
  berth::controller::apply_registrations(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  berth::log::Format format = berth::log::default_format();
  if (!log_format.empty()) berth::log::parse_format(log_format, format);
  berth::log::set_format(format);
  return run ? run() : 0;
}
