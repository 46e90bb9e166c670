#include "cli/check_command.h"

#include <fmt/format.h>

#include <charconv>
#include <ostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/json.h"
#include "cli/load_config.h"

namespace tollgate::cli {
namespace {

using policy::AppProtocol;
using policy::L4Protocol;

const std::vector<OptionSpec> kCheckOptions = {
    {"config-dir", 0, true, "DIR", "configuration directory or file (required)"},
    {"from", 0, true, "NS/POD", "source pod (required)"},
    {"sni", 0, true, "NAME", "TLS SNI the pod sends (implies --proto tls)"},
    {"host", 0, true, "NAME", "HTTP Host the pod sends (implies --proto http)"},
    {"proto", 0, true, "PROTO", "tcp|tls|http|udp; default: not sniffed"},
    {"output", 'o', true, "FORMAT", "text (default) or json"},
};

constexpr std::string_view kCheckUsage =
    "Usage: tollgatectl check --config-dir DIR --from NS/POD DEST:PORT [--sni NAME | --host NAME]\n"
    "                         [--proto tcp|tls|http|udp] [-o json]\n"
    "\n"
    "Decides one flow offline with the same function the proxy uses. DEST is an IP (v4, or v6\n"
    "in brackets) or a host name; a host name is also the flow's name and its address is\n"
    "unknown. --sni/--host set the name the proxy would sniff.\n"
    "Exit: 0 allowed, 1 denied, 2 bad input.\n\n";

int usageError(std::ostream& err, const std::string& message) {
  err << "tollgatectl check: " << message << "\n"
      << "Run 'tollgatectl check --help' for usage.\n";
  return kExitUsage;
}

std::string_view appName(AppProtocol a) {
  switch (a) {
    case AppProtocol::Unknown:
      return "unknown";
    case AppProtocol::Tcp:
      return "tcp";
    case AppProtocol::Tls:
      return "tls";
    case AppProtocol::Http:
      return "http";
  }
  return "unknown";
}

std::string_view routeKind(policy::Route::Kind k) {
  switch (k) {
    case policy::Route::Kind::None:
      return "none";
    case policy::Route::Kind::InCluster:
      return "in-cluster";
    case policy::Route::Kind::Direct:
      return "direct";
    case policy::Route::Kind::Gateway:
      return "gateway";
  }
  return "none";
}

std::string sourceLocation(const policy::SourceRef& s) {
  if (s.file.empty()) return "";
  return s.line > 0 ? fmt::format("{}:{}", s.file, s.line) : s.file;
}

std::string labelsText(const policy::Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out.empty() ? "none" : out;
}

void printText(std::ostream& out, const policy::FlowQuery& q, const policy::Decision& d,
               const Destination& dest) {
  std::string decided = d.decidedBy.str();
  if (auto loc = sourceLocation(d.decidedBy.source); !loc.empty()) decided += " (" + loc + ")";
  out << fmt::format("decision:   {}\n", d.allowed() ? "ALLOW" : "DENY");
  out << fmt::format("reason:     {}\n", policy::toString(d.reason));
  out << fmt::format("decided by: {}\n", decided);
  out << fmt::format("route:      {}\n", d.route.str());
  if (d.route.tls) {
    out << fmt::format("tls:        {} ({})\n", policy::toString(d.route.tls->mode),
                       d.route.destinationRule);
  }
  out << fmt::format("source:     {}/{} (sa {}, labels {})\n", q.source.ns, q.source.name,
                     q.source.serviceAccount, labelsText(q.source.labels));
  out << fmt::format("flow:       {} {}:{} {} name {}\n", policy::toString(q.l4),
                     dest.ip ? q.dstIp.str() : "<unknown>", q.dstPort, appName(q.app),
                     q.name ? *q.name : "-");
}

void printJson(std::ostream& out, const policy::FlowQuery& q, const policy::Decision& d,
               const Destination& dest, bool sourceKnown) {
  const auto& by = d.decidedBy;
  const auto& r = d.route;
  std::string labels;
  for (const auto& [k, v] : q.source.labels) {
    labels += fmt::format("{}{}:{}", labels.empty() ? "" : ",", jsonQuote(k), jsonQuote(v));
  }
  out << "{";
  out << "\"decision\":" << jsonQuote(policy::toString(d.verdict));
  out << ",\"allowed\":" << (d.allowed() ? "true" : "false");
  out << ",\"reason\":" << jsonQuote(policy::toString(d.reason));
  out << ",\"decidedBy\":{\"ref\":" << jsonQuote(by.str()) << ",\"kind\":" << jsonQuote(by.kind)
      << ",\"namespace\":" << jsonQuote(by.ns) << ",\"name\":" << jsonQuote(by.name)
      << ",\"file\":" << jsonQuote(by.source.file) << ",\"line\":" << by.source.line << "}";
  out << ",\"route\":{\"text\":" << jsonQuote(r.str())
      << ",\"kind\":" << jsonQuote(routeKind(r.kind)) << ",\"gateway\":" << jsonQuote(r.gatewayName)
      << ",\"gatewayAddress\":" << jsonQuote(r.gatewayAddress)
      << ",\"gatewayPort\":" << r.gatewayPort << ",\"upstreamHost\":" << jsonQuote(r.upstreamHost)
      << ",\"upstreamPort\":" << r.upstreamPort << ",\"byName\":" << (r.byName ? "true" : "false")
      << ",\"tls\":" << jsonQuote(r.tls ? policy::toString(r.tls->mode) : "")
      << ",\"destinationRule\":" << jsonQuote(r.destinationRule) << "}";
  out << ",\"name\":" << jsonQuote(d.name);
  out << ",\"source\":{\"namespace\":" << jsonQuote(q.source.ns)
      << ",\"name\":" << jsonQuote(q.source.name)
      << ",\"serviceAccount\":" << jsonQuote(q.source.serviceAccount) << ",\"labels\":{" << labels
      << "},\"known\":" << (sourceKnown ? "true" : "false") << "}";
  out << ",\"flow\":{\"l4\":" << jsonQuote(policy::toString(q.l4))
      << ",\"dstIp\":" << jsonQuote(dest.ip ? q.dstIp.str() : "") << ",\"dstPort\":" << q.dstPort
      << ",\"app\":" << jsonQuote(appName(q.app))
      << ",\"name\":" << jsonQuote(q.name ? *q.name : "") << "}";
  out << "}\n";
}

}  // namespace

Result<Destination> parseDestination(std::string_view text) {
  Destination d;
  std::string_view hostPart;
  std::string_view portPart;
  if (text.starts_with("[")) {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return fail(fmt::format("destination \"{}\": expected [IPv6]:PORT", text));
    }
    hostPart = text.substr(1, close - 1);
    portPart = text.substr(close + 2);
    auto ip = policy::IpAddress::parse(hostPart);
    if (!ip || ip->isV4()) {
      return fail(fmt::format("destination \"{}\": \"{}\" is not an IPv6 address", text, hostPart));
    }
    d.ip = *ip;
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return fail(fmt::format("destination \"{}\": expected HOST:PORT", text));
    }
    hostPart = text.substr(0, colon);
    portPart = text.substr(colon + 1);
    if (hostPart.find(':') != std::string_view::npos) {
      return fail(
          fmt::format("destination \"{}\": put IPv6 addresses in brackets: [ADDR]:PORT", text));
    }
    if (hostPart.empty()) return fail(fmt::format("destination \"{}\": empty host", text));
    if (auto ip = policy::IpAddress::parse(hostPart)) {
      d.ip = *ip;
    } else {
      for (char c : hostPart) {
        if (c <= ' ' || c == '/' || c == '[' || c == ']') {
          return fail(fmt::format("destination \"{}\": \"{}\" is neither an IP nor a host name",
                                  text, hostPart));
        }
      }
      d.host = std::string(hostPart);
    }
  }
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(portPart.data(), portPart.data() + portPart.size(), port);
  if (portPart.empty() || ec != std::errc() || ptr != portPart.data() + portPart.size() ||
      port == 0 || port > 65535) {
    return fail(fmt::format("destination \"{}\": port must be 1-65535", text));
  }
  d.port = static_cast<uint16_t>(port);
  return d;
}

int checkCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  auto args = parseArgs(argv, kCheckOptions);
  if (!args) return usageError(err, args.error().str());
  if (args->help) {
    out << kCheckUsage << formatOptions(kCheckOptions);
    return kExitOk;
  }
  auto dir = args->get("config-dir");
  if (!dir || dir->empty()) return usageError(err, "--config-dir is required");
  auto from = args->get("from");
  if (!from) return usageError(err, "--from NS/POD is required");
  auto slash = from->find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == from->size() ||
      from->find('/', slash + 1) != std::string::npos) {
    return usageError(err, fmt::format("--from \"{}\": expected NAMESPACE/POD", *from));
  }
  if (args->positional.size() != 1) {
    return usageError(
        err, args->positional.empty() ? "DEST:PORT is required" : "exactly one DEST:PORT expected");
  }
  auto dest = parseDestination(args->positional[0]);
  if (!dest) return usageError(err, dest.error().str());

  std::string format = args->get("output").value_or("text");
  if (format != "text" && format != "json") {
    return usageError(err, fmt::format("-o \"{}\": expected text or json", format));
  }

  policy::FlowQuery q;
  if (args->has("sni") && args->has("host"))
    return usageError(err, "give --sni or --host, not both");
  std::optional<AppProtocol> implied;
  if (auto sni = args->get("sni")) {
    q.name = *sni;
    implied = AppProtocol::Tls;
  } else if (auto host = args->get("host")) {
    q.name = *host;
    implied = AppProtocol::Http;
  } else if (!dest->host.empty()) {
    q.name = dest->host;
  }
  if (q.name && q.name->empty()) return usageError(err, "--sni/--host: empty name");
  q.app = implied.value_or(AppProtocol::Unknown);
  if (auto proto = args->get("proto")) {
    AppProtocol app;
    L4Protocol l4 = L4Protocol::Tcp;
    if (*proto == "tcp") {
      app = AppProtocol::Tcp;
    } else if (*proto == "tls") {
      app = AppProtocol::Tls;
    } else if (*proto == "http") {
      app = AppProtocol::Http;
    } else if (*proto == "udp") {
      app = AppProtocol::Unknown;
      l4 = L4Protocol::Udp;
    } else {
      return usageError(err, fmt::format("--proto \"{}\": expected tcp, tls, http or udp", *proto));
    }
    if (implied && (l4 != L4Protocol::Tcp || app != *implied)) {
      return usageError(err, fmt::format("--proto {} contradicts --{}", *proto,
                                         *implied == AppProtocol::Tls ? "sni" : "host"));
    }
    q.app = app;
    q.l4 = l4;
  }
  if (dest->ip) q.dstIp = *dest->ip;  // else 0.0.0.0: unknown, decided by name
  q.dstPort = dest->port;

  auto snap = loadSnapshot(*dir, err);
  if (!snap) return kExitUsage;

  std::string ns = from->substr(0, slash);
  std::string pod = from->substr(slash + 1);
  bool known = false;
  if (auto id = snap->identityOf(ns, pod)) {
    q.source = std::move(*id);
    known = true;
  } else {
    q.source.ns = ns;
    q.source.name = pod;
    err << fmt::format(
        "note: pod {}/{} is not in the configuration: using namespace {}, no labels, "
        "service account default\n",
        ns, pod, ns);
  }

  policy::Decision d = snap->decide(q);
  if (format == "json") {
    printJson(out, q, d, *dest, known);
  } else {
    printText(out, q, d, *dest);
  }
  return d.allowed() ? kExitOk : kExitDenied;
}

}  // namespace tollgate::cli
