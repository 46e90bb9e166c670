// tollgatectl commands that ask the running agent over <run-dir>/admin.sock.
#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <ostream>
#include <unistd.h>

#include "cli/admin_view.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "common/framing.h"
#include "proto/admin.pb.h"

namespace tollgate::cli {
namespace {

constexpr std::string_view kDefaultRunDir = "/run/tollgate";

const OptionSpec kRunDir = {"run-dir", 0, true, "DIR", "the agent's --run-dir (default /run/tollgate)"};
const OptionSpec kOutput = {"output", 'o', true, "FORMAT", "table (default), json or yaml"};

int fail2(std::ostream& err, std::string_view cmd, const std::string& message) {
  err << "tollgatectl " << cmd << ": " << message << "\n";
  return kExitUsage;
}

// One request, one reply. Errors are the one line the user needs.
Result<admin::AdminReply> ask(const std::string& runDir, const admin::AdminRequest& req) {
  std::string path = runDir + "/admin.sock";
  auto sock = connectUnix(path, 10000);
  if (!sock) {
    int code = sock.error().code;
    if (code == ENOENT || code == ECONNREFUSED) {
      return fail(fmt::format("agent not running: nothing answers on {} (is tollgate-agent "
                              "running with --run-dir {}?)",
                              path, runDir));
    }
    if (code == EACCES || code == EPERM) {
      return fail(fmt::format("permission denied on {}: the admin socket is root only", path));
    }
    return fail(sock.error().str());
  }
  std::string payload;
  req.SerializeToString(&payload);
  auto st = sendFrame(*sock, payload);
  // Even when the send failed the agent may have answered (a refusal): read what is there.
  auto frame = recvFrame(*sock);
  ::close(*sock);
  if (!frame && !st) frame = std::unexpected(st.error());
  if (!frame) return fail(fmt::format("no answer from the agent on {}: {}", path, frame.error().str()));
  admin::AdminReply reply;
  if (!reply.ParseFromString(frame->payload)) return fail("the agent's reply does not parse");
  if (!reply.ok()) return fail(reply.error());
  return reply;
}

int64_t nowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Common {
  std::string runDir;
  std::string format;
};

// Parses the flags every agent command takes; nullopt after printing help or an error (*rc set).
std::optional<Common> common(const Args& a, std::string_view cmd, std::ostream& err, int* rc) {
  Common c{a.get("run-dir").value_or(std::string(kDefaultRunDir)), a.get("output").value_or("table")};
  if (c.format != "table" && c.format != "json" && c.format != "yaml") {
    *rc = fail2(err, cmd, fmt::format("-o \"{}\": expected table, json or yaml", c.format));
    return std::nullopt;
  }
  return c;
}

template <typename Render>
int emit(const admin::AdminReply& reply, const google::protobuf::Message& part,
         const Common& c, std::string_view cmd, std::ostream& out, std::ostream& err,
         Render render) {
  if (c.format == "table") {
    out << render(reply);
    return kExitOk;
  }
  auto text = c.format == "json" ? toJsonText(part, true) : toYamlText(part);
  if (!text) return fail2(err, cmd, text.error().str());
  out << *text;
  return kExitOk;
}

// Shared skeleton: parse, build the request, ask, print.
template <typename Build, typename Print>
int run(const std::vector<std::string>& argv, std::string_view cmd, std::string_view usage,
        std::vector<OptionSpec> specs, std::ostream& out, std::ostream& err, Build build,
        Print print) {
  specs.push_back(kRunDir);
  specs.push_back(kOutput);
  auto args = parseArgs(argv, specs);
  if (!args) return fail2(err, cmd, args.error().str());
  if (args->help) {
    out << usage << formatOptions(specs);
    return kExitOk;
  }
  int rc = kExitOk;
  auto c = common(*args, cmd, err, &rc);
  if (!c) return rc;
  admin::AdminRequest req;
  if (auto st = build(*args, req); !st) return fail2(err, cmd, st.error().str());
  auto reply = ask(c->runDir, req);
  if (!reply) return fail2(err, cmd, reply.error().str());
  return print(*reply, *c, out, err);
}

}  // namespace

int statusCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  return run(
      argv, "status", "Usage: tollgatectl status [--run-dir DIR] [-o table|json|yaml]\n", {}, out,
      err,
      [](const Args& a, admin::AdminRequest& req) -> Status {
        if (!a.positional.empty()) return fail("no arguments expected");
        req.mutable_status();
        return {};
      },
      [](const admin::AdminReply& r, const Common& c, std::ostream& o, std::ostream& e) {
        return emit(r, r.status(), c, "status", o, e,
                    [](const admin::AdminReply& x) { return renderStatus(x.status(), nowUnix()); });
      });
}

int podsCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  return run(
      argv, "pods", "Usage: tollgatectl pods [-n NAMESPACE] [--run-dir DIR] [-o table|json|yaml]\n",
      {{"namespace", 'n', true, "NS", "only this namespace"}}, out, err,
      [](const Args& a, admin::AdminRequest& req) -> Status {
        if (!a.positional.empty()) return fail("no arguments expected (use -n NAMESPACE)");
        req.mutable_pods()->set_namespace_(a.get("namespace").value_or(""));
        return {};
      },
      [](const admin::AdminReply& r, const Common& c, std::ostream& o, std::ostream& e) {
        admin::AdminReply pods;
        *pods.mutable_pods() = r.pods();
        return emit(r, pods, c, "pods", o, e, [](const admin::AdminReply& x) { return renderPods(x); });
      });
}

int rulesCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  return run(
      argv, "rules", "Usage: tollgatectl rules NAMESPACE/POD [--run-dir DIR] [-o table|json|yaml]\n",
      {}, out, err,
      [](const Args& a, admin::AdminRequest& req) -> Status {
        if (a.positional.size() != 1) return fail("exactly one NAMESPACE/POD expected");
        const std::string& ref = a.positional[0];
        auto slash = ref.find('/');
        if (slash == std::string::npos || slash == 0 || slash + 1 == ref.size() ||
            ref.find('/', slash + 1) != std::string::npos) {
          return fail(fmt::format("\"{}\": expected NAMESPACE/POD", ref));
        }
        req.mutable_rules()->set_namespace_(ref.substr(0, slash));
        req.mutable_rules()->set_name(ref.substr(slash + 1));
        return {};
      },
      [](const admin::AdminReply& r, const Common& c, std::ostream& o, std::ostream& e) {
        admin::AdminReply part;
        *part.mutable_pods() = r.pods();
        part.set_text(r.text());
        part.set_expected(r.expected());
        return emit(r, part, c, "rules", o, e, [](const admin::AdminReply& x) { return renderRules(x); });
      });
}

int certsCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  return run(
      argv, "certs", "Usage: tollgatectl certs [--run-dir DIR] [-o table|json|yaml]\n", {}, out, err,
      [](const Args& a, admin::AdminRequest& req) -> Status {
        if (!a.positional.empty()) return fail("no arguments expected");
        req.mutable_certs();
        return {};
      },
      [](const admin::AdminReply& r, const Common& c, std::ostream& o, std::ostream& e) {
        admin::AdminReply part;
        *part.mutable_certs() = r.certs();
        return emit(r, part, c, "certs", o, e,
                    [](const admin::AdminReply& x) { return renderCerts(x, nowUnix()); });
      });
}

int connsCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  // --watch asks again every second (until interrupted, or --count times).
  std::vector<OptionSpec> specs = {
      {"watch", 'w', false, "", "ask again every second"},
      {"count", 0, true, "N", "with --watch: stop after N answers"}};
  size_t rounds = 1;
  admin::AdminRequest sent;
  return run(
      argv, "conns",
      "Usage: tollgatectl conns [NAMESPACE/POD] [--watch [--count N]] [--run-dir DIR] "
      "[-o table|json|yaml]\n",
      specs, out, err,
      [&](const Args& a, admin::AdminRequest& req) -> Status {
        if (a.positional.size() > 1) return fail("at most one NAMESPACE/POD expected");
        auto* c = req.mutable_conns();
        if (a.positional.size() == 1) {
          const std::string& ref = a.positional[0];
          auto slash = ref.find('/');
          if (slash == std::string::npos || slash == 0 || slash + 1 == ref.size()) {
            return fail(fmt::format("\"{}\": expected NAMESPACE/POD", ref));
          }
          c->set_namespace_(ref.substr(0, slash));
          c->set_name(ref.substr(slash + 1));
        }
        bool watch = a.has("watch");
        if (auto n = a.get("count")) {
          if (!watch) return fail("--count goes with --watch");
          char* end = nullptr;
          unsigned long v = std::strtoul(n->c_str(), &end, 10);
          if (n->empty() || *end != '\0' || v == 0) {
            return fail(fmt::format("--count \"{}\": expected a number above 0", *n));
          }
          rounds = v;
        } else if (watch) {
          rounds = SIZE_MAX;
        }
        sent = req;
        return {};
      },
      [&](const admin::AdminReply& first, const Common& c, std::ostream& o, std::ostream& e) {
        auto print = [&](const admin::AdminReply& r) {
          admin::AdminReply part;
          *part.mutable_conns() = r.conns();
          return emit(r, part, c, "conns", o, e,
                      [](const admin::AdminReply& x) { return renderConns(x); });
        };
        int rc = print(first);
        for (size_t i = 1; i < rounds && rc == kExitOk; ++i) {
          o.flush();
          std::this_thread::sleep_for(std::chrono::seconds(1));
          auto next = ask(c.runDir, sent);
          if (!next) return fail2(e, "conns", next.error().str());
          o << "\n";
          rc = print(*next);
        }
        return rc;
      });
}

}  // namespace tollgate::cli
