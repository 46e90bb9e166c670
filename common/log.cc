#include "common/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <mutex>

namespace tollgate::log {
namespace {
std::atomic<Level> g_level{Level::Info};
std::mutex g_mutex;
constexpr size_t kRecent = 10;
// Never destroyed: threads still logging while the process exits must not find it gone.
std::deque<std::string>& recent() {
  static auto* d = new std::deque<std::string>();
  return *d;
}

const char* levelName(Level l) {
  switch (l) {
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warn: return "warn";
    case Level::Error: return "error";
  }
  return "?";
}
}  // namespace

void setLevel(Level l) { g_level.store(l, std::memory_order_relaxed); }
Level level() { return g_level.load(std::memory_order_relaxed); }

void write(Level l, std::string_view component, std::string_view message) {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t t = system_clock::to_time_t(now);
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  std::lock_guard lock(g_mutex);
  std::fprintf(stderr, "%s.%03lldZ %s %.*s: %.*s\n", ts, static_cast<long long>(ms), levelName(l),
               static_cast<int>(component.size()), component.data(),
               static_cast<int>(message.size()), message.data());
  if (l >= Level::Warn) {
    char stamp[48];
    std::snprintf(stamp, sizeof stamp, "%s.%03lldZ %s ", ts, static_cast<long long>(ms), levelName(l));
    recent().push_back(std::string(stamp) + std::string(component) + ": " + std::string(message));
    if (recent().size() > kRecent) recent().pop_front();
  }
}

std::vector<std::string> recentProblems() {
  std::lock_guard lock(g_mutex);
  return {recent().begin(), recent().end()};
}

}  // namespace tollgate::log
