// tollgatectl learn: follows the agent's journal for a while and prints the ServiceEntries that
// would allow what the node's pods tried (cli/learner.h). With outboundTrafficPolicy ALLOW_ANY
// it is the way to REGISTRY_ONLY: learn, review, apply, switch.
#include <fmt/format.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <ostream>
#include <thread>

#include "cli/admin_client.h"
#include "cli/admin_view.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/learner.h"

namespace tollgate::cli {
namespace {

constexpr std::string_view kUsage =
    "Usage: tollgatectl learn [-n NAMESPACE] [--duration D] [--history] [--out FILE] [--run-dir DIR]\n"
    "\n"
    "Watches the connections the node's pods make for D (default 10m; 90s, 1h30m...) and prints\n"
    "one ServiceEntry per external host they tried: allowed under ALLOW_ANY, or denied as not in\n"
    "the registry. Each entry says how often and from which service accounts. --history also\n"
    "counts what the agent's journal holds from before. Progress goes to stderr.\n\n";

constexpr auto kPoll = std::chrono::milliseconds(500);
constexpr auto kProgressEvery = std::chrono::seconds(10);

// Ctrl-C (or SIGTERM) ends the window early: what was learned so far is still printed.
std::atomic<bool> g_interrupted{false};
void onInterrupt(int) { g_interrupted = true; }

// "10m", "90s", "1h30m", "0s" -> seconds.
Result<int64_t> parseDuration(const std::string& text) {
  int64_t total = 0;
  size_t i = 0;
  if (text.empty()) return fail("--duration: empty");
  while (i < text.size()) {
    size_t start = i;
    int64_t v = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      v = v * 10 + (text[i] - '0');
      if (v > 10'000'000) return fail(fmt::format("--duration \"{}\": too long", text));
      ++i;
    }
    if (i == start || i == text.size()) {
      return fail(fmt::format("--duration \"{}\": expected numbers with units s, m or h (90s, 10m, 1h30m)", text));
    }
    char unit = text[i++];
    if (unit == 's') {
      total += v;
    } else if (unit == 'm') {
      total += v * 60;
    } else if (unit == 'h') {
      total += v * 3600;
    } else {
      return fail(fmt::format("--duration \"{}\": unknown unit '{}' (s, m or h)", text, unit));
    }
  }
  return total;
}

}  // namespace

int learnCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  std::vector<OptionSpec> specs = {
      {"namespace", 'n', true, "NS", "only pods of this namespace"},
      {"duration", 0, true, "D", "how long to watch (default 10m)"},
      {"history", 0, false, "", "also learn from the events the agent already holds"},
      {"out", 0, true, "FILE", "write the YAML here instead of stdout"},
      kRunDirOption,
  };
  auto args = parseArgs(argv, specs);
  if (!args) return failUsage(err, "learn", args.error().str());
  if (args->help) {
    out << kUsage << formatOptions(specs);
    return kExitOk;
  }
  if (!args->positional.empty()) return failUsage(err, "learn", "no arguments expected (use -n NAMESPACE)");
  auto common = commonOptions(*args);
  if (!common) return failUsage(err, "learn", common.error().str());
  auto seconds = parseDuration(args->get("duration").value_or("10m"));
  if (!seconds) return failUsage(err, "learn", seconds.error().str());
  std::string ns = args->get("namespace").value_or("");

  admin::AdminRequest req;
  auto* lr = req.mutable_log();
  lr->set_namespace_(ns);
  lr->set_max(1000);
  Learner learner(ns);
  // Where to start: the journal's oldest event, or only what happens from now on.
  lr->set_after(args->has("history") ? 0 : UINT64_MAX);
  auto reply = askAgent(common->runDir, req);
  if (!reply) return failUsage(err, "learn", reply.error().str());
  uint64_t missed = reply->missed();
  for (const auto& e : reply->events()) learner.add(e);
  uint64_t cursor = reply->next_seq();
  struct sigaction sa {};
  sa.sa_handler = onInterrupt;
  struct sigaction oldInt {}, oldTerm {};
  g_interrupted = false;
  if (*seconds > 0) {
    ::sigaction(SIGINT, &sa, &oldInt);
    ::sigaction(SIGTERM, &sa, &oldTerm);
    err << fmt::format("learning from the connections of {} for {} (Ctrl-C ends it early and prints "
                       "what was learned)\n",
                       ns.empty() ? "every namespace" : "namespace " + ns, formatDuration(*seconds));
  }

  using Clock = std::chrono::steady_clock;
  auto start = Clock::now();
  auto end = start + std::chrono::seconds(*seconds);
  auto nextProgress = start + kProgressEvery;
  // The history may be longer than one page (and a page filtered down to nothing still moves the
  // cursor): read on until the cursor stops moving, then until the end.
  bool catchingUp = args->has("history");
  while (catchingUp || (Clock::now() < end && !g_interrupted)) {
    if (!catchingUp) std::this_thread::sleep_for(std::min<Clock::duration>(kPoll, end - Clock::now()));
    lr->set_after(cursor);
    reply = askAgent(common->runDir, req);
    if (!reply) return failUsage(err, "learn", reply.error().str());
    missed += reply->missed();
    for (const auto& e : reply->events()) learner.add(e);
    catchingUp = reply->next_seq() > cursor;
    cursor = reply->next_seq();
    if (Clock::now() >= nextProgress && Clock::now() < end) {
      auto left = std::chrono::duration_cast<std::chrono::seconds>(end - Clock::now()).count();
      err << fmt::format("learning: {} left, {} connection(s) to {} host(s) so far\n",
                         formatDuration(left), learner.connections(), learner.hosts());
      nextProgress += kProgressEvery;
    }
  }
  if (*seconds > 0) {
    ::sigaction(SIGINT, &oldInt, nullptr);
    ::sigaction(SIGTERM, &oldTerm, nullptr);
  }
  auto watched = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count();
  if (g_interrupted) err << fmt::format("interrupted after {}\n", formatDuration(watched));
  if (missed > 0) {
    err << fmt::format("tollgatectl learn: {} event(s) left the agent's journal before they were "
                       "read; the entries may be incomplete\n",
                       missed);
  }
  std::string source = fmt::format("{} of {}{}", watched > 0 ? formatDuration(watched) : "0s",
                                   ns.empty() ? "every namespace" : "namespace " + ns,
                                   args->has("history") ? " (and the journal's history)" : "");
  std::string yaml = learner.yaml(source);
  if (auto path = args->get("out")) {
    std::ofstream f(*path, std::ios::trunc);
    f << yaml;
    f.close();
    if (!f) return failUsage(err, "learn", fmt::format("cannot write {}", *path));
    err << fmt::format("wrote {} ServiceEntr{} to {}\n", learner.hosts(),
                       learner.hosts() == 1 ? "y" : "ies", *path);
  } else {
    out << yaml;
  }
  return kExitOk;
}

}  // namespace tollgate::cli
