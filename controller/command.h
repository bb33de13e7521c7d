#pragma once
// Subcommand registration for berth-controller. Each cmd_*.cpp adds its subcommand from a
// static initializer, so the composition root (main.cpp) does not change when a command is
// added:
//
//   const berth::controller::Registration kReg([](CLI::App& root, Runner& run) {
//     auto* sub = root.add_subcommand("image-ref", "...");
//     auto opts = std::make_shared<Options>();
//     sub->add_option(...);
//     sub->callback([opts, &run] { run = [opts] { return do_it(*opts); }; });
//   });
//
// The Runner returns the process exit code.
#include <functional>

#include <CLI/CLI.hpp>

namespace berth::controller {

using Runner = std::function<int()>;
using Setup = std::function<void(CLI::App& root, Runner& run)>;

struct Registration {
  explicit Registration(Setup setup);
};

// Called by main(): applies every registration to `root`.
void apply_registrations(CLI::App& root, Runner& run);

}  // namespace berth::controller
