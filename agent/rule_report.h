#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tollgate::agent {

// What verify() found when it compared the rules in a netns with the rules we expect. Kept apart
// from "could not look" (an Error) so a reconcile loop repairs drift but alarms on failures.
struct Drift {
  // Readable differences, e.g. "table inet tollgate missing" or
  // "chain output policy accept, expected drop". Empty: the rules are exactly as installed.
  std::vector<std::string> differences;

  bool ok() const { return differences.empty(); }
  std::string summary() const {
    std::string out;
    for (const auto& d : differences) {
      if (!out.empty()) out += "; ";
      out += d;
    }
    return out.empty() ? "in sync" : out;
  }
};

struct CounterValue {
  uint64_t packets = 0;
  uint64_t bytes = 0;
};

// Named counters by name ("dns", "drop_udp", "fence_drop", ...).
using Counters = std::map<std::string, CounterValue>;

}  // namespace tollgate::agent
