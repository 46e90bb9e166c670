#include "agent/pod_verifier.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <type_traits>

#include "common/fd.h"
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

Result<ProbeOutcome> PodVerifier::probe(const Probe& p) const {
  if (!in_.probeCgroup.empty()) return probeInCgroup(p);
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
  if (!st) return std::unexpected(st.error());
  return o;
}

namespace {

// What the probe child reports through its pipe: how far it got, and the outcome.
struct ChildReport {
  enum Step : int32_t { Cgroup = 1, Netns = 2, Probed = 3 };
  int32_t step = 0;
  int32_t err = 0;
  ProbeOutcome outcome;
};
static_assert(std::is_trivially_copyable_v<ChildReport>);

}  // namespace

Result<ProbeOutcome> PodVerifier::probeInCgroup(const Probe& p) const {
  // A leaf of the pod's cgroup: the pod's programs apply to it (effective programs are
  // inherited), its counters count for the pod (they are kept by the pod's cgroup, found among
  // the ancestors), and a leaf takes processes even where the pod's cgroup has controllers
  // enabled for its containers (cgroup v2 keeps processes out of such inner nodes).
  const std::string leaf = in_.probeCgroup + "/tollgate-verify";
  if (::mkdir(leaf.c_str(), 0700) != 0 && errno != EEXIST) {
    return failErrno("probe cgroup " + leaf + ": mkdir");
  }
  Fd procs(::open((leaf + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  if (!procs) return failErrno("probe cgroup " + leaf + ": open cgroup.procs");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return failErrno("probe: pipe2");
  Fd rd(fds[0]), wr(fds[1]);
  const int waitMs = static_cast<int>(in_.probeWait.count());
  const int netnsFd = in_.pod->fd();
  pid_t pid = ::fork();
  if (pid < 0) return failErrno("probe: fork");
  if (pid == 0) {
    // The child: only system calls and the probe itself, then _exit (nothing of the agent's
    // state is unwound or flushed here).
    ChildReport r;
    auto report = [&](int32_t step, int32_t err) {
      r.step = step;
      r.err = err;
      (void)!::write(wr.get(), &r, sizeof r);
      ::_exit(0);
    };
    if (::write(procs.get(), "0", 1) != 1) report(ChildReport::Cgroup, errno);
    if (::setns(netnsFd, CLONE_NEWNET) != 0) report(ChildReport::Netns, errno);
    if (auto id = becomeUser(p.user, in_.podUid); !id) {
      r.outcome.stage = ProbeOutcome::Stage::Credentials;
      r.outcome.err = id.error().code;
    } else {
      r.outcome = runProbe(p, waitMs);
    }
    report(ChildReport::Probed, 0);
  }
  wr.reset();
  ChildReport r;
  size_t got = 0;
  // The probe waits at most waitMs; this bound only catches a child that hangs.
  pollfd pfd{rd.get(), POLLIN, 0};
  const int bound = waitMs * 4 + 10000;
  while (got < sizeof r) {
    int n = ::poll(&pfd, 1, bound);
    if (n <= 0) break;
    ssize_t k = ::read(rd.get(), reinterpret_cast<char*>(&r) + got, sizeof r - got);
    if (k <= 0) break;
    got += static_cast<size_t>(k);
  }
  if (got < sizeof r) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  // Empty again once the child is reaped; a later verify makes it anew.
  if (::rmdir(leaf.c_str()) != 0 && errno != ENOENT) {
    log::warn(kLog, "probe cgroup {}: rmdir: {}", leaf, std::strerror(errno));
  }
  if (got < sizeof r) {
    return fail(fmt::format("probe process in {} gave no report (status {:#x})", leaf, status));
  }
  if (r.step == ChildReport::Cgroup) {
    return fail(fmt::format("probe process: cannot join cgroup {}: {}", leaf, std::strerror(r.err)),
                r.err);
  }
  if (r.step == ChildReport::Netns) {
    return fail(fmt::format("probe process: cannot enter the pod's netns: {}",
                            std::strerror(r.err)),
                r.err);
  }
  return r.outcome;
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
  auto probed = probe(p);
  if (!probed) {
    c.set_passed(false);
    c.set_outcome("not run: " + probed.error().str());
    return c;
  }
  const ProbeOutcome& o = *probed;
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
