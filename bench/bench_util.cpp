#include "bench_util.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

namespace berth::bench {

double Samples::mean() const {
  if (ns_.empty()) return 0;
  double sum = 0;
  for (double v : ns_) sum += v;
  return sum / static_cast<double>(ns_.size());
}

double Samples::percentile(double q) {
  if (ns_.empty()) return 0;
  if (!sorted_) {
    std::sort(ns_.begin(), ns_.end());
    sorted_ = true;
  }
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(ns_.size())));
  if (rank > 0) --rank;
  return ns_[std::min(rank, ns_.size() - 1)];
}

std::int64_t maxrss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<std::int64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

std::int64_t rss_bytes() {
  std::ifstream in("/proc/self/statm");
  std::int64_t size = 0, resident = 0;
  in >> size >> resident;
  return resident * static_cast<std::int64_t>(sysconf(_SC_PAGESIZE));
}

void die(std::string_view what, std::string_view why) {
  std::cerr << "bench: FAILED: " << what << ": " << why << std::endl;
  std::_Exit(1);
}

void progress(std::string_view line) { std::cerr << "bench: " << line << std::endl; }

Figures run_child(const std::string& what, const std::function<void(Figures&)>& fn) {
  int fds[2];
  if (pipe(fds) != 0) die(what, "pipe failed");
  std::cout.flush();
  std::cerr.flush();
  const pid_t pid = fork();
  if (pid < 0) die(what, "fork failed");
  if (pid == 0) {
    close(fds[0]);
    Figures out;
    fn(out);
    std::ostringstream text;
    text.precision(17);
    for (const auto& [k, v] : out) text << k << ' ' << v << '\n';
    const std::string s = text.str();
    std::size_t off = 0;
    while (off < s.size()) {
      const ssize_t n = write(fds[1], s.data() + off, s.size() - off);
      if (n <= 0) std::_Exit(3);
      off += static_cast<std::size_t>(n);
    }
    close(fds[1]);
    std::cout.flush();
    std::cerr.flush();
    std::_Exit(0);
  }
  close(fds[1]);
  std::string data;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    data.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die(what, "the measuring child failed");
  Figures out;
  std::istringstream in(data);
  std::string key;
  double value = 0;
  while (in >> key >> value) out[key] = value;
  return out;
}

std::string format(double value, Unit unit) {
  char buf[64];
  switch (unit) {
    case Unit::kNanos:
      if (value < 10)
        std::snprintf(buf, sizeof buf, "%.1f ns", value);
      else if (value < 1e3)
        std::snprintf(buf, sizeof buf, "%.0f ns", value);
      else if (value < 1e6)
        std::snprintf(buf, sizeof buf, "%.2f us", value / 1e3);
      else if (value < 1e9)
        std::snprintf(buf, sizeof buf, "%.2f ms", value / 1e6);
      else
        std::snprintf(buf, sizeof buf, "%.2f s", value / 1e9);
      break;
    case Unit::kBytes:
      if (std::fabs(value) < 1024)
        std::snprintf(buf, sizeof buf, "%.0f B", value);
      else if (std::fabs(value) < 1024.0 * 1024)
        std::snprintf(buf, sizeof buf, "%.2f KiB", value / 1024);
      else
        std::snprintf(buf, sizeof buf, "%.2f MiB", value / 1024 / 1024);
      break;
    case Unit::kCount:
      // Averages (calls per reconcile) keep two decimals; whole counts print as they are.
      if (value < 100 && value != static_cast<double>(static_cast<long long>(value)))
        std::snprintf(buf, sizeof buf, "%.2f", value);
      else
        std::snprintf(buf, sizeof buf, "%.0f", value);
      break;
    case Unit::kPerSecond:
      std::snprintf(buf, sizeof buf, "%.0f /s", value);
      break;
  }
  return buf;
}

void Table::section(const std::string& name) {
  std::printf("\n== %s ==\n", name.c_str());
  std::printf("%-52s %12s %12s %7s  %s\n", "figure", "value", "baseline", "ratio", "verdict");
  std::fflush(stdout);
}

void Table::figure(const std::string& name, double value, Unit unit, const std::string& note) {
  std::printf("%-52s %12s %12s %7s  %s\n", name.c_str(), format(value, unit).c_str(), "-", "-",
              note.c_str());
  std::fflush(stdout);
}

void Table::ratio(const std::string& name, double value, double baseline, Unit unit, double limit,
                  const std::string& good) {
  const double r = baseline > 0 ? value / baseline : 0;
  char verdict[160];
  if (r <= limit) {
    std::snprintf(verdict, sizeof verdict, "%s: ratio %.2f (<= %g expected)", good.c_str(), r,
                  limit);
  } else {
    std::snprintf(verdict, sizeof verdict, "CHECK: ratio %.2f (> %g expected)", r, limit);
  }
  std::printf("%-52s %12s %12s %7.2f  %s\n", name.c_str(), format(value, unit).c_str(),
              format(baseline, unit).c_str(), r, verdict);
  std::fflush(stdout);
}

void Table::ratio_at_least(const std::string& name, double value, double baseline, Unit unit,
                           double floor) {
  const double r = baseline > 0 ? value / baseline : 0;
  char verdict[160];
  if (r >= floor) {
    std::snprintf(verdict, sizeof verdict, "good: ratio %.2f (>= %g target)", r, floor);
  } else {
    std::snprintf(verdict, sizeof verdict, "CHECK: ratio %.2f (< %g target)", r, floor);
  }
  std::printf("%-52s %12s %12s %7.2f  %s\n", name.c_str(), format(value, unit).c_str(),
              format(baseline, unit).c_str(), r, verdict);
  std::fflush(stdout);
}

bool on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  std::string dirs = path;
  std::size_t start = 0;
  while (start <= dirs.size()) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string candidate = dirs.substr(start, end - start) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

std::string thousands(int n) {
  const std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

}  // namespace berth::bench
