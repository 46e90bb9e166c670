#pragma once

#include <utility>  // before <boost/asio/awaitable.hpp> with Boost 1.74

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "kube/api_client.h"
#include "kube/backoff.h"
#include "kube/resource.h"
#include "kube/watch_event.h"

namespace tollgate::kube {

struct ReflectorOptions {
  ResourceType type;
  unsigned pageLimit = 500;                      // list page size (limit / continue)
  std::chrono::seconds watchTimeout{300};        // timeoutSeconds of each watch request
  std::chrono::seconds requestTimeout{30};       // connect + one list page
  Backoff::Duration backoffInitial{std::chrono::milliseconds(250)};
  // A node agent must see changes soon after an outage ends: with 30 s (client-go's) it came
  // back up to 37 s after the API server did in the lab (scenario 53). Seven reflectors per
  // node at one attempt per 4-8 s each is still little load on an API server that is down.
  Backoff::Duration backoffMax{std::chrono::seconds(8)};
};

struct ReflectorStatus {
  bool synced = false;     // a complete list is in (stays true through an outage)
  bool connected = false;  // the last request or stream got an answer from the server
  uint64_t lists = 0;      // complete lists; every one after the first is a relist
  uint64_t relists = 0;
  uint64_t gone = 0;       // 410 Gone answers (expired resourceVersion or continue token)
  uint64_t errors = 0;     // failed requests and broken streams
  uint64_t events = 0;     // watch events applied
  size_t objects = 0;
  std::chrono::system_clock::time_point lastSync{};  // last complete list
  std::string resourceVersion;
  std::string lastError;
};

// Keeps every object of one resource type (all namespaces, with the type's selectors) in a store
// keyed "ns/name", like client-go's Reflector: list (paged) then watch from the list's
// resourceVersion with bookmarks; 410 Gone relists; any other failure reconnects after an
// exponential backoff with jitter, keeping the store as it was. onChange gets the whole store
// after the first complete list and after every change, on the reflector's strand.
class Reflector : public std::enable_shared_from_this<Reflector> {
 public:
  using Store = std::map<std::string, nlohmann::json>;
  using OnChange = std::function<void(const Store&)>;

  static std::shared_ptr<Reflector> create(asio::any_io_executor ex,
                                           std::shared_ptr<ApiClient> client,
                                           ReflectorOptions options, OnChange onChange);
  void start();
  // Ends the loop and the open request; thread-safe; onChange is not called once it returned
  // on the strand.
  void stop();
  ReflectorStatus status() const;
  const ReflectorOptions& options() const { return options_; }

  // Ends the current watch and watches again from `resourceVersion` (tests force a 410 with an
  // expired one).
  void rewatchFrom(std::string resourceVersion);

 private:
  Reflector(asio::any_io_executor ex, std::shared_ptr<ApiClient> client, ReflectorOptions options,
            OnChange onChange);
  asio::awaitable<void> run();
  asio::awaitable<Status> list();
  enum class WatchEnd { Expired, Gone, Failed, Stopped };
  asio::awaitable<WatchEnd> watch();
  asio::awaitable<void> sleep(Backoff::Duration d);
  void failed(const Error& e);
  nlohmann::json normalize(nlohmann::json obj) const;
  std::string query(bool watching) const;

  asio::strand<asio::any_io_executor> strand_;
  std::shared_ptr<ApiClient> client_;
  ReflectorOptions options_;
  OnChange onChange_;
  Backoff backoff_;
  asio::steady_timer timer_;
  std::shared_ptr<ApiClient::Connection> conn_;  // the open request, for stop()
  bool stopped_ = false;
  std::string rewatchFrom_;
  Store store_;
  std::string rv_;

  mutable std::mutex mu_;
  ReflectorStatus status_;
};

}  // namespace tollgate::kube
