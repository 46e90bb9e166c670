#include "kube/reflector.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/verb.hpp>

#include <fmt/format.h>

#include "common/log.h"

namespace tollgate::kube {

namespace http = boost::beast::http;

std::shared_ptr<Reflector> Reflector::create(asio::any_io_executor ex,
                                             std::shared_ptr<ApiClient> client,
                                             ReflectorOptions options, OnChange onChange) {
  return std::shared_ptr<Reflector>(
      new Reflector(std::move(ex), std::move(client), std::move(options), std::move(onChange)));
}

Reflector::Reflector(asio::any_io_executor ex, std::shared_ptr<ApiClient> client,
                     ReflectorOptions options, OnChange onChange)
    : strand_(asio::make_strand(ex)),
      client_(std::move(client)),
      options_(std::move(options)),
      onChange_(std::move(onChange)),
      backoff_(options_.backoffInitial, options_.backoffMax),
      timer_(strand_) {}

void Reflector::start() {
  asio::co_spawn(strand_, [self = shared_from_this()] { return self->run(); }, asio::detached);
}

void Reflector::stop() {
  asio::post(strand_, [self = shared_from_this()] {
    self->stopped_ = true;
    self->timer_.cancel();
    if (self->conn_) self->conn_->cancel();
  });
}

void Reflector::rewatchFrom(std::string resourceVersion) {
  asio::post(strand_, [self = shared_from_this(), rv = std::move(resourceVersion)] {
    self->rewatchFrom_ = rv;
    if (self->conn_) self->conn_->cancel();
  });
}

ReflectorStatus Reflector::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

void Reflector::failed(const Error& e) {
  std::lock_guard lock(mu_);
  status_.errors++;
  status_.connected = false;
  status_.lastError = e.message;
}

asio::awaitable<void> Reflector::sleep(Backoff::Duration d) {
  boost::system::error_code ec;
  timer_.expires_after(d);
  co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

nlohmann::json Reflector::normalize(nlohmann::json obj) const {
  // List items carry no kind/apiVersion; the loader needs both.
  if (!obj.contains("apiVersion")) obj["apiVersion"] = options_.type.apiVersion();
  if (!obj.contains("kind")) obj["kind"] = options_.type.kind;
  if (auto md = obj.find("metadata"); md != obj.end() && md->is_object()) {
    md->erase("managedFields");  // large, and read by no one here
    if (auto a = md->find("annotations"); a != md->end() && a->is_object()) {
      a->erase("kubectl.kubernetes.io/last-applied-configuration");
    }
  }
  return obj;
}

std::string Reflector::query(bool watching) const {
  std::string q;
  if (!options_.type.labelSelector.empty()) q += "&labelSelector=" + urlEncode(options_.type.labelSelector);
  if (!options_.type.fieldSelector.empty()) q += "&fieldSelector=" + urlEncode(options_.type.fieldSelector);
  return q;
}

asio::awaitable<void> Reflector::run() {
  const std::string name = options_.type.name();
  bool needList = true;
  while (!stopped_) {
    if (needList) {
      auto s = co_await list();
      if (stopped_) break;
      if (!s) {
        failed(s.error());
        auto d = backoff_.next();
        log::warn("kube", "{}: list failed ({}); retrying in {} ms", name, s.error().message, d.count());
        co_await sleep(d);
        continue;
      }
      needList = false;
    }
    WatchEnd end = co_await watch();
    if (stopped_ || end == WatchEnd::Stopped) break;
    switch (end) {
      case WatchEnd::Expired:  // the server's timeoutSeconds: watch on from where we are
        break;
      case WatchEnd::Gone:
        log::info("kube", "{}: resourceVersion {} is gone (410): relisting", name, rv_);
        needList = true;
        break;
      case WatchEnd::Failed: {
        auto d = backoff_.next();
        log::warn("kube", "{}: watch failed ({}); reconnecting in {} ms", name, status().lastError,
                  d.count());
        co_await sleep(d);
        break;
      }
      case WatchEnd::Stopped:
        break;
    }
  }
  conn_.reset();
}

asio::awaitable<Status> Reflector::list() {
  const auto& t = options_.type;
  Store fresh;
  std::string cont, rv;
  for (;;) {
    std::string target = fmt::format("{}?limit={}{}", t.collectionPath(), options_.pageLimit, query(false));
    if (!cont.empty()) target += "&continue=" + urlEncode(cont);
    auto conn = co_await client_->connect(strand_, options_.requestTimeout);
    if (!conn) co_return std::unexpected(conn.error().wrap(fmt::format("list {}", t.name())));
    conn_ = *conn;
    if (stopped_) co_return fail("stopped");
    auto res = co_await conn_->request(http::verb::get, target, "", "", options_.requestTimeout);
    conn_.reset();
    if (!res) co_return std::unexpected(res.error().wrap(fmt::format("list {}", t.name())));
    {
      std::lock_guard lock(mu_);
      status_.connected = true;
    }
    if (res->status == 410) {  // the continue token expired: start the list again
      {
        std::lock_guard lock(mu_);
        status_.gone++;
      }
      fresh.clear();
      cont.clear();
      continue;
    }
    if (res->status != 200) {
      co_return fail(fmt::format("list {}: HTTP {}: {}", t.name(), res->status, statusMessage(res->body)),
                     static_cast<int>(res->status));
    }
    nlohmann::json j = nlohmann::json::parse(res->body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) co_return fail(fmt::format("list {}: not a JSON object", t.name()));
    auto md = j.find("metadata");
    if (md == j.end() || !md->is_object() || !md->contains("resourceVersion") ||
        !(*md)["resourceVersion"].is_string()) {
      co_return fail(fmt::format("list {}: no metadata.resourceVersion", t.name()));
    }
    rv = (*md)["resourceVersion"].get<std::string>();
    cont = md->contains("continue") && (*md)["continue"].is_string() ? (*md)["continue"].get<std::string>() : "";
    auto items = j.find("items");
    if (items != j.end() && items->is_array()) {
      for (auto& item : *items) {
        std::string key = objectKey(item);
        if (key.empty()) continue;
        fresh[key] = normalize(std::move(item));
      }
    } else if (items != j.end() && !items->is_null()) {
      co_return fail(fmt::format("list {}: items is not a list", t.name()));
    }
    if (cont.empty()) break;
  }
  store_ = std::move(fresh);
  rv_ = rv;
  backoff_.reset();
  {
    std::lock_guard lock(mu_);
    status_.synced = true;
    if (status_.lists++ > 0) status_.relists++;
    status_.objects = store_.size();
    status_.lastSync = std::chrono::system_clock::now();
    status_.resourceVersion = rv_;
  }
  log::info("kube", "{}: listed {} objects at resourceVersion {}", t.name(), store_.size(), rv_);
  if (onChange_ && !stopped_) onChange_(store_);
  co_return Status{};
}

asio::awaitable<Reflector::WatchEnd> Reflector::watch() {
  const auto& t = options_.type;
  if (!rewatchFrom_.empty()) rv_ = std::exchange(rewatchFrom_, "");
  std::string target = fmt::format("{}?watch=1&allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds={}{}",
                                   t.collectionPath(), urlEncode(rv_), options_.watchTimeout.count(), query(true));
  auto conn = co_await client_->connect(strand_, options_.requestTimeout);
  if (stopped_) co_return WatchEnd::Stopped;
  if (!conn) {
    failed(conn.error().wrap(fmt::format("watch {}", t.name())));
    co_return WatchEnd::Failed;
  }
  conn_ = *conn;
  if (!rewatchFrom_.empty()) {  // asked for while connecting
    conn_.reset();
    co_return WatchEnd::Expired;
  }
  bool gone = false, bad = false;
  std::string badWhy;
  auto onLine = [&](std::string_view line) {
    auto ev = parseWatchEvent(line);
    if (!ev) {
      bad = true;
      badWhy = ev.error().message;
      return false;
    }
    {
      std::lock_guard lock(mu_);
      status_.connected = true;
    }
    switch (ev->type) {
      case WatchEvent::Type::Error:
        if (ev->errorCode == 410) {
          gone = true;
        } else {
          bad = true;
          badWhy = fmt::format("ERROR event {}: {}", ev->errorCode, ev->errorMessage);
        }
        return false;
      case WatchEvent::Type::Bookmark:
        rv_ = ev->resourceVersion;
        break;
      case WatchEvent::Type::Added:
      case WatchEvent::Type::Modified:
        store_[ev->key] = normalize(std::move(ev->object));
        rv_ = ev->resourceVersion;
        break;
      case WatchEvent::Type::Deleted:
        store_.erase(ev->key);
        rv_ = ev->resourceVersion;
        break;
    }
    {
      std::lock_guard lock(mu_);
      status_.resourceVersion = rv_;
      status_.objects = store_.size();
      if (ev->type != WatchEvent::Type::Bookmark) status_.events++;
    }
    if (ev->type != WatchEvent::Type::Bookmark && onChange_ && !stopped_) onChange_(store_);
    return !stopped_ && rewatchFrom_.empty();
  };
  // Bookmarks come about once a minute; a silent minute and a half more is a dead connection.
  auto onOpen = [&] {
    std::lock_guard lock(mu_);
    status_.connected = true;
  };
  auto res = co_await conn_->streamLines(target, options_.watchTimeout + std::chrono::seconds(90),
                                         onLine, onOpen);
  conn_.reset();
  if (stopped_) co_return WatchEnd::Stopped;
  if (!rewatchFrom_.empty()) co_return WatchEnd::Expired;
  if (!res) {
    failed(res.error().wrap(fmt::format("watch {}", t.name())));
    co_return WatchEnd::Failed;
  }
  {
    std::lock_guard lock(mu_);
    status_.connected = true;
  }
  if (res->status == 410 || gone) {
    std::lock_guard lock(mu_);
    status_.gone++;
  }
  if (res->status == 410 || gone) co_return WatchEnd::Gone;
  if (res->status != 200) {
    failed(Error{fmt::format("watch {}: HTTP {}: {}", t.name(), res->status, statusMessage(res->body)),
                 static_cast<int>(res->status)});
    co_return WatchEnd::Failed;
  }
  if (bad) {
    failed(Error{fmt::format("watch {}: {}", t.name(), badWhy)});
    co_return WatchEnd::Failed;
  }
  backoff_.reset();
  co_return WatchEnd::Expired;
}

}  // namespace tollgate::kube
