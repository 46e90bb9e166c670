#include "agent/pod_verifier.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "common/log.h"
#include "policy/ip.h"
#include "proxy/socket_util.h"

namespace tollgate::agent {
namespace {

constexpr std::string_view kLog = "verify";

admin::VerifyCheck check(std::string vector, bool passed, std::string outcome,
                         std::string description) {
  admin::VerifyCheck c;
  c.set_vector(std::move(vector));
  c.set_passed(passed);
  c.set_outcome(std::move(outcome));
  c.set_description(std::move(description));
  return c;
}

}  // namespace

std::vector<admin::VerifyCheck> PodVerifier::run() const {
  std::vector<admin::VerifyCheck> out;
  out.push_back(checkRules());
  out.push_back(checkFence());
  out.push_back(checkRoute());
  for (const auto& p : verifyPlan(in_.plan)) out.push_back(runVector(p));
  size_t failed = 0;
  for (const auto& c : out) {
    if (!c.passed()) {
      failed++;
      log::warn(kLog, "pod {}/{}: {} {} {}: {}", in_.ns, in_.name, c.vector(), c.user(),
                c.destination(), c.outcome());
    }
  }
  log::info(kLog, "pod {}/{}: {} checks, {} failed", in_.ns, in_.name, out.size(), failed);
  return out;
}

admin::VerifyCheck PodVerifier::checkRules() const {
  const char* what = "the pod's redirect rules are installed as the agent expects";
  if (!in_.redirect) return check("rules", false, "no redirect installer (agent not started)", what);
  auto d = in_.redirect->verify(target());
  if (!d) return check("rules", false, "cannot read them: " + d.error().str(), what);
  if (!d->ok()) return check("rules", false, "DRIFT: " + d->summary(), what);
  return check("rules", true, "as installed", what);
}

admin::VerifyCheck PodVerifier::checkFence() const {
  const char* what = "the host fence is installed in the node netns as the agent expects";
  if (!in_.fence || !in_.node) return check("fence", false, "no host fence installed", what);
  auto d = in_.fence->verify(*in_.node);
  if (!d) return check("fence", false, "cannot read it: " + d.error().str(), what);
  if (!d->ok()) return check("fence", false, "DRIFT: " + d->summary(), what);
  return check("fence", true, "as installed", what);
}

admin::VerifyCheck PodVerifier::checkRoute() const {
  // What gets past a pod's rules meets the fence only if the node would forward it: a target the
  // node cannot route dies in routing, uncounted, and the fence goes unchecked.
  const std::string what = fmt::format("the node routes {} off-node, so the fence sees what "
                                       "gets past a pod's rules",
                                       in_.plan.target4);
  if (!in_.node) return check("route", false, "no node netns", what);
  int err = 0;
  auto st = in_.node->run([&]() -> Status {
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return failErrno("socket");
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(9);
    if (::inet_pton(AF_INET, in_.plan.target4.c_str(), &sin.sin_addr) != 1) {
      ::close(s);
      return fail("target " + in_.plan.target4 + " is not an IPv4 address");
    }
    // A UDP connect only looks the route up: nothing is sent.
    if (::connect(s, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) err = errno;
    ::close(s);
    return {};
  });
  if (!st) return check("route", false, st.error().str(), what);
  if (err != 0) {
    return check("route", false,
                 fmt::format("the node has no route to {} ({}): pass --target an address the "
                             "node routes off-node",
                             in_.plan.target4, std::strerror(err)),
                 what);
  }
  return check("route", true, "routed", what);
}

Counters PodVerifier::podCounters() const {
  if (!in_.redirect) return {};
  auto c = in_.redirect->counters(target());
  return c ? *c : Counters{};
}

Counters PodVerifier::fenceCounters() const {
  if (!in_.fence || !in_.node) return {};
  auto c = in_.fence->counters(*in_.node);
  return c ? *c : Counters{};
}

bool PodVerifier::proxySaw(uint64_t cursor, const Probe& p, ProbeEvidence& e) const {
  if (!in_.journal) return false;
  const std::string suffix = fmt::format(":{}", p.port);
  for (uint64_t after = cursor;;) {
    auto page = in_.journal->read(after, in_.ns, in_.name, 1000);
    for (const auto& ev : page.events) {
      if (ev.kind != "conn") continue;
      auto dst = ev.fields.find("dst");
      if (dst == ev.fields.end()) continue;
      // Without the pod's NAT rules a connection to the proxy's port has no original
      // destination: the proxy refuses it unattributed.
      bool unattributed = p.proxyMustRefuse && dst->second == "-";
      if (!dst->second.ends_with(suffix) && !unattributed) continue;
      e.proxySaw = true;
      auto f = [&](const char* k) {
        auto it = ev.fields.find(k);
        return it == ev.fields.end() ? std::string() : it->second;
      };
      e.proxyDecision = f("decision");
      e.proxyReason = f("reason");
      return true;
    }
    if (page.events.empty() || page.next == after) return false;
    after = page.next;
  }
}

admin::VerifyCheck PodVerifier::runVector(const Probe& p) const {
  admin::VerifyCheck c;
  c.set_vector(p.vector);
  c.set_user(toString(p.user));
  auto ip = policy::IpAddress::parse(p.address);
  c.set_destination(ip ? proxy::Endpoint{*ip, p.port}.str() : p.address);
  c.set_description(p.description);

  ProbeEvidence e;
  uint64_t cursor = in_.journal ? in_.journal->newest() : 0;
  e.podBefore = podCounters();
  e.fenceBefore = fenceCounters();
  ProbeOutcome o;
  auto st = in_.pod->run([&]() -> Status {
    // This helper thread alone takes the probe's identity, and exits with it.
    if (auto id = becomeUser(p.user, in_.podUid); !id) {
      o.stage = ProbeOutcome::Stage::Credentials;
      o.err = id.error().code;
      return {};
    }
    o = runProbe(p, static_cast<int>(in_.probeWait.count()));
    return {};
  });
  if (!st) {
    c.set_passed(false);
    c.set_outcome("not run: " + st.error().str());
    return c;
  }
  // The agent's records of it come on other threads (a session ending, a packet crossing the
  // veth): read them until they account for the probe, or until `settle` has passed.
  auto until = std::chrono::steady_clock::now() + in_.settle;
  ProbeVerdict v;
  for (;;) {
    e.podAfter = podCounters();
    e.fenceAfter = fenceCounters();
    if (!e.proxySaw) proxySaw(cursor, p, e);
    v = judge(p, o, e);
    if (v.passed || std::chrono::steady_clock::now() >= until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  c.set_passed(v.passed);
  c.set_outcome(std::move(v.how));
  return c;
}

}  // namespace tollgate::agent
