// tollgatectl commands that ask the running agent over <run-dir>/admin.sock.
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <ostream>
#include <unistd.h>

#include "cli/admin_client.h"
#include "cli/admin_view.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "proto/admin.pb.h"

namespace tollgate::cli {
namespace {

int64_t nowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <typename Render>
int emit(const admin::AdminReply& reply, const google::protobuf::Message& part,
         const CommonOptions& c, std::string_view cmd, std::ostream& out, std::ostream& err,
         Render render) {
  if (c.format == "table") {
    out << render(reply);
    return kExitOk;
  }
  auto text = c.format == "json" ? toJsonText(part, true) : toYamlText(part);
  if (!text) return failUsage(err, cmd, text.error().str());
  out << *text;
  return kExitOk;
}

// Shared skeleton: parse, build the request, ask, print.
template <typename Build, typename Print>
int run(const std::vector<std::string>& argv, std::string_view cmd, std::string_view usage,
        std::vector<OptionSpec> specs, std::ostream& out, std::ostream& err, Build build,
        Print print, int timeoutMs = 10000) {
  specs.push_back(kRunDirOption);
  specs.push_back(kOutputOption);
  auto args = parseArgs(argv, specs);
  if (!args) return failUsage(err, cmd, args.error().str());
  if (args->help) {
    out << usage << formatOptions(specs);
    return kExitOk;
  }
  auto c = commonOptions(*args);
  if (!c) return failUsage(err, cmd, c.error().str());
  admin::AdminRequest req;
  if (auto st = build(*args, req); !st) return failUsage(err, cmd, st.error().str());
  auto reply = askAgent(c->runDir, req, timeoutMs);
  if (!reply) return failUsage(err, cmd, reply.error().str());
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
      [](const admin::AdminReply& r, const CommonOptions& c, std::ostream& o, std::ostream& e) {
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
      [](const admin::AdminReply& r, const CommonOptions& c, std::ostream& o, std::ostream& e) {
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
        auto ref = parsePodRef(a.positional[0]);
        if (!ref) return std::unexpected(ref.error());
        req.mutable_rules()->set_namespace_(ref->first);
        req.mutable_rules()->set_name(ref->second);
        return {};
      },
      [](const admin::AdminReply& r, const CommonOptions& c, std::ostream& o, std::ostream& e) {
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
      [](const admin::AdminReply& r, const CommonOptions& c, std::ostream& o, std::ostream& e) {
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
          auto ref = parsePodRef(a.positional[0]);
          if (!ref) return std::unexpected(ref.error());
          c->set_namespace_(ref->first);
          c->set_name(ref->second);
        }
        bool watch = a.has("watch");
        if (auto n = a.get("count")) {
          if (!watch) return fail("--count goes with --watch");
          auto v = parseCount(*n, "--count", /*allowZero=*/false);
          if (!v) return std::unexpected(v.error());
          rounds = *v;
        } else if (watch) {
          rounds = SIZE_MAX;
        }
        sent = req;
        return {};
      },
      [&](const admin::AdminReply& first, const CommonOptions& c, std::ostream& o, std::ostream& e) {
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
          auto next = askAgent(c.runDir, sent);
          if (!next) return failUsage(e, "conns", next.error().str());
          o << "\n";
          rc = print(*next);
        }
        return rc;
      });
}

int verifyCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  std::vector<OptionSpec> specs = {
      {"target", 0, true, "IPV4", "where probes go (default 192.0.2.1): outside the cluster, "
                                  "in no registry, routed off-node by the node"},
      {"target6", 0, true, "IPV6", "the same for IPv6 (default 2001:db8::1)"},
      {"uid", 0, true, "UID", "the uid the pod's processes run as (default 65534)"}};
  std::string podRef;
  return run(
      argv, "verify",
      "Usage: tollgatectl verify NAMESPACE/POD [--target IPV4] [--target6 IPV6] [--uid UID]\n"
      "                          [--run-dir DIR] [-o table|json|yaml]\n"
      "Runs every known way around the node from inside the pod's netns (as the pod's uid, as\n"
      "uid 1337, as root without and with NET_ADMIN/NET_RAW) and checks with the agent's\n"
      "counters and the host fence that each was refused. Exit 0: none got through; 1: at\n"
      "least one did (or a defence is missing); 2: usage, agent or pod errors.\n",
      specs, out, err,
      [&](const Args& a, admin::AdminRequest& req) -> Status {
        if (a.positional.size() != 1) return fail("exactly one NAMESPACE/POD expected");
        auto ref = parsePodRef(a.positional[0]);
        if (!ref) return std::unexpected(ref.error());
        podRef = a.positional[0];
        auto* v = req.mutable_verify();
        v->set_namespace_(ref->first);
        v->set_name(ref->second);
        v->set_target4(a.get("target").value_or(""));
        v->set_target6(a.get("target6").value_or(""));
        if (auto uid = a.get("uid")) {
          auto n = parseCount(*uid, "--uid", /*allowZero=*/false);
          if (!n || *n >= UINT32_MAX) return fail(fmt::format("--uid \"{}\": expected a uid above 0", *uid));
          v->set_pod_uid(static_cast<uint32_t>(*n));
        }
        return {};
      },
      [&](const admin::AdminReply& r, const CommonOptions& c, std::ostream& o, std::ostream& e) {
        admin::AdminReply part;
        *part.mutable_checks() = r.checks();
        int rc = emit(r, part, c, "verify", o, e,
                      [&](const admin::AdminReply& x) { return renderVerify(x, podRef); });
        if (rc != kExitOk) return rc;
        bool leak = r.checks_size() == 0 ||
                    std::any_of(r.checks().begin(), r.checks().end(),
                                [](const admin::VerifyCheck& c) { return !c.passed(); });
        return leak ? kExitDenied : kExitOk;
      },
      // Probes that nothing refuses wait a second each for the agent's records: a hang bound.
      300'000);
}

}  // namespace tollgate::cli
