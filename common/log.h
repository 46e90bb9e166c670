#pragma once

#include <fmt/format.h>
#include <string>
#include <string_view>
#include <vector>

namespace tollgate::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

void setLevel(Level level);
Level level();

// Writes one line to stderr: "<RFC3339 time> <level> <component>: <message>". Thread-safe.
void write(Level level, std::string_view component, std::string_view message);

// The last ten warn and error lines written (oldest first), with their time stamps: what
// `tollgatectl status` shows as the last errors. Lines below the current level were never
// written and are not here.
std::vector<std::string> recentProblems();

template <typename... Args>
void info(std::string_view component, fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::Info) write(Level::Info, component, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(std::string_view component, fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::Warn) write(Level::Warn, component, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(std::string_view component, fmt::format_string<Args...> f, Args&&... args) {
  write(Level::Error, component, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void debug(std::string_view component, fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::Debug) write(Level::Debug, component, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace tollgate::log
