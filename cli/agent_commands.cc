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
        Print print) {
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
  auto reply = askAgent(c->runDir, req);
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

}  // namespace tollgate::cli
