#include "cli/admin_view.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <ctime>
#include <vector>

namespace tollgate::cli {
namespace {

// Left-aligned columns, two spaces apart, header row first.
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string join(const google::protobuf::RepeatedPtrField<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : std::string(sep)) + s;
  return out;
}

std::string relative(int64_t unix, int64_t now) {
  if (unix == 0) return "-";
  return unix >= now ? "in " + formatDuration(unix - now) : formatDuration(now - unix) + " ago";
}

}  // namespace

std::string formatDuration(int64_t s) {
  if (s <= 0) return "0s";
  int64_t d = s / 86400, h = (s % 86400) / 3600, m = (s % 3600) / 60, sec = s % 60;
  if (d > 0) return fmt::format("{}d{}h", d, h);
  if (h > 0) return fmt::format("{}h{}m", h, m);
  if (m > 0) return fmt::format("{}m{}s", m, sec);
  return fmt::format("{}s", sec);
}

std::string formatUnixTime(int64_t unix) {
  if (unix == 0) return "-";
  std::time_t t = static_cast<std::time_t>(unix);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string renderStatus(const admin::AgentStatus& s, int64_t now) {
  std::vector<std::vector<std::string>> rows;
  auto row = [&](std::string k, std::string v) { rows.push_back({std::move(k), std::move(v)}); };
  row("version", s.version());
  row("uptime", formatDuration(static_cast<int64_t>(s.uptime_seconds())));
  row("redirect mode", s.redirect_mode());
  row("config source", s.config_source());
  row("config",
      s.config_generation() == 0
          ? std::string("none loaded (not ready)")
          : fmt::format("generation {}, loaded {} ({} reloads ok, {} rejected)",
                        s.config_generation(), relative(s.config_loaded_unix(), now),
                        s.reloads_ok(), s.reloads_failed()));
  row("enrolled pods", std::to_string(s.enrolled_pods()));
  row("open connections", std::to_string(s.active_connections()));
  if (s.gateways_size() == 0) {
    row("gateways", "none configured (external flows go direct)");
  } else {
    for (const auto& g : s.gateways()) {
      row("gateway", fmt::format("{} {}:{}{}", g.name(), g.address(), g.port(),
                                 g.is_default() ? " (default)" : ""));
    }
    row("tunnel connections", fmt::format("{} up", s.tunnel_connections_up()));
  }
  row("identity", !s.identity_enabled()
                      ? std::string("off (no --ca-cert): gateway routes fail closed")
                      : fmt::format("built-in CA, next SVID rotation {}",
                                    relative(s.svid_next_rotation_unix(), now)));
  row("drift", fmt::format("{} detected, {} repaired, {} repair failed", s.drift_detected(),
                           s.drift_repaired(), s.drift_repair_failed()));
  std::vector<std::pair<std::string, uint64_t>> denied(s.connections_denied().begin(),
                                                       s.connections_denied().end());
  std::sort(denied.begin(), denied.end());
  std::string d;
  for (const auto& [reason, n] : denied) d += fmt::format("{}{} {}", d.empty() ? "" : ", ", reason, n);
  row("denied connections", d.empty() ? "none" : d);
  std::string out = table(rows);
  if (s.last_errors_size() > 0) {
    out += "last errors:\n";
    for (const auto& e : s.last_errors()) out += "  " + e + "\n";
  }
  return out;
}

std::string renderPods(const admin::AdminReply& r) {
  std::vector<std::vector<std::string>> rows = {
      {"NAMESPACE", "NAME", "IPS", "IDENTITY", "RULES", "CONNS", "DROPS", "LISTENERS", "NETNS"}};
  for (const auto& p : r.pods()) {
    std::string drops;
    std::vector<std::pair<std::string, uint64_t>> sorted(p.drops().begin(), p.drops().end());
    std::sort(sorted.begin(), sorted.end());
    for (const auto& [name, n] : sorted) {
      if (n == 0) continue;
      std::string cls = name.starts_with("drop_") ? name.substr(5) : name;
      drops += fmt::format("{}{}={}", drops.empty() ? "" : ",", cls, n);
    }
    std::string ports;
    const char* names[] = {"tcp", "dns", "quic"};
    for (int i = 0; i < p.listener_ports_size() && i < 3; ++i) {
      if (p.listener_ports(i) == 0) continue;
      ports += fmt::format("{}{}:{}", ports.empty() ? "" : ",", names[i], p.listener_ports(i));
    }
    rows.push_back({p.namespace_(), p.name(), p.pod_ips_size() ? join(p.pod_ips(), ",") : "-",
                    p.identity(), p.rules_ok() ? "ok" : "DRIFT",
                    std::to_string(p.active_connections()), drops.empty() ? "-" : drops,
                    ports.empty() ? "-" : ports, p.netns_path()});
  }
  std::string out = table(rows);
  for (const auto& p : r.pods()) {
    for (const auto& d : p.drift()) out += fmt::format("{}/{}: drift: {}\n", p.namespace_(), p.name(), d);
  }
  if (r.pods_size() == 0) out += "(no pods enrolled)\n";
  return out;
}

std::string renderRules(const admin::AdminReply& r) {
  std::string out;
  const admin::PodStatus* p = r.pods_size() ? &r.pods(0) : nullptr;
  std::string ref = p ? p->namespace_() + "/" + p->name() : "?";
  if (p && p->rules_ok()) {
    out += fmt::format("# {}: rules OK (installed = expected)\n", ref);
  } else {
    out += fmt::format("# {}: DRIFT from what the agent installs:\n", ref);
    if (p) {
      for (const auto& d : p->drift()) out += "#   " + d + "\n";
    }
    out += "# the reconciler repairs it within one --reconcile-interval\n";
  }
  out += r.text().empty() ? std::string("# nothing installed in the pod netns\n") : r.text();
  if (!out.ends_with("\n")) out += "\n";
  return out;
}

std::string renderVerify(const admin::AdminReply& r, const std::string& podRef) {
  std::vector<std::vector<std::string>> rows = {{"", "VECTOR", "AS", "DESTINATION", "OUTCOME"}};
  size_t failed = 0;
  for (const auto& c : r.checks()) {
    if (!c.passed()) failed++;
    rows.push_back({c.passed() ? "PASS" : "FAIL", c.vector(), c.user().empty() ? "-" : c.user(),
                    c.destination().empty() ? "-" : c.destination(), c.outcome()});
  }
  std::string out = table(rows);
  if (failed == 0) {
    out += fmt::format("{}: no way around the node found ({} checks passed)\n", podRef,
                       r.checks_size());
  } else {
    std::vector<std::string> names;
    for (const auto& c : r.checks()) {
      if (c.passed()) continue;
      std::string n = c.vector() + (c.user().empty() ? "" : " as " + c.user());
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    }
    out += fmt::format("{}: {} of {} checks FAILED: {}\n", podRef, failed, r.checks_size(),
                       fmt::join(names, ", "));
  }
  return out;
}

std::string renderCerts(const admin::AdminReply& r, int64_t now) {
  std::vector<std::vector<std::string>> rows = {
      {"SERVICE ACCOUNT", "SPIFFE ID", "SERIAL", "NOT AFTER", "ROTATES"}};
  for (const auto& c : r.certs()) {
    if (c.spiffe_id().empty()) {
      rows.push_back({c.service_account(), "(not issued yet: on the first gateway flow)", "-", "-", "-"});
      continue;
    }
    rows.push_back({c.service_account(), c.spiffe_id(), c.serial(),
                    formatUnixTime(c.not_after_unix()), relative(c.rotate_at_unix(), now)});
  }
  std::string out = table(rows);
  if (r.certs_size() == 0) out += "(no service accounts: no pods enrolled)\n";
  return out;
}

std::string formatBytes(uint64_t n) {
  if (n < 1024) return std::to_string(n);
  if (n < 1024 * 1024) return fmt::format("{:.1f}K", static_cast<double>(n) / 1024);
  if (n < 1024ull * 1024 * 1024) return fmt::format("{:.1f}M", static_cast<double>(n) / (1024 * 1024));
  return fmt::format("{:.1f}G", static_cast<double>(n) / (1024.0 * 1024 * 1024));
}

std::string renderConns(const admin::AdminReply& r) {
  std::vector<std::vector<std::string>> rows = {
      {"POD", "DESTINATION", "NAME", "PROTO", "DECISION", "ROUTE", "UP", "DOWN", "AGE"}};
  for (const auto& c : r.conns()) {
    std::string decision = c.decision().empty() ? std::string("sniffing")
                                                : c.decision() + (c.reason().empty() ? "" : " " + c.reason());
    rows.push_back({c.namespace_() + "/" + c.pod(), c.original_dst().empty() ? "-" : c.original_dst(),
                    c.name().empty() ? "-" : c.name(), c.protocol().empty() ? "-" : c.protocol(),
                    decision, c.route().empty() ? "-" : c.route(), formatBytes(c.bytes_up()),
                    formatBytes(c.bytes_down()),
                    formatDuration(static_cast<int64_t>(c.age_ms() / 1000))});
  }
  std::string out = table(rows);
  if (r.conns_size() == 0) out += "(no open connections)\n";
  return out;
}

std::string renderEvent(const admin::LogEvent& e) {
  int64_t ms = e.unix_ms();
  std::string when = formatUnixTime(ms / 1000);
  if (when.size() > 1 && when.back() == 'Z') {
    when = fmt::format("{}.{:03}Z", when.substr(0, when.size() - 1), ms % 1000);
  }
  std::string who = e.namespace_().empty() ? std::string("node") : e.namespace_() + "/" + e.pod();
  return fmt::format("{} {:<5} {} {}\n", when, e.kind(), who, e.text());
}

}  // namespace tollgate::cli
