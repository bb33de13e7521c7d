#pragma once
// Process-wide hardening that every berth binary applies first thing in main(): no core files
// (a core file would hold registry passwords that were in memory) and not ptrace-attachable by
// other unprivileged processes.
namespace berth {
void harden_process();
}
