#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace tollgate::kube::testing {

// A TCP relay: listens on 127.0.0.1 in the netns of the thread that constructs it and carries
// each connection to 127.0.0.1:<target> in the netns of `hostNs` (-1: the relay thread's
// own). While closed, it cuts every connection and refuses new ones.
class Relay {
 public:
  Relay(uint16_t target, int hostNs) : target_(target), hostNs_(hostNs) {
    listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    if (::bind(listen_, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 ||
        ::listen(listen_, 64) != 0 ||
        ::getsockname(listen_, reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
      ADD_FAILURE() << "relay listen: " << std::strerror(errno);
      return;
    }
    port_ = ntohs(sin.sin_port);
    thread_ = std::thread([this] { acceptLoop(); });
  }
  ~Relay() {
    stop_ = true;
    setOpen(false);
    ::shutdown(listen_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(listen_);
    // Joined without mu_: a pump takes it to deregister its sockets as it ends.
    std::vector<std::thread> pumps;
    {
      std::lock_guard lock(mu_);
      pumps.swap(pumps_);
    }
    for (auto& t : pumps) t.join();
  }
  uint16_t port() const { return port_; }
  // Connections cut at accept while closed: someone tried to reach the API server.
  uint64_t refused() const { return refused_.load(); }
  void setOpen(bool open) {
    open_ = open;
    if (open) return;
    std::lock_guard lock(mu_);
    for (int fd : live_) ::shutdown(fd, SHUT_RDWR);
  }

 private:
  void acceptLoop() {
    while (!stop_) {
      int c = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (!open_) {
        ::close(c);
        refused_++;
        continue;
      }
      int up = -1;
      if (hostNs_ < 0) {
        up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      } else {
        std::thread([&] {  // the upstream socket is created in the API server's netns
          if (::setns(hostNs_, CLONE_NEWNET) != 0) return;
          up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        }).join();
      }
      sockaddr_in sin{};
      sin.sin_family = AF_INET;
      sin.sin_port = htons(target_);
      sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (up < 0 || ::connect(up, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
        if (up >= 0) ::close(up);
        ::close(c);
        continue;
      }
      std::lock_guard lock(mu_);
      live_.push_back(c);
      live_.push_back(up);
      pumps_.emplace_back([this, c, up] { pump(c, up); });
    }
  }
  void pump(int a, int b) {
    pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    char buf[16384];
    while (!stop_ && open_) {
      if (::poll(p, 2, 200) < 0) break;
      bool done = false;
      for (int i = 0; i < 2 && !done; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = ::recv(p[i].fd, buf, sizeof buf, 0);
        if (n <= 0 || ::send(p[1 - i].fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) done = true;
      }
      if (done) break;
    }
    std::lock_guard lock(mu_);
    std::erase(live_, a);
    std::erase(live_, b);
    ::close(a);
    ::close(b);
  }

  uint16_t target_;
  int hostNs_;
  int listen_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> open_{false}, stop_{false};
  std::atomic<uint64_t> refused_{0};
  std::thread thread_;
  std::mutex mu_;
  std::vector<int> live_;
  std::vector<std::thread> pumps_;
};

}  // namespace tollgate::kube::testing
