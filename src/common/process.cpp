#include "common/process.h"

#include <sys/prctl.h>
#include <sys/resource.h>

namespace berth {

void harden_process() {
  rlimit none{0, 0};
  setrlimit(RLIMIT_CORE, &none);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

}  // namespace berth
