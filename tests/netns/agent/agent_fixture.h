#pragma once

// The set-up every agent test shares: a throwaway "node" netns where the agent's threads and
// sockets live, one pod netns, a config and run directory under /tmp, and enrollment requests
// sent over the agent's real cni.sock (netns fd by SCM_RIGHTS, as tollgate-cni sends them).
// Names carry a random number so a crashed run never blocks the next one.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "agent/agent.h"
#include "agent/netns.h"
#include "agent/options.h"
#include "common/framing.h"
#include "proto/enroll.pb.h"

namespace tollgate::agent::testing {

inline int sh(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str());
}

class AgentNetnsTest : public ::testing::Test {
 protected:
  // `tag` names this suite's netns (tg<tag>-<n>-node, tg<tag>-<n>-pod), its /tmp directory and
  // the pod-interface pattern of its host fence.
  explicit AgentNetnsTest(std::string tag) : tag_(std::move(tag)) {}

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    std::random_device rd;
    r_ = static_cast<int>(rd() % 250) + 1;
    node_ = fmt::format("tg{}-{}-node", tag_, r_);
    pod_ = fmt::format("tg{}-{}-pod", tag_, r_);
    for (const auto& n : {node_, pod_}) {
      sh("ip netns del " + n);
      ASSERT_EQ(sh("ip netns add " + n), 0) << n;
    }
    ASSERT_EQ(sh("ip -n " + node_ + " link set lo up"), 0);
    dir_ = std::filesystem::path(fmt::format("/tmp/tg{}-{}-agent", tag_, r_));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "config");
    auto n = Netns::open(netnsPath(node_));
    ASSERT_TRUE(n) << n.error().str();
    nodeNs_.emplace(std::move(*n));
  }

  void TearDown() override {
    agent_.reset();
    if (node_.empty()) return;
    // Bind mounts of pod netns left by a test that did not DEL.
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_ / "run" / "netns", ec)) {
      sh("umount -l " + e.path().string());
    }
    std::filesystem::remove_all(dir_, ec);
    sh("ip netns del " + pod_);
    sh("ip netns del " + node_);
  }

  static std::string netnsPath(const std::string& name) { return "/var/run/netns/" + name; }

  void writeConfig(const std::string& text, const std::string& file = "mesh.yaml") {
    std::ofstream(dir_ / "config" / file, std::ios::trunc) << text;
  }

  // Options for an agent on this suite's directories; tests adjust them before startAgent().
  AgentOptions agentOptions() const {
    AgentOptions o;
    o.configDir = (dir_ / "config").string();
    o.runDir = (dir_ / "run").string();
    o.podInterfaces = {fmt::format("tg{}pod*", tag_)};
    o.metricsPort = 0;
    o.healthPort = 0;
    return o;
  }

  // Runs fn on a thread inside the node netns (where an agent's sockets must be created).
  template <typename F>
  void inNode(F fn) {
    std::thread t([&] {
      if (::setns(nodeNs_->fd(), CLONE_NEWNET) != 0) {
        ADD_FAILURE() << "setns into " << node_ << ": " << std::strerror(errno);
        return;
      }
      fn();
    });
    t.join();
  }

  // Creates and starts agent_ inside the node netns.
  Status startAgent(const AgentOptions& o) {
    agent_ = std::make_unique<Agent>(o);
    Status st = fail("agent start did not run");
    inNode([&] { st = agent_->start(); });
    return st;
  }

  // An enrollment request for pod <ns>/<name> living in this suite's pod netns.
  enroll::EnrollRequest request(enroll::EnrollRequest::Op op, const std::string& ns = "default",
                                const std::string& name = "client") const {
    enroll::EnrollRequest req;
    req.set_op(op);
    req.mutable_pod()->set_namespace_(ns);
    req.mutable_pod()->set_name(name);
    req.set_netns_path(netnsPath(pod_));
    return req;
  }

  // Sends `req` over <run-dir>/cni.sock (with the pod netns fd when `withFd`) and returns the
  // reply; transport failures come back as a reply with ok=false and the reason in msg.
  enroll::EnrollReply send(enroll::EnrollRequest req, bool withFd) {
    int fd = -1;
    if (withFd) {
      fd = ::open(req.netns_path().c_str(), O_RDONLY | O_CLOEXEC);
      req.set_netns_fd_attached(true);
    }
    enroll::EnrollReply reply;
    auto sock = connectUnix((dir_ / "run" / "cni.sock").string(), 10000);
    if (!sock) {
      if (fd >= 0) ::close(fd);
      reply.set_msg(sock.error().str());
      return reply;
    }
    std::string payload;
    req.SerializeToString(&payload);
    auto st = sendFrame(*sock, payload, fd);
    if (fd >= 0) ::close(fd);
    auto frame = recvFrame(*sock);
    ::close(*sock);
    if (!st || !frame || !reply.ParseFromString(frame->payload)) reply.set_msg("transport error");
    return reply;
  }

  // A TCP socket created inside `ns` (5 s receive timeout), connected to ip:port. On failure
  // the error says why (errno text; "refused" for ECONNREFUSED).
  static Result<int> connectIn(const Netns& ns, const char* ip, uint16_t port) {
    auto fd = ns.runFd([]() -> Result<int> {
      int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (s < 0) return failErrno("socket");
      return s;
    });
    if (!fd) return fd;
    timeval tv{5, 0};
    ::setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    ::inet_pton(AF_INET, ip, &sin.sin_addr);
    if (::connect(*fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
      int err = errno;
      ::close(*fd);
      return fail(err == ECONNREFUSED ? "refused" : std::strerror(err));
    }
    return *fd;
  }

  // Sends `request` (then FIN when `halfClose`) and returns everything read until EOF, a reset
  // or the timeout; closes fd.
  static std::string exchange(int fd, const std::string& request, bool halfClose) {
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    if (halfClose) ::shutdown(fd, SHUT_WR);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return out;
  }

  bool podTableExists() const {
    return sh("ip netns exec " + pod_ + " nft list table inet tollgate") == 0;
  }

  std::string tag_;
  int r_ = 0;
  std::string node_, pod_;
  std::filesystem::path dir_;
  std::optional<Netns> nodeNs_;
  std::unique_ptr<Agent> agent_;
};

}  // namespace tollgate::agent::testing
