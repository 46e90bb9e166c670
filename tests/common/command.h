#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace tollgate::tests {

struct CommandResult {
  int exitCode = -1;  // -1: not started, or ended by a signal
  std::string output;
};

// Runs `cmd` through /bin/sh and collects its stdout (redirect stderr in `cmd` to keep it).
inline CommandResult runCommand(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int st = ::pclose(p);
  r.exitCode = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

}  // namespace tollgate::tests
