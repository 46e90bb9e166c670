#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "proxy/asio.h"

namespace tollgate::gateway {

// A deadline on one socket operation: when it passes, the socket is shut down both ways and its
// pending operations are cancelled. Cancelling alone is not enough for a composed operation (a
// TLS handshake, read_until, a multi-part write): when one of its inner reads has completed and
// its handler is queued, cancel finds nothing pending and the operation starts its next read with
// no deadline left, so a peer trickling a byte at a time kept the socket. After the shutdown
// every further read ends at once. A fired deadline ends the socket's use. The state is shared with the timer handler, which may still run after the guarded
// operation finished and the caller moved on (done makes it a no-op then).
struct DeadlineState {
  bool done = false;
  bool fired = false;
};

inline std::shared_ptr<DeadlineState> armDeadline(boost::asio::steady_timer& timer,
                                                  boost::asio::ip::tcp::socket& sock,
                                                  std::chrono::milliseconds d) {
  auto st = std::make_shared<DeadlineState>();
  timer.expires_after(d);
  timer.async_wait([st, &sock](boost::system::error_code ec) {
    if (ec || st->done) return;
    st->fired = true;
    boost::system::error_code ignored;
    sock.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
    sock.cancel(ignored);
  });
  return st;
}

inline void disarm(boost::asio::steady_timer& timer, DeadlineState& st) {
  st.done = true;
  timer.cancel();
}

}  // namespace tollgate::gateway

namespace tollgate::gateway {

// Ends a relay that moved no bytes in either direction for `idle`: onIdle runs once, on the
// timer's executor. touch() on every read; stop() when the relay ends.
class IdleWatch : public std::enable_shared_from_this<IdleWatch> {
 public:
  using Clock = std::chrono::steady_clock;

  IdleWatch(const boost::asio::any_io_executor& ex, std::chrono::milliseconds idle,
            std::function<void()> onIdle)
      : timer_(ex), idle_(idle), onIdle_(std::move(onIdle)), last_(Clock::now()) {}

  void start() { arm(); }
  void touch() { last_ = Clock::now(); }
  void stop() {
    stopped_ = true;
    timer_.cancel();
  }
  bool fired() const { return fired_; }

 private:
  void arm() {
    timer_.expires_at(last_ + idle_);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->stopped_) return;
      if (Clock::now() - self->last_ < self->idle_) {
        self->arm();  // activity since arming: wait for the rest of the new period
        return;
      }
      self->stopped_ = true;
      self->fired_ = true;
      self->onIdle_();
    });
  }

  boost::asio::steady_timer timer_;
  std::chrono::milliseconds idle_;
  std::function<void()> onIdle_;
  Clock::time_point last_;
  bool stopped_ = false;
  bool fired_ = false;
};

}  // namespace tollgate::gateway
