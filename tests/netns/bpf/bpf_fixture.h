#pragma once

// What the BPF netns tests share: a "pod" netns with a veth to a "peer" netns, a cgroup this test
// creates under the cgroup2 mount it finds (never the root cgroup), and a way to run code in a
// netns. Names carry a random number so a crashed run never blocks the next one.

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "bpf/skb_backstop.h"

namespace tollgate::bpf::testing {

inline int sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

inline tg_config labConfig() {
  tg_config cfg{};
  cfg.proxy_port = 15001;
  cfg.dns_port = 15053;
  cfg.quic_port = 15443;
  return cfg;
}

class BpfNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (BPF, netns, cgroups)";
    r_ = static_cast<int>(std::random_device{}() % 250) + 1;
    ns_ = fmt::format("tgbpf-{}-pod", r_);
    peer_ = fmt::format("tgbpf-{}-peer", r_);
    for (const auto& n : {ns_, peer_}) {
      sh("ip netns del " + n);
      ASSERT_EQ(sh("ip netns add " + n), 0);
    }
    for (const std::string& cmd : {
             fmt::format("ip -n {} link add eth0 type veth peer name eth0 netns {}", ns_, peer_),
             fmt::format("ip -n {} addr add 10.253.{}.2/24 dev eth0", ns_, r_),
             fmt::format("ip -n {} addr add 10.253.{}.1/24 dev eth0", peer_, r_),
             fmt::format("ip -n {} link set eth0 up", ns_),
             fmt::format("ip -n {} link set lo up", ns_),
             fmt::format("ip -n {} link set eth0 up", peer_),
         }) {
      ASSERT_EQ(sh(cmd), 0) << cmd;
    }
  }

  void TearDown() override {
    if (!cgroup_.empty()) ::rmdir(cgroup_.c_str());
    if (!ns_.empty()) sh("ip netns del " + ns_);
    if (!peer_.empty()) sh("ip netns del " + peer_);
  }

  // Creates this test's cgroup; returns an open fd on it (the caller closes it) or -1.
  int makeCgroup() {
    auto mount = cgroup2Mount();
    EXPECT_TRUE(mount) << mount.error().str();
    if (!mount) return -1;
    cgroup_ = fmt::format("{}/tollgate-bpf-test-{}", *mount, r_);
    ::rmdir(cgroup_.c_str());
    EXPECT_EQ(::mkdir(cgroup_.c_str(), 0755), 0) << cgroup_ << ": " << std::strerror(errno);
    return ::open(cgroup_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }

  // Runs fn on a thread inside `ns`.
  template <typename F>
  void in(const std::string& ns, F fn) {
    std::thread t([&] {
      int fd = ::open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(::setns(fd, CLONE_NEWNET), 0);
      ::close(fd);
      fn();
    });
    t.join();
  }

  // In a forked child: joins this test's cgroup and the pod netns; false when it could not.
  bool enterPod() const {
    int f = ::open((cgroup_ + "/cgroup.procs").c_str(), O_WRONLY);
    if (f < 0 || ::write(f, "0", 1) != 1) return false;
    ::close(f);
    int n = ::open(("/var/run/netns/" + ns_).c_str(), O_RDONLY);
    return n >= 0 && ::setns(n, CLONE_NEWNET) == 0;
  }

  int r_ = 0;
  std::string ns_, peer_, cgroup_;
};

}  // namespace tollgate::bpf::testing
