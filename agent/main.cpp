// berth-agent: the composition root of the agent (flags, wiring).
#include <CLI/CLI.hpp>

#include "common/process.h"

int main(int argc, char** argv) {
  berth::harden_process();
  CLI::App app{"berth-agent: runs berth's deploy tasks on this machine"};
  CLI11_PARSE(app, argc, argv);
  return 0;
}
