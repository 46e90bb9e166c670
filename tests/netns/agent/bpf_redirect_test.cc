// The eBPF mode's installer against a real cgroup and a bpffs of the test's own: links pinned
// per pod, adopted by a second installer (an agent restart or handoff) with their programs
// replaced in place, a detached link found and re-attached, what remove() leaves, and the QUIC
// telemetry's destinations.
#include "agent/bpf_redirect.h"
#include "agent/pod_cgroup.h"
#include "agent/pod_verifier.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/fd.h"
#include "proxy/access_log.h"
#include "proxy/metrics.h"
#include "proxy/quic_telemetry.h"
#include "proxy/resolver.h"
#include "tests/common/quic_initial_sender.h"
#include "tests/netns/agent/nft_fixture.h"

namespace tollgate::agent {
namespace {

namespace fs = std::filesystem;

RedirectParams labParams() {
  RedirectParams p;
  p.proxyPort = 15001;
  p.dnsProxyPort = 15053;
  p.quicPort = 15443;
  return p;
}

class BpfRedirectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (bpffs, cgroups, BPF)";
    int r = static_cast<int>(std::random_device{}() % 100000);
    bpffs_ = fmt::format("/tmp/tg-bpffs-test-{}", r);
    fs::create_directories(bpffs_);
    ASSERT_EQ(::mount("bpf", bpffs_.c_str(), "bpf", 0, nullptr), 0) << std::strerror(errno);
    mounted_ = true;
    auto mount = bpf::cgroup2Mount();
    ASSERT_TRUE(mount) << mount.error().str();
    parent_ = fmt::format("tollgate-bpf-redirect-test-{}", r);
    ASSERT_EQ(::mkdir((*mount + "/" + parent_).c_str(), 0755), 0) << std::strerror(errno);
    ASSERT_EQ(::mkdir((*mount + "/" + parent_ + "/pod").c_str(), 0755), 0);
    cgroupDir_ = *mount + "/" + parent_ + "/pod";
    auto self = Netns::current();
    ASSERT_TRUE(self) << self.error().str();
    netns_.emplace(std::move(*self));
  }

  void TearDown() override {
    if (mounted_) ::umount2(bpffs_.c_str(), MNT_DETACH);
    if (!bpffs_.empty()) ::rmdir(bpffs_.c_str());
    if (!cgroupDir_.empty()) {
      ::rmdir(cgroupDir_.c_str());
      ::rmdir(fs::path(cgroupDir_).parent_path().c_str());
    }
  }

  PodTarget target() const { return PodTarget(*netns_, "default_client", "/" + parent_ + "/pod"); }
  std::string pinDir() const { return bpffs_ + "/tollgate"; }

  // Program ids the kernel runs on the pod's cgroup for one attach type.
  std::set<uint32_t> attached(bpf_attach_type type) const {
    Fd cg(::open(cgroupDir_.c_str(), O_RDONLY | O_DIRECTORY));
    uint32_t ids[16] = {};
    uint32_t n = 16;
    uint32_t flags = 0;
    if (bpf_prog_query(cg.get(), type, 0, &flags, ids, &n) != 0) return {};
    return {ids, ids + n};
  }

  // "<hook> link <id>" pairs of a listing, the links' identities.
  static std::set<std::string> links(const std::string& listing) {
    std::set<std::string> out;
    std::regex re(R"((\S+) link (\d+))");
    for (std::sregex_iterator it(listing.begin(), listing.end(), re), end; it != end; ++it) {
      out.insert((*it)[1].str() + ":" + (*it)[2].str());
    }
    return out;
  }

  std::string bpffs_, parent_, cgroupDir_;
  bool mounted_ = false;
  std::optional<Netns> netns_;
};

TEST_F(BpfRedirectTest, RefusesAPinDirOutsideBpffs) {
  auto r = BpfRedirect::create(labParams(), "/tmp/not-bpffs-" + std::to_string(::getpid()));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("not on a bpf filesystem"), std::string::npos) << r.error().str();
  fs::remove_all("/tmp/not-bpffs-" + std::to_string(::getpid()));
}

TEST_F(BpfRedirectTest, InstallsPinnedLinksThatOutliveTheInstaller) {
  std::string listing;
  {
    auto r = BpfRedirect::create(labParams(), pinDir());
    ASSERT_TRUE(r) << r.error().str();
    auto& redirect = **r;
    EXPECT_STREQ(redirect.mode(), "ebpf");
    auto before = redirect.verify(target());
    ASSERT_TRUE(before) << before.error().str();
    EXPECT_FALSE(before->ok()) << "nothing installed yet must be drift";
    ASSERT_TRUE(redirect.install(target()));
    auto d = redirect.verify(target());
    ASSERT_TRUE(d) << d.error().str();
    EXPECT_TRUE(d->ok()) << d->summary();
    auto l = redirect.listing(target());
    ASSERT_TRUE(l && *l);
    listing = **l;
    auto c = redirect.counters(target());
    ASSERT_TRUE(c) << c.error().str();
    EXPECT_EQ(c->count("drop_udp"), 1u);
    EXPECT_EQ(c->count("drop_ipv6"), 1u);
  }
  // The installer (the agent process's programs and maps) is gone; the pinned links are not.
  EXPECT_EQ(attached(BPF_CGROUP_INET4_CONNECT).size(), 1u);
  EXPECT_EQ(attached(BPF_CGROUP_INET_EGRESS).size(), 1u);
  EXPECT_EQ(attached(BPF_CGROUP_UDP4_SENDMSG).size(), 1u);
  EXPECT_TRUE(fs::exists(pinDir() + "/pods/default_client"));
  EXPECT_EQ(links(listing).size(), 11u) << listing;
}

TEST_F(BpfRedirectTest, ANewAgentAdoptsTheLinksAndReplacesTheirProgramsInPlace) {
  std::string first;
  std::set<uint32_t> oldProgs;
  {
    auto r = BpfRedirect::create(labParams(), pinDir());
    ASSERT_TRUE(r) << r.error().str();
    ASSERT_TRUE((*r)->install(target()));
    first = **(*r)->listing(target());
    oldProgs = attached(BPF_CGROUP_INET4_CONNECT);
  }
  auto r = BpfRedirect::create(labParams(), pinDir());
  ASSERT_TRUE(r) << r.error().str();
  auto& next = **r;
  // Its own programs are not the ones attached: drift, by program.
  auto d = next.verify(target());
  ASSERT_TRUE(d) << d.error().str();
  ASSERT_EQ(d->differences.size(), 11u) << d->summary();
  EXPECT_NE(d->differences[0].find("runs program"), std::string::npos) << d->summary();
  ASSERT_TRUE(next.install(target()));
  auto again = next.verify(target());
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->ok()) << again->summary();
  // The same links (bpf_link_update: never a moment without a program), new programs.
  EXPECT_EQ(links(**next.listing(target())), links(first));
  auto progs = attached(BPF_CGROUP_INET4_CONNECT);
  ASSERT_EQ(progs.size(), 1u);
  EXPECT_NE(progs, oldProgs);
}

TEST_F(BpfRedirectTest, ADetachedLinkIsDriftAndInstallReattachesIt) {
  auto r = BpfRedirect::create(labParams(), pinDir());
  ASSERT_TRUE(r) << r.error().str();
  auto& redirect = **r;
  ASSERT_TRUE(redirect.install(target()));
  // What `bpftool link detach` does to the connect4 link.
  Fd link(bpf_obj_get((pinDir() + "/pods/default_client/cgroup_connect4").c_str()));
  ASSERT_TRUE(link) << std::strerror(errno);
  ASSERT_EQ(bpf_link_detach(link.get()), 0) << std::strerror(errno);
  EXPECT_TRUE(attached(BPF_CGROUP_INET4_CONNECT).empty());
  auto d = redirect.verify(target());
  ASSERT_TRUE(d) << d.error().str();
  ASSERT_EQ(d->differences.size(), 1u) << d->summary();
  EXPECT_NE(d->differences[0].find("cgroup_connect4: link"), std::string::npos) << d->summary();
  EXPECT_NE(d->differences[0].find("detached"), std::string::npos) << d->summary();
  ASSERT_TRUE(redirect.install(target()));
  auto again = redirect.verify(target());
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->ok()) << again->summary();
  EXPECT_EQ(attached(BPF_CGROUP_INET4_CONNECT).size(), 1u);
}

TEST_F(BpfRedirectTest, RemoveDetachesEverything) {
  auto r = BpfRedirect::create(labParams(), pinDir());
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_TRUE((*r)->install(target()));
  ASSERT_TRUE((*r)->remove(target()));
  EXPECT_FALSE(fs::exists(pinDir() + "/pods/default_client"));
  EXPECT_TRUE(attached(BPF_CGROUP_INET4_CONNECT).empty());
  EXPECT_TRUE(attached(BPF_CGROUP_INET_EGRESS).empty());
  auto l = (*r)->listing(target());
  ASSERT_TRUE(l);
  EXPECT_FALSE(*l);
  EXPECT_TRUE((*r)->remove(target())) << "removing twice is not an error";
}

TEST_F(BpfRedirectTest, RefusesAPodWithoutACgroupOrWithTheAgentsOwn) {
  auto r = BpfRedirect::create(labParams(), pinDir());
  ASSERT_TRUE(r) << r.error().str();
  auto none = (*r)->install(PodTarget(*netns_, "default_x", ""));
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().str().find("no cgroupPath"), std::string::npos) << none.error().str();
  // An agent in the cgroup above the pod's: a child process moves there, loads (the agent's
  // cgroup is read then) and asks for both.
  const std::string parentDir = fs::path(cgroupDir_).parent_path().string();
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int f = ::open((parentDir + "/cgroup.procs").c_str(), O_WRONLY);
    if (f < 0 || ::write(f, "0", 1) != 1) ::_exit(10);
    ::close(f);
    auto moved = BpfRedirect::create(labParams(), pinDir());
    if (!moved) ::_exit(13);
    auto own = (*moved)->install(PodTarget(*netns_, "default_x", "/" + parent_));
    if (own || own.error().str().find("agent's own cgroup") == std::string::npos) ::_exit(11);
    ::_exit((*moved)->install(target()) ? 0 : 12);  // the pod's, below the agent's: fine
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: could not join the cgroup, 11: the agent's own cgroup "
                                       "was accepted, 12: the pod's was refused, 13: no load";
}

// tollgatectl verify in ebpf mode: its probes must run where the programs are. A UDP datagram
// from a probe in the pod's cgroup is refused by them (EPERM, drop_udp); the same probe from an
// agent thread, which is not in that cgroup, never meets them (here: no route in the netns). The
// leaf the probe ran in is gone afterwards.
TEST_F(BpfRedirectTest, VerifyProbesRunInThePodsCgroup) {
  auto r = BpfRedirect::create(labParams(), pinDir());
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_TRUE((*r)->install(target()));
  auto scratch = nft_testing::ScratchNetns::create("verify");
  ASSERT_TRUE(scratch) << scratch.error().str();
  auto podNetns = Netns::open("/run/netns/" + scratch->name());
  ASSERT_TRUE(podNetns) << podNetns.error().str();
  auto cg = (*r)->probeCgroup(target());
  ASSERT_TRUE(cg) << cg.error().str();
  EXPECT_EQ(*cg, cgroupDir_);

  auto udp = [&](std::string probeCgroup) {
    PodVerifier::Inputs in;
    in.ns = "default";
    in.name = "client";
    in.pod = std::make_shared<Netns>(std::move(*Netns::open("/run/netns/" + scratch->name())));
    in.podKey = "default_client";
    in.podCgroup = "/" + parent_ + "/pod";
    in.redirect = *r;
    in.probeCgroup = std::move(probeCgroup);
    in.settle = std::chrono::milliseconds(200);
    for (const auto& c : PodVerifier(std::move(in)).run()) {
      if (c.vector() == "udp" && c.user() == "pod-uid") return c;
    }
    return admin::VerifyCheck();
  };
  auto inCgroup = udp(*cg);
  EXPECT_TRUE(inCgroup.passed()) << inCgroup.outcome();
  EXPECT_EQ(inCgroup.outcome().rfind("dropped by the pod's rules (drop_udp +1)", 0), 0u)
      << inCgroup.outcome();
  EXPECT_FALSE(fs::exists(cgroupDir_ + "/tollgate-verify"));
  auto onThread = udp("");
  EXPECT_EQ(onThread.outcome().find("drop_udp"), std::string::npos) << onThread.outcome();
}

// The QUIC telemetry in ebpf mode as the agent wires it: a QuicTelemetry in a pod netns whose
// ProxyInputs::quicOriginalDst asks the installer, and a process in the pod's cgroup sending a
// real QUIC Initial to udp/443 as clients do, connect() then send(), and an unconnected sendto(),
// again every 100 ms until the event is there (a client resends its Initial; the telemetry looks
// a destination up at most every 50 ms per pod). Each event names where the pod sent it.
TEST_F(BpfRedirectTest, QuicEventsNameTheDestinationThePodSentTo) {
  auto r = BpfRedirect::create(labParams(), pinDir());
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_TRUE((*r)->install(target()));
  auto scratch = nft_testing::ScratchNetns::create("quic");
  ASSERT_TRUE(scratch) << scratch.error().str();
  const Netns& podNetns = scratch->netns();

  proxy::asio::io_context io;
  auto work = proxy::asio::make_work_guard(io);
  proxy::SnapshotHolder snapshots;
  proxy::Metrics metrics;
  proxy::AccessLog accessLog;
  proxy::Resolver resolver(io);
  proxy::ProxyInputs inputs{io, proxy::ProxyOptions{}, snapshots, metrics, accessLog, resolver};
  inputs.quicOriginalDst = [&r](int fd, const proxy::Endpoint& from) {
    return (*r)->quicOriginalDst(fd, from);
  };
  proxy::PodInfo pod;
  pod.ns = "default";
  pod.name = "client";
  auto q = proxy::QuicTelemetry::create(
      inputs, pod, [&](const std::function<Result<int>()>& fn) { return podNetns.runFd(fn); });
  ASSERT_TRUE(q) << q.error().str();
  (*q)->start();
  std::thread ioThread([&io] { io.run(); });

  const std::string procs = cgroupDir_ + "/cgroup.procs";
  for (auto [how, addr] :
       {std::pair{"connect", "198.51.100.7"}, std::pair{"sendto", "192.0.2.1"}}) {
    const bool connectFirst = std::string(how) == "connect";
    const std::string sni = fmt::format("{}.quic.test", how);
    const auto initial = proxy::quic_testing::clientInitial(sni.c_str());
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(443);
    ASSERT_EQ(::inet_pton(AF_INET, addr, &to.sin_addr), 1);
    int stop[2];
    ASSERT_EQ(::pipe2(stop, O_CLOEXEC), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // system calls only: the parent has threads
      ::close(stop[1]);
      int f = ::open(procs.c_str(), O_WRONLY);
      if (f < 0 || ::write(f, "0", 1) != 1) ::_exit(10);
      if (::setns(podNetns.fd(), CLONE_NEWNET) != 0) ::_exit(11);
      int s = ::socket(AF_INET, SOCK_DGRAM, 0);
      const auto* sa = reinterpret_cast<const sockaddr*>(&to);
      if (connectFirst && ::connect(s, sa, sizeof to) != 0) ::_exit(12);
      for (int i = 0; i < 100; ++i) {
        ssize_t n = connectFirst ? ::send(s, initial.data(), initial.size(), 0)
                                 : ::sendto(s, initial.data(), initial.size(), 0, sa, sizeof to);
        if (n != static_cast<ssize_t>(initial.size())) ::_exit(13);
        pollfd p{stop[0], POLLIN, 0};
        if (::poll(&p, 1, 100) != 0) ::_exit(0);  // told to stop
      }
      ::_exit(14);
    }
    ::close(stop[0]);
    const std::string want =
        fmt::format("pod default/client tried QUIC to {}:443 sni={}", addr, sni);
    for (int i = 0; i < 500 && (*q)->lastEvent() != want; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::close(stop[1]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << how << ": " << status
        << " (10: join the cgroup, 11: enter the netns, 12: connect, 13: send, 14: never stopped)";
    EXPECT_EQ((*q)->lastEvent(), want);
  }
  (*q)->close();
  work.reset();
  ioThread.join();
}

}  // namespace
}  // namespace tollgate::agent
