#include "agent/pod_manager.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "agent/exclusions.h"
#include "common/log.h"
#include "proxy/metrics.h"

namespace tollgate::agent {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view kLog = "enroll";

enroll::EnrollReply ok() {
  enroll::EnrollReply r;
  r.set_ok(true);
  return r;
}

enroll::EnrollReply failed(uint32_t code, const std::string& msg, const std::string& details = "") {
  enroll::EnrollReply r;
  r.set_ok(false);
  r.set_code(code);
  r.set_msg(msg);
  r.set_details(details);
  return r;
}

bool validDnsName(const std::string& s) {
  if (s.empty() || s.size() > 253 || s == "." || s == "..") return false;
  for (char c : s) {
    bool okChar = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!okChar) return false;
  }
  return true;
}

// The capture listeners are on loopback; a runtime that has not raised lo yet would leave the
// redirect pointing at an unreachable address.
Status ensureLoopbackUp() {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return failErrno("socket for lo");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  Status st;
  if (::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
    st = failErrno("SIOCGIFFLAGS lo");
  } else if (!(ifr.ifr_flags & IFF_UP)) {
    ifr.ifr_flags |= IFF_UP;
    if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) st = failErrno("bring lo up");
  }
  ::close(s);
  return st;
}

// An unmounted state file is an empty regular file, not a namespace.
bool isNetns(int fd) {
  struct statfs sfs {};
  constexpr decltype(sfs.f_type) kNsfsMagic = 0x6e736673;
  return ::fstatfs(fd, &sfs) == 0 && sfs.f_type == kNsfsMagic;
}

// The node's own addresses (the calling thread's netns: the agent's), which DNS answers must
// not hand to pods. Loopback and link-local ones are refused anyway (DnsProxy::forbiddenAnswer).
std::vector<policy::IpAddress> nodeAddresses() {
  std::vector<policy::IpAddress> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    log::warn(kLog, "getifaddrs: {}: DNS answers pointing at the node are not filtered",
              std::strerror(errno));
    return out;
  }
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr) continue;
    char buf[INET6_ADDRSTRLEN] = {};
    if (a->ifa_addr->sa_family == AF_INET) {
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, buf, sizeof buf);
    } else if (a->ifa_addr->sa_family == AF_INET6) {
      ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr, buf,
                  sizeof buf);
    } else {
      continue;
    }
    auto ip = policy::IpAddress::parse(buf);
    if (ip && std::find(out.begin(), out.end(), *ip) == out.end()) out.push_back(*ip);
  }
  ::freeifaddrs(list);
  return out;
}

uint64_t pathInode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_ino;
}

}  // namespace

PodManager::PodManager(proxy::ProxyInputs& inputs, std::string runDir)
    : inputs_(inputs), runDir_(std::move(runDir)) {}

PodManager::~PodManager() { shutdown(); }

Status PodManager::init() {
  std::error_code ec;
  for (const char* sub : {"pods", "netns"}) {
    fs::create_directories(fs::path(runDir_) / sub, ec);
    if (ec) return fail(fmt::format("create {}/{}: {}", runDir_, sub, ec.message()));
  }
  return {};
}

Result<std::string> PodManager::stateKey(const enroll::PodRef& pod) {
  if (!validDnsName(pod.namespace_()) || !validDnsName(pod.name())) {
    return fail(fmt::format("invalid pod reference '{}/{}'", pod.namespace_(), pod.name()));
  }
  return pod.namespace_() + "_" + pod.name();
}

void PodManager::setRedirect(std::shared_ptr<const RedirectInstaller> redirect) {
  std::lock_guard lock(mu_);
  bool changed = redirect && redirect_ && redirect->expected() != redirect_->expected();
  std::shared_ptr<const RedirectInstaller> old = std::exchange(redirect_, std::move(redirect));
  if (!old && redirect_) {
    // The first redirect (the kubernetes source's first config after a restart): the pods
    // re-adopted before it were left as they were; check and repair them now.
    for (auto& [key, pod] : pods_) repairLocked(key, *pod, "first config");
    return;
  }
  if (!changed) return;
  const bool modeChanged = std::string_view(old->mode()) != redirect_->mode();
  for (auto& [key, pod] : pods_) {
    if (auto st = redirect_->install(pod->target(key)); !st) {
      // The old mode's redirect stays: the pod is still closed, by the old mechanism.
      log::error(kLog, "pod {}: install the {} redirect after config change: {} ({} stays)", key,
                 redirect_->mode(), st.error().str(), old->mode());
      continue;
    }
    log::info(kLog, "pod {}: {} redirect installed after config change", key, redirect_->mode());
    if (modeChanged) {
      if (auto st = old->remove(pod->target(key)); !st) {
        log::warn(kLog, "pod {}: remove the {} redirect: {}", key, old->mode(), st.error().str());
      }
    }
  }
}

enroll::EnrollReply PodManager::handle(const enroll::EnrollRequest& req, int netnsFd) {
  // Excluded namespaces: only the namespace decides (labels and annotations are the pod's own
  // and must not let it opt out). A pod enrolled before its namespace was excluded stays so.
  if (auto snap = inputs_.snapshots.load();
      snap && req.op() != enroll::EnrollRequest::DEL &&
      namespaceExcluded(snap->mesh(), req.pod().namespace_()) &&
      !enrolled(req.pod().namespace_(), req.pod().name())) {
    if (netnsFd >= 0) ::close(netnsFd);
    if (req.op() == enroll::EnrollRequest::ADD) inputs_.metrics.enrollExcluded++;
    log::info(kLog, "{} {}/{}: namespace is excluded: not enrolled",
              enroll::EnrollRequest::Op_Name(req.op()), req.pod().namespace_(), req.pod().name());
    return ok();
  }
  // hostNetwork pods live in the node's netns: nothing to enroll there, and pod rules in it would
  // capture the node's own traffic. The netns decides, not the pod's spec (see isNodeNetns).
  if (req.op() != enroll::EnrollRequest::DEL && isNodeNetns(netnsFd, req.netns_path())) {
    if (netnsFd >= 0) ::close(netnsFd);
    if (req.op() == enroll::EnrollRequest::ADD) inputs_.metrics.enrollExcluded++;
    auto snap = inputs_.snapshots.load();
    const policy::Pod* obj =
        snap ? snap->findPod(req.pod().namespace_(), req.pod().name()) : nullptr;
    log::info(kLog, "{} {}/{}: netns is the node's own (hostNetwork pod{}): not enrolled",
              enroll::EnrollRequest::Op_Name(req.op()), req.pod().namespace_(), req.pod().name(),
              obj && obj->hostNetwork ? "" : "; its Pod object does not say hostNetwork");
    return ok();
  }
  // Without any snapshot yet, add() refuses as not ready.
  if (requirePodWait_ && req.op() == enroll::EnrollRequest::ADD && inputs_.snapshots.load() &&
      !havePodObject(req)) {
    if (netnsFd >= 0) ::close(netnsFd);
    inputs_.metrics.enrollUnknownPod++;
    inputs_.metrics.enrollFailed++;
    std::string msg = fmt::format(
        "pod {}/{}{} is not a Pod of this node on the API server (waited {} ms): not enrolled",
        req.pod().namespace_(), req.pod().name(),
        req.pod().uid().empty() ? "" : " uid " + req.pod().uid(), requirePodWait_->count());
    log::error(kLog, "ADD {}/{}: {}", req.pod().namespace_(), req.pod().name(), msg);
    return failed(kCodeUnknownPod, msg);
  }
  if (auto snap = inputs_.snapshots.load(); snap && req.op() == enroll::EnrollRequest::ADD) {
    const policy::Pod* obj = snap->findPod(req.pod().namespace_(), req.pod().name());
    if (obj && obj->hostNetwork) {
      log::warn(kLog, "ADD {}/{}: Pod says hostNetwork but has a netns of its own: enrolled",
                req.pod().namespace_(), req.pod().name());
    }
  }
  enroll::EnrollReply reply;
  switch (req.op()) {
    case enroll::EnrollRequest::ADD:
      reply = add(req, netnsFd);
      netnsFd = -1;  // add() owns it
      break;
    case enroll::EnrollRequest::DEL:
      reply = del(req);
      break;
    case enroll::EnrollRequest::CHECK:
      reply = check(req);
      break;
    default:
      reply = failed(kCodeBadRequest, fmt::format("unknown op {}", static_cast<int>(req.op())));
  }
  if (netnsFd >= 0) ::close(netnsFd);
  std::string what = fmt::format("{} {}/{}", enroll::EnrollRequest::Op_Name(req.op()),
                                 req.pod().namespace_(), req.pod().name());
  if (reply.ok()) {
    inputs_.metrics.enrollOk++;
    log::info(kLog, "{}: ok", what);
  } else {
    inputs_.metrics.enrollFailed++;
    log::error(kLog, "{}: failed (code {}): {}", what, reply.code(), reply.msg());
  }
  inputs_.metrics.enrolledPods = static_cast<int64_t>(size());
  return reply;
}

bool PodManager::havePodObject(const enroll::EnrollRequest& req) const {
  // Woken by each snapshot swap, so a Pod object that arrives during the wait enrols at once.
  return inputs_.snapshots.waitFor(
      [&](const policy::Snapshot& snap) {
        const policy::Pod* pod = snap.findPod(req.pod().namespace_(), req.pod().name());
        // The runtime's K8S_POD_UID, when it gives one, must be this Pod's: a late ADD for a
        // deleted pod's sandbox must not enrol as the new pod of the same name.
        return pod && (req.pod().uid().empty() || pod->meta.uid.empty() ||
                       pod->meta.uid == req.pod().uid());
      },
      std::chrono::steady_clock::now() + *requirePodWait_);
}

std::string PodManager::serviceAccountOf(const enroll::EnrollRequest& req) const {
  if (auto snap = inputs_.snapshots.load()) {
    if (auto id = snap->identityOf(req.pod().namespace_(), req.pod().name())) {
      if (!id->serviceAccount.empty()) return id->serviceAccount;
    }
  }
  if (!req.service_account().empty()) return req.service_account();
  return "default";
}

void PodManager::addIdentity(const enroll::EnrollRequest& req) {
  if (!svids_) return;
  std::string sa = serviceAccountOf(req);
  if (auto st = svids_->addPod(req.pod().namespace_(), req.pod().name(), sa); !st) {
    // The pod still enrolls; its gateway flows fail closed (no SVID) and say why.
    log::error(kLog, "pod {}/{}: identity {}: {}", req.pod().namespace_(), req.pod().name(), sa,
               st.error().str());
  }
}

void PodManager::removeIdentity(const enroll::EnrollRequest& req) {
  if (svids_) svids_->removePod(req.pod().namespace_(), req.pod().name());
}

void PodManager::syncIdentities() {
  if (!svids_) return;
  std::lock_guard lock(mu_);
  for (const auto& [key, pod] : pods_) addIdentity(pod->request);
}

Result<std::shared_ptr<proxy::OutboundListener>> PodManager::startListener(
    const enroll::EnrollRequest& req, std::shared_ptr<Netns> netns) {
  addIdentity(req);
  if (auto st = netns->run(ensureLoopbackUp); !st) return std::unexpected(st.error());
  proxy::PodInfo info;
  info.ns = req.pod().namespace_();
  info.name = req.pod().name();
  info.uid = req.pod().uid();
  for (const auto& [k, v] : req.labels()) info.labels[k] = v;
  if (!req.service_account().empty()) info.serviceAccount = req.service_account();
  info.ips.assign(req.pod_ips().begin(), req.pod_ips().end());
  info.mark = redirect_ ? redirect_->params().mark : info.mark;
  proxy::NetnsRunner runner = [netns](const std::function<Result<int>()>& fn) {
    return netns->runFd(fn);
  };
  auto l = proxy::OutboundListener::create(inputs_, std::move(info), std::move(runner));
  if (!l) return std::unexpected(l.error());
  if (auto key = stateKey(req.pod())) {
    if (auto table = dnsTableFor(*key)) (*l)->setDnsTable(std::move(table));
  }
  (*l)->start();
  return *l;
}

std::shared_ptr<proxy::PodDnsTable> PodManager::dnsTableFor(const std::string& key) {
  if (inputs_.options.dnsProxyPort == 0) return nullptr;
  auto& t = dnsTables_[key];
  if (!t) t = std::make_shared<proxy::PodDnsTable>();
  return t;
}

Status PodManager::startDnsQuic(Pod& pod, std::vector<std::string>* recreated) {
  auto key = stateKey(pod.request.pod());
  if (!key) return std::unexpected(key.error());
  proxy::PodInfo info;
  info.ns = pod.request.pod().namespace_();
  info.name = pod.request.pod().name();
  info.uid = pod.request.pod().uid();
  for (const auto& [k, v] : pod.request.labels()) info.labels[k] = v;
  if (!pod.request.service_account().empty()) info.serviceAccount = pod.request.service_account();
  info.ips.assign(pod.request.pod_ips().begin(), pod.request.pod_ips().end());
  info.mark = redirect_ ? redirect_->params().mark : info.mark;
  proxy::NetnsRunner runner = [netns = pod.netns](const std::function<Result<int>()>& fn) {
    return netns->runFd(fn);
  };
  if (inputs_.options.dnsProxyPort != 0 && (!pod.dns || !pod.dns->listening())) {
    if (recreated) recreated->push_back("DNS proxy is not up");
    if (pod.dns) pod.dns->close();
    pod.dns.reset();
    proxy::DnsProxy::Options o;
    o.port = inputs_.options.dnsProxyPort;
    o.nodeAddresses = nodeAddresses();
    auto d = proxy::DnsProxy::create(inputs_, info, runner, std::move(o), dnsCache_,
                                     dnsTableFor(*key));
    if (!d) return std::unexpected(d.error().wrap("create DNS proxy"));
    (*d)->start();
    pod.dns = std::move(*d);
  }
  if (inputs_.options.quicPort != 0 && (!pod.quic || !pod.quic->listening())) {
    if (recreated) recreated->push_back("QUIC telemetry socket is not up");
    if (pod.quic) pod.quic->close();
    pod.quic.reset();
    auto q = proxy::QuicTelemetry::create(inputs_, info, runner, inputs_.options.quicPort);
    if (!q) return std::unexpected(q.error().wrap("create QUIC telemetry"));
    (*q)->start();
    pod.quic = std::move(*q);
  }
  return {};
}

void PodManager::closeDnsQuic(Pod& pod) {
  if (pod.dns) pod.dns->close();
  if (pod.quic) pod.quic->close();
}

enroll::EnrollReply PodManager::add(const enroll::EnrollRequest& req, int netnsFd) {
  auto key = stateKey(req.pod());
  if (!key) {
    if (netnsFd >= 0) ::close(netnsFd);
    return failed(kCodeBadRequest, key.error().str());
  }
  Result<Netns> opened = netnsFd >= 0 ? Netns::fromFd(netnsFd, "pod " + *key)
                         : req.netns_path().empty()
                             ? Result<Netns>(fail("no netns: neither an fd nor netns_path"))
                             : Netns::open(req.netns_path());
  if (!opened) return failed(kCodeNetns, opened.error().wrap("open netns").str());
  auto netns = std::make_shared<Netns>(std::move(*opened));

  std::lock_guard lock(mu_);
  if (!redirect_) return failed(kCodeNotReady, "agent not ready: no valid config loaded");

  if (auto it = pods_.find(*key); it != pods_.end()) {
    Pod& existing = *it->second;
    if (existing.netns->inode() == netns->inode()) {
      // Same pod again (runtime retry): make sure everything is in place, change nothing else.
      auto drift = redirect_->verify(existing.target(*key));
      if (!drift || !drift->ok()) {
        if (auto st = redirect_->install(existing.target(*key)); !st) {
          return failed(kCodeRules, st.error().str());
        }
      }
      if (!existing.listener || !existing.listener->listening()) {
        auto l = startListener(req, existing.netns);
        if (!l) return failed(kCodeListener, l.error().str());
        existing.listener = *l;
      }
      if (auto st = startDnsQuic(existing); !st) return failed(kCodeListener, st.error().str());
      return ok();
    }
    // Same name, new sandbox: the old one is gone or going.
    log::info(kLog, "pod {}: new netns replaces the enrolled one", *key);
    if (existing.listener) existing.listener->close(true);
    closeDnsQuic(existing);
    dnsTables_.erase(*key);  // what the old sandbox resolved says nothing about the new one
    removeIdentity(existing.request);
    forgetState(*key);
    pods_.erase(it);
  }

  if (auto st = redirect_->install(PodTarget(*netns, *key, req.cgroup_path())); !st) {
    return failed(kCodeRules, st.error().wrap("install redirect").str());
  }
  auto listener = startListener(req, netns);
  if (!listener) {
    // Rules stay: the pod is closed, which is the safe state; the runtime will DEL.
    dnsTables_.erase(*key);
    removeIdentity(req);
    return failed(kCodeListener, listener.error().wrap("create listeners").str());
  }
  if (auto st = persist(*key, req, *netns); !st) {
    (*listener)->close(true);
    removeIdentity(req);
    return failed(kCodeState, st.error().wrap("persist state").str());
  }
  auto pod = std::make_unique<Pod>();
  pod->request = req;
  pod->request.set_netns_fd_attached(false);
  pod->netns = std::move(netns);
  pod->listener = std::move(*listener);
  // Before ADD returns: the pod's first process may resolve a name at once.
  if (auto st = startDnsQuic(*pod); !st) {
    // Rules stay (the redirect sends DNS to a port nobody answers: the pod is closed).
    pod->listener->close(true);
    closeDnsQuic(*pod);
    dnsTables_.erase(*key);
    removeIdentity(req);
    forgetState(*key);
    return failed(kCodeListener, st.error().str());
  }
  pods_[*key] = std::move(pod);
  return ok();
}

enroll::EnrollReply PodManager::del(const enroll::EnrollRequest& req) {
  auto key = stateKey(req.pod());
  if (!key) return ok();  // cannot have been enrolled
  std::lock_guard lock(mu_);
  auto it = pods_.find(*key);
  if (it == pods_.end()) {
    forgetState(*key);
    return ok();
  }
  Pod& pod = *it->second;
  if (pod.listener) pod.listener->close(true);
  closeDnsQuic(pod);
  dnsTables_.erase(*key);
  removeIdentity(pod.request);
  Status st;
  if (redirect_) st = redirect_->remove(pod.target(*key));
  forgetState(*key);
  pods_.erase(it);
  if (!st) {
    // The pod is going away; its rules go with its netns. Report, but do not block deletion.
    log::warn(kLog, "pod {}: remove rules: {}", *key, st.error().str());
  }
  return ok();
}

enroll::EnrollReply PodManager::check(const enroll::EnrollRequest& req) {
  auto key = stateKey(req.pod());
  if (!key) return failed(kCodeBadRequest, key.error().str());
  std::lock_guard lock(mu_);
  auto it = pods_.find(*key);
  if (it == pods_.end()) return failed(kCodeCheckFailed, "pod is not enrolled");
  if (!redirect_) return failed(kCodeNotReady, "agent not ready: no valid config loaded");
  Pod& pod = *it->second;
  auto drift = redirect_->verify(pod.target(*key));
  if (!drift) return failed(kCodeCheckFailed, drift.error().wrap("verify rules").str());
  if (!drift->ok()) return failed(kCodeCheckFailed, "rules drifted: " + drift->summary());
  if (!pod.listener || !pod.listener->listening() || pod.listener->listenerCount() == 0) {
    return failed(kCodeCheckFailed, "capture listeners are not up");
  }
  if (inputs_.options.dnsProxyPort != 0 && (!pod.dns || !pod.dns->listening())) {
    return failed(kCodeCheckFailed, "DNS proxy is not up");
  }
  if (inputs_.options.quicPort != 0 && (!pod.quic || !pod.quic->listening())) {
    return failed(kCodeCheckFailed, "QUIC telemetry socket is not up");
  }
  return ok();
}

Status PodManager::persist(const std::string& key, const enroll::EnrollRequest& req,
                           const Netns& netns) {
  fs::path nsPath = fs::path(runDir_) / "netns" / key;
  ::umount2(nsPath.c_str(), MNT_DETACH);  // a previous enrollment of the same name
  int f = ::open(nsPath.c_str(), O_CREAT | O_RDONLY | O_CLOEXEC, 0444);
  if (f < 0) return failErrno("create " + nsPath.string());
  ::close(f);
  std::string src = fmt::format("/proc/self/fd/{}", netns.fd());
  if (::mount(src.c_str(), nsPath.c_str(), "none", MS_BIND, nullptr) != 0) {
    return failErrno("bind-mount netns at " + nsPath.string());
  }
  enroll::EnrollRequest saved = req;
  saved.set_netns_fd_attached(false);
  fs::path pb = fs::path(runDir_) / "pods" / (key + ".pb");
  fs::path tmp = pb;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out || !saved.SerializeToOstream(&out)) return fail("write " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, pb, ec);
  if (ec) return fail(fmt::format("rename {}: {}", pb.string(), ec.message()));
  return {};
}

void PodManager::forgetState(const std::string& key) {
  fs::path nsPath = fs::path(runDir_) / "netns" / key;
  ::umount2(nsPath.c_str(), MNT_DETACH);
  std::error_code ec;
  fs::remove(nsPath, ec);
  fs::remove(fs::path(runDir_) / "pods" / (key + ".pb"), ec);
}

void PodManager::repairLocked(const std::string& key, Pod& pod, std::string_view why) {
  PodTarget target = pod.target(key);
  auto drift = redirect_->verify(target);
  if (drift && drift->ok()) return;
  log::warn(kLog, "{}: pod {}: rules {}: reinstalling", why, key,
            drift ? drift->summary() : drift.error().str());
  if (auto st = redirect_->install(target); !st) {
    log::error(kLog, "{}: pod {}: {}", why, key, st.error().str());
  }
}

void PodManager::readopt() {
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(runDir_) / "pods", ec)) {
    if (e.path().extension() == ".pb") files.push_back(e.path());
  }
  std::lock_guard lock(mu_);
  for (const auto& file : files) {
    std::string key = file.stem().string();
    enroll::EnrollRequest req;
    {
      std::ifstream in(file, std::ios::binary);
      if (!in || !req.ParseFromIstream(&in)) {
        log::error(kLog, "re-adopt: unreadable state {}: dropped", file.string());
        forgetState(key);
        continue;
      }
    }
    auto expected = stateKey(req.pod());
    if (!expected || *expected != key) {
      log::error(kLog, "re-adopt: state {} does not match its pod: dropped", file.string());
      forgetState(key);
      continue;
    }
    fs::path nsPath = fs::path(runDir_) / "netns" / key;
    auto opened = Netns::open(nsPath.string());
    if (!opened || !isNetns(opened->fd())) {
      log::info(kLog, "re-adopt: pod {}: netns is gone: dropped", key);
      forgetState(key);
      continue;
    }
    auto netns = std::make_shared<Netns>(std::move(*opened));
    // Our bind mount keeps the netns alive after the pod is gone; the runtime's own reference
    // (netns_path) tells whether the pod still exists.
    if (!req.netns_path().empty() && pathInode(req.netns_path()) != netns->inode()) {
      log::info(kLog, "re-adopt: pod {}: {} no longer refers to its netns: dropped", key,
                req.netns_path());
      forgetState(key);
      continue;
    }
    auto listener = startListener(req, netns);
    if (!listener) {
      log::error(kLog, "re-adopt: pod {}: {} (pod stays closed)", key, listener.error().str());
    }
    auto pod = std::make_unique<Pod>();
    pod->request = req;
    pod->netns = std::move(netns);
    if (listener) pod->listener = *listener;
    if (auto st = startDnsQuic(*pod); !st) {
      log::error(kLog, "re-adopt: pod {}: {} (its DNS stays unanswered)", key, st.error().str());
    }
    if (redirect_) {
      repairLocked(key, *pod, "re-adopt");
    } else {
      log::warn(kLog, "re-adopt: pod {}: no config loaded yet; its rules are checked when the "
                "first one is", key);
    }
    pods_[key] = std::move(pod);
    log::info(kLog, "re-adopted pod {}", key);
  }
  inputs_.metrics.enrolledPods = static_cast<int64_t>(pods_.size());
}

void PodManager::shutdown(bool abortSessions) {
  std::lock_guard lock(mu_);
  for (auto& [key, pod] : pods_) {
    if (pod->listener) pod->listener->close(abortSessions);
    closeDnsQuic(*pod);
  }
}

int64_t PodManager::activeConnections() const {
  std::lock_guard lock(mu_);
  int64_t n = 0;
  for (const auto& [key, pod] : pods_) {
    if (pod->listener) n += pod->listener->activeConnections();
  }
  return n;
}

size_t PodManager::size() const {
  std::lock_guard lock(mu_);
  return pods_.size();
}

bool PodManager::enrolled(const std::string& ns, const std::string& name) const {
  std::lock_guard lock(mu_);
  return pods_.count(ns + "_" + name) > 0;
}

std::string PodManager::collectMetrics() const {
  std::string out;
  out += "# HELP tollgate_pod_nft_packets_total Packets counted by a pod's redirect rules.\n"
         "# TYPE tollgate_pod_nft_packets_total counter\n";
  std::string active =
      "# HELP tollgate_pod_connections_active Open connections per pod.\n"
      "# TYPE tollgate_pod_connections_active gauge\n";
  std::lock_guard lock(mu_);
  for (const auto& [key, pod] : pods_) {
    std::string ref = pod->request.pod().namespace_() + "/" + pod->request.pod().name();
    if (redirect_) {
      if (auto c = redirect_->counters(pod->target(key))) {
        for (const auto& [name, v] : *c) {
          out += proxy::formatSample("tollgate_pod_nft_packets_total",
                                     {{"pod", ref}, {"counter", name}},
                                     static_cast<double>(v.packets));
        }
      }
    }
    active += proxy::formatSample("tollgate_pod_connections_active", {{"pod", ref}},
                                  pod->listener ? static_cast<double>(pod->listener->activeConnections()) : 0);
  }
  return out + active + dnsQuicMetricsLocked();
}

std::vector<admin::PodStatus> PodManager::describe(std::string_view ns) const {
  struct Copy {
    std::string key;
    enroll::EnrollRequest request;
    std::shared_ptr<Netns> netns;
    int64_t active = 0;
    std::vector<uint32_t> ports;
  };
  std::vector<Copy> copies;
  std::shared_ptr<const RedirectInstaller> redirect;
  {
    std::lock_guard lock(mu_);
    redirect = redirect_;
    for (const auto& [key, pod] : pods_) {
      if (!ns.empty() && pod->request.pod().namespace_() != ns) continue;
      Copy c{key, pod->request, pod->netns, pod->listener ? pod->listener->activeConnections() : 0, {}};
      const auto& o = inputs_.options;
      c.ports = {pod->listener ? o.outboundPort : 0u, pod->dns ? o.dnsProxyPort : 0u,
                 pod->quic ? o.quicPort : 0u};
      copies.push_back(std::move(c));
    }
  }
  auto snap = inputs_.snapshots.load();
  std::string trustDomain = snap ? snap->mesh().trustDomain : policy::TollgateConfig{}.trustDomain;
  std::vector<admin::PodStatus> out;
  for (const auto& c : copies) {
    admin::PodStatus p;
    p.set_namespace_(c.request.pod().namespace_());
    p.set_name(c.request.pod().name());
    p.set_uid(c.request.pod().uid());
    p.set_netns_path(c.request.netns_path());
    for (const auto& ip : c.request.pod_ips()) p.add_pod_ips(ip);
    std::string sa = serviceAccountOf(c.request);
    p.set_service_account(sa);
    p.set_identity(proxy::spiffeId(trustDomain, p.namespace_(), sa));
    p.set_active_connections(static_cast<uint64_t>(std::max<int64_t>(0, c.active)));
    for (uint32_t port : c.ports) p.add_listener_ports(port);
    if (!redirect) {
      p.add_drift("no redirect installer (agent not started)");
    } else if (auto d = redirect->verify(PodTarget(*c.netns, c.key, c.request.cgroup_path())); !d) {
      p.add_drift("cannot read the rules: " + d.error().str());
    } else {
      for (const auto& diff : d->differences) p.add_drift(diff);
    }
    p.set_rules_ok(p.drift_size() == 0);
    if (redirect) {
      if (auto counters = redirect->counters(PodTarget(*c.netns, c.key, c.request.cgroup_path()))) {
        for (const auto& [name, v] : *counters) {
          if (name.starts_with("drop")) (*p.mutable_drops())[name] = v.packets;
        }
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

Result<std::vector<admin::ConnInfo>> PodManager::connections(std::string_view ns,
                                                             std::string_view name) const {
  std::vector<std::shared_ptr<proxy::OutboundListener>> listeners;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, pod] : pods_) {
      if (!name.empty() &&
          (pod->request.pod().namespace_() != ns || pod->request.pod().name() != name)) {
        continue;
      }
      if (pod->listener) listeners.push_back(pod->listener);
    }
    if (!name.empty() && listeners.empty()) {
      return fail(fmt::format("pod {}/{} is not enrolled on this node", ns, name));
    }
  }
  std::vector<admin::ConnInfo> out;
  for (const auto& l : listeners) {
    for (auto& r : l->describeSessions(std::chrono::seconds(2))) {
      admin::ConnInfo c;
      c.set_namespace_(r.podNs);
      c.set_pod(r.podName);
      c.set_identity(r.identity);
      c.set_original_dst(r.originalDst);
      c.set_name(r.name);
      c.set_protocol(r.protocol);
      c.set_decision(r.decision);
      c.set_reason(r.reason);
      c.set_route(r.route);
      c.set_bytes_up(r.bytesUp);
      c.set_bytes_down(r.bytesDown);
      c.set_age_ms(r.durationMs);
      out.push_back(std::move(c));
    }
  }
  std::sort(out.begin(), out.end(), [](const admin::ConnInfo& a, const admin::ConnInfo& b) {
    if (a.namespace_() != b.namespace_()) return a.namespace_() < b.namespace_();
    if (a.pod() != b.pod()) return a.pod() < b.pod();
    return a.age_ms() > b.age_ms();  // oldest first
  });
  return out;
}

Result<PodManager::VerifySubject> PodManager::verifySubject(std::string_view ns,
                                                           std::string_view name) const {
  std::lock_guard lock(mu_);
  for (const auto& [key, pod] : pods_) {
    if (pod->request.pod().namespace_() == ns && pod->request.pod().name() == name) {
      return VerifySubject{pod->netns, redirect_, key, pod->request.cgroup_path()};
    }
  }
  return fail(fmt::format("pod {}/{} is not enrolled on this node", ns, name));
}

Result<PodManager::RulesView> PodManager::rulesOf(std::string_view ns, std::string_view name) const {
  auto subject = verifySubject(ns, name);
  if (!subject) return std::unexpected(subject.error());
  const auto& redirect = subject->redirect;
  if (!redirect) return fail("no redirect installer (agent not started)");
  RulesView v;
  auto listed = redirect->listing(subject->target());
  if (!listed) return std::unexpected(listed.error());
  v.installed = std::move(*listed);
  v.expected = redirect->expected();
  auto d = redirect->verify(subject->target());
  if (!d) return std::unexpected(d.error());
  v.drift = std::move(*d);
  return v;
}

std::string PodManager::dnsQuicMetricsLocked() const {
  // Per pod, from the pod's current DNS proxy / QUIC socket (a re-created one starts at 0, which
  // Prometheus reads as a counter reset).
  using Get = uint64_t (*)(const proxy::DnsProxyCounters&);
  struct Series {
    const char* name;
    const char* help;
    Get get;
  };
  static constexpr Series kDns[] = {
      {"tollgate_dns_queries_total", "DNS queries a pod sent (to any address).",
       [](const proxy::DnsProxyCounters& c) { return c.queries.load(); }},
      {"tollgate_dns_blocked_total",
       "DNS queries answered NXDOMAIN in strict mode without asking upstream.",
       [](const proxy::DnsProxyCounters& c) { return c.blocked.load(); }},
      {"tollgate_dns_forwarded_total", "DNS queries answered by an upstream resolver.",
       [](const proxy::DnsProxyCounters& c) { return c.forwarded.load(); }},
      {"tollgate_dns_cache_hits_total", "DNS queries answered from the cache.",
       [](const proxy::DnsProxyCounters& c) { return c.cacheHits.load(); }},
      {"tollgate_dns_servfail_total", "DNS queries answered SERVFAIL (upstream timeout/failure).",
       [](const proxy::DnsProxyCounters& c) { return c.servfail.load(); }},
      {"tollgate_dns_malformed_total", "Malformed DNS queries dropped or answered FORMERR.",
       [](const proxy::DnsProxyCounters& c) { return c.malformed.load(); }},
      {"tollgate_dns_tcp_retries_total", "Truncated upstream answers retried over TCP.",
       [](const proxy::DnsProxyCounters& c) { return c.tcpRetries.load(); }},
      {"tollgate_dns_stripped_total",
       "A/AAAA answers removed (loopback, link-local incl. 169.254.169.254, node addresses).",
       [](const proxy::DnsProxyCounters& c) { return c.stripped.load(); }},
      {"tollgate_dns_rate_limited_total",
       "DNS queries dropped over the pod's rate (spec.dns.queriesPerSecond / queryBurst).",
       [](const proxy::DnsProxyCounters& c) { return c.rateLimited.load(); }},
  };
  std::string out;
  for (const auto& s : kDns) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n", s.name, s.help, s.name);
    for (const auto& [key, pod] : pods_) {
      if (!pod->dns) continue;
      std::string ref = pod->request.pod().namespace_() + "/" + pod->request.pod().name();
      out += proxy::formatSample(s.name, {{"pod", ref}},
                                 static_cast<double>(s.get(pod->dns->counters())));
    }
  }
  std::string attempts =
      "# HELP tollgate_quic_attempts_total QUIC packets a pod sent to udp/443 (dropped).\n"
      "# TYPE tollgate_quic_attempts_total counter\n";
  std::string events =
      "# HELP tollgate_quic_events_total \"pod tried QUIC\" events logged (one per pod, "
      "destination and SNI per minute).\n"
      "# TYPE tollgate_quic_events_total counter\n";
  for (const auto& [key, pod] : pods_) {
    if (!pod->quic) continue;
    std::string ref = pod->request.pod().namespace_() + "/" + pod->request.pod().name();
    attempts += proxy::formatSample("tollgate_quic_attempts_total", {{"pod", ref}},
                                    static_cast<double>(pod->quic->attempts()));
    events += proxy::formatSample("tollgate_quic_events_total", {{"pod", ref}},
                                  static_cast<double>(pod->quic->events()));
  }
  return out + attempts + events;
}

}  // namespace tollgate::agent
