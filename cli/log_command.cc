// tollgatectl log [NS/POD] [-f]: the agent's event journal (connections as they end, DNS names
// refused, QUIC attempts, rule drift), like `hubble observe`.
#include <fmt/format.h>

#include <chrono>
#include <climits>
#include <deque>
#include <ostream>
#include <set>
#include <thread>

#include "cli/admin_client.h"
#include "cli/admin_view.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/output.h"

namespace tollgate::cli {
namespace {

constexpr std::string_view kUsage =
    "Usage: tollgatectl log [NAMESPACE/POD] [-f] [--tail N] [--kind K[,K...]] [--count N]\n"
    "                       [--run-dir DIR] [-o table|json|yaml]\n"
    "\n"
    "The node's events, oldest first: connections as they end (their access record), DNS names\n"
    "refused, QUIC attempts, rule drift. The agent keeps the newest 8192; -f follows\n"
    "new ones (asking every 200 ms) until interrupted. -o json prints one object per line.\n\n";

// How often a follower asks; the events of the last interval arrive together.
constexpr auto kFollowInterval = std::chrono::milliseconds(200);
constexpr uint32_t kPage = 1000;

}  // namespace

int logCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  std::vector<OptionSpec> specs = {
      {"follow", 'f', false, "", "print new events as they happen"},
      {"tail", 0, true, "N", "only the last N earlier events (default: all; 10 with -f)"},
      {"kind", 0, true, "KINDS", "only these kinds: conn, dns, quic, drift"},
      {"count", 0, true, "N", "stop after printing N events"},
      kRunDirOption,
      kOutputOption,
  };
  auto args = parseArgs(argv, specs);
  if (!args) return failUsage(err, "log", args.error().str());
  if (args->help) {
    out << kUsage << formatOptions(specs);
    return kExitOk;
  }
  auto common = commonOptions(*args);
  if (!common) return failUsage(err, "log", common.error().str());
  admin::AdminRequest req;
  auto* lr = req.mutable_log();
  if (args->positional.size() > 1) return failUsage(err, "log", "at most one NAMESPACE/POD expected");
  if (args->positional.size() == 1) {
    auto ref = parsePodRef(args->positional[0]);
    if (!ref) return failUsage(err, "log", ref.error().str());
    lr->set_namespace_(ref->first);
    lr->set_name(ref->second);
  }
  bool follow = args->has("follow");
  size_t tail = follow ? 10 : SIZE_MAX;
  size_t count = SIZE_MAX;
  if (auto t = args->get("tail")) {
    auto n = parseCount(*t, "--tail", /*allowZero=*/true);
    if (!n) return failUsage(err, "log", n.error().str());
    tail = *n;
  }
  if (auto c = args->get("count")) {
    auto n = parseCount(*c, "--count", /*allowZero=*/false);
    if (!n) return failUsage(err, "log", n.error().str());
    count = *n;
  }
  std::set<std::string> kinds;
  if (auto k = args->get("kind")) {
    static const std::set<std::string> kKnown = {"conn", "dns", "quic", "drift"};
    size_t start = 0;
    while (start <= k->size()) {
      size_t comma = k->find(',', start);
      std::string one = k->substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!kKnown.contains(one)) {
        return failUsage(err, "log", fmt::format("--kind \"{}\": expected conn, dns, quic or drift", one));
      }
      kinds.insert(one);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }

  size_t printed = 0;
  auto print = [&](const admin::LogEvent& e) -> Status {
    if (!kinds.empty() && !kinds.contains(e.kind())) return {};
    if (printed >= count) return {};
    if (common->format == "table") {
      out << renderEvent(e);
    } else if (common->format == "json") {
      auto text = toJsonText(e, false);
      if (!text) return std::unexpected(text.error());
      out << *text;
    } else {
      auto text = toYamlText(e);
      if (!text) return std::unexpected(text.error());
      out << "---\n" << *text;
    }
    ++printed;
    return {};
  };
  bool missedReported = false;
  auto reportMissed = [&](uint64_t missed) {
    if (missed == 0) return;
    err << fmt::format("tollgatectl log: {} event(s) left the agent's journal before they were read{}\n",
                       missed, missedReported ? "" : " (it keeps the newest 8192)");
    missedReported = true;
  };

  // What the journal holds now, page by page, then the last `tail` of it.
  lr->set_after(0);
  lr->set_max(kPage);
  std::deque<admin::LogEvent> history;
  uint64_t cursor = 0;
  for (;;) {
    lr->set_after(cursor);
    auto reply = askAgent(common->runDir, req);
    if (!reply) return failUsage(err, "log", reply.error().str());
    if (cursor == 0 && reply->missed() > 0 && tail == SIZE_MAX) reportMissed(reply->missed());
    for (const auto& e : reply->events()) {
      if (!kinds.empty() && !kinds.contains(e.kind())) continue;
      history.push_back(e);
      if (history.size() > tail) history.pop_front();
    }
    // The agent filters by pod, so a page can come back empty and still move the cursor.
    bool more = reply->next_seq() > cursor;
    cursor = std::max(cursor, reply->next_seq());
    if (!more) break;
  }
  for (const auto& e : history) {
    if (auto st = print(e); !st) return failUsage(err, "log", st.error().str());
  }
  out.flush();
  while (follow && printed < count) {
    std::this_thread::sleep_for(kFollowInterval);
    lr->set_after(cursor);
    auto reply = askAgent(common->runDir, req);
    if (!reply) return failUsage(err, "log", reply.error().str());
    reportMissed(reply->missed());
    for (const auto& e : reply->events()) {
      if (auto st = print(e); !st) return failUsage(err, "log", st.error().str());
    }
    // A restarted agent numbers from 1 again: its cursor is behind ours, start from its newest.
    cursor = reply->next_seq();
    out.flush();
  }
  return kExitOk;
}

}  // namespace tollgate::cli
