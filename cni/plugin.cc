#include "cni/plugin.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <ostream>

#include "cni/json.h"
#include "common/framing.h"
#include "proto/enroll.pb.h"

extern char** environ;

namespace tollgate::cni {
namespace {

struct CniError {
  int code;
  std::string msg;
  std::string details;
};

int printError(std::ostream& out, const std::string& version, const CniError& e) {
  out << "{\"cniVersion\":" << jsonQuote(version.empty() ? std::string(kSpecVersion) : version)
      << ",\"code\":" << e.code << ",\"msg\":" << jsonQuote(e.msg)
      << ",\"details\":" << jsonQuote(e.details) << "}\n";
  return 1;
}

std::string envOr(const Environment& env, const std::string& key) {
  auto it = env.find(key);
  return it == env.end() ? std::string() : it->second;
}

// A file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Sends one request (with the netns fd when open) and waits for the reply within the socket's
// timeout. Transport failures are an Error; a reply, ok or not, is a value.
Result<enroll::EnrollReply> exchange(const NetConf& conf, const enroll::EnrollRequest& req,
                                     int netnsFd) {
  auto sock = connectUnix(conf.socket, conf.timeoutMs);
  if (!sock) return std::unexpected(sock.error().wrap("tollgate agent"));
  Fd guard(*sock);
  std::string payload;
  if (!req.SerializeToString(&payload)) return fail("serialise enrollment request");
  if (auto s = sendFrame(*sock, payload, netnsFd); !s) {
    return std::unexpected(s.error().wrap("tollgate agent"));
  }
  auto frame = recvFrame(*sock);
  if (!frame) {
    if (frame.error().code == EAGAIN || frame.error().code == EWOULDBLOCK) {
      return fail("tollgate agent: no reply within " + std::to_string(conf.timeoutMs) + " ms",
                  ETIMEDOUT);
    }
    return std::unexpected(frame.error().wrap("tollgate agent"));
  }
  if (frame->fd >= 0) ::close(frame->fd);  // the agent never sends one; never leak it
  enroll::EnrollReply reply;
  if (!reply.ParseFromString(frame->payload)) return fail("tollgate agent: malformed reply");
  return reply;
}

enroll::EnrollRequest buildRequest(enroll::EnrollRequest::Op op, const Environment& env,
                                   const std::map<std::string, std::string>& args,
                                   const NetConf& conf) {
  enroll::EnrollRequest req;
  req.set_op(op);
  auto arg = [&](const char* k) {
    auto it = args.find(k);
    return it == args.end() ? std::string() : it->second;
  };
  req.mutable_pod()->set_namespace_(arg("K8S_POD_NAMESPACE"));
  req.mutable_pod()->set_name(arg("K8S_POD_NAME"));
  req.mutable_pod()->set_uid(arg("K8S_POD_UID"));
  req.set_netns_path(envOr(env, "CNI_NETNS"));
  req.set_container_id(envOr(env, "CNI_CONTAINERID"));
  req.set_interface(envOr(env, "CNI_IFNAME"));
  req.set_cgroup_path(conf.cgroupPath);
  if (conf.hasPrevResult()) {
    for (auto& ip : podIpsFromResult(conf.prevResult)) req.add_pod_ips(ip);
  }
  return req;
}

std::string podName(const enroll::EnrollRequest& req) {
  if (req.pod().name().empty()) return "container " + req.container_id();
  return req.pod().namespace_() + "/" + req.pod().name();
}

}  // namespace

Result<NetConf> parseNetConf(std::string_view json) {
  auto root = parseJsonObject(json);
  if (!root) return std::unexpected(root.error());
  NetConf conf;
  try {
    const YAML::Node& n = *root;
    if (n["cniVersion"]) conf.cniVersion = n["cniVersion"].as<std::string>();
    if (n["name"]) conf.name = n["name"].as<std::string>();
    if (n["type"]) conf.type = n["type"].as<std::string>();
    if (n["socket"]) conf.socket = n["socket"].as<std::string>();
    if (n["timeoutMs"]) {
      conf.timeoutMs = n["timeoutMs"].as<int>();
      if (conf.timeoutMs <= 0) return fail("timeoutMs: must be a positive number of milliseconds");
    }
    if (n["failMode"]) {
      auto mode = n["failMode"].as<std::string>();
      if (mode == "open") {
        conf.failOpen = true;
      } else if (mode != "closed") {
        return fail("failMode: must be \"closed\" or \"open\", got \"" + mode + "\"");
      }
    }
    if (n["prevResult"] && !n["prevResult"].IsNull()) {
      if (!n["prevResult"].IsMap()) return fail("prevResult: must be an object");
      conf.prevResult = n["prevResult"];
    }
    if (const YAML::Node rc = n["runtimeConfig"]; rc && !rc.IsNull()) {
      if (!rc.IsMap()) return fail("runtimeConfig: must be an object");
      if (const YAML::Node cg = rc["cgroupPath"]; cg && !cg.IsNull()) {
        if (!cg.IsScalar()) return fail("runtimeConfig.cgroupPath: must be a string");
        conf.cgroupPath = cg.as<std::string>();
      }
    }
  } catch (const YAML::Exception& e) {
    return fail(std::string("invalid network configuration: ") + e.what());
  }
  if (conf.cniVersion.empty()) return fail("cniVersion: missing");
  return conf;
}

Result<std::map<std::string, std::string>> parseCniArgs(std::string_view args) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos <= args.size()) {
    size_t end = args.find(';', pos);
    if (end == std::string_view::npos) end = args.size();
    std::string_view pair = args.substr(pos, end - pos);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      if (eq == std::string_view::npos || eq == 0) {
        return fail("CNI_ARGS: malformed pair \"" + std::string(pair) + "\"");
      }
      out[std::string(pair.substr(0, eq))] = std::string(pair.substr(eq + 1));
    }
    pos = end + 1;
  }
  return out;
}

std::vector<std::string> podIpsFromResult(const YAML::Node& prevResult) {
  std::vector<std::string> ips;
  const YAML::Node list = prevResult["ips"];
  if (!list || !list.IsSequence()) return ips;
  for (const auto& ip : list) {
    if (!ip.IsMap() || !ip["address"] || !ip["address"].IsScalar()) continue;
    std::string a = ip["address"].Scalar();
    if (auto slash = a.find('/'); slash != std::string::npos) a.resize(slash);
    ips.push_back(a);
  }
  return ips;
}

std::string supportedVersionsText() {
  std::string s;
  for (size_t i = 0; i < kSupportedVersions.size(); ++i) {
    if (i > 0) s += i + 1 == kSupportedVersions.size() ? " and " : ", ";
    s += kSupportedVersions[i];
  }
  return s;
}

int run(const Environment& env, std::string_view stdinText, std::ostream& out, std::ostream& err) {
  const std::string command = envOr(env, "CNI_COMMAND");
  if (command == "VERSION") {
    out << "{\"cniVersion\":" << jsonQuote(kSpecVersion) << ",\"supportedVersions\":[";
    for (size_t i = 0; i < kSupportedVersions.size(); ++i) {
      out << (i ? "," : "") << jsonQuote(kSupportedVersions[i]);
    }
    out << "]}\n";
    return 0;
  }

  auto conf = parseNetConf(stdinText);
  if (!conf)
    return printError(out, "",
                      {kDecodeFailure, "invalid network configuration", conf.error().str()});
  if (std::find(kSupportedVersions.begin(), kSupportedVersions.end(), conf->cniVersion) ==
      kSupportedVersions.end()) {
    return printError(out, conf->cniVersion,
                      {kIncompatibleVersion, "unsupported cniVersion",
                       "tollgate-cni supports " + supportedVersionsText() + ", got " +
                           conf->cniVersion});
  }
  const std::string& version = conf->cniVersion;

  enroll::EnrollRequest::Op op;
  if (command == "ADD") {
    op = enroll::EnrollRequest::ADD;
  } else if (command == "DEL") {
    op = enroll::EnrollRequest::DEL;
  } else if (command == "CHECK") {
    if (version.starts_with("0.3.")) {
      return printError(out, version,
                        {kIncompatibleVersion, "CHECK is not defined for cniVersion " + version,
                         "CHECK exists from cniVersion 0.4.0 on"});
    }
    op = enroll::EnrollRequest::CHECK;
  } else {
    return printError(
        out, version,
        {kInvalidEnvironment, "invalid CNI_COMMAND", "unknown command \"" + command + "\""});
  }

  for (const char* required : {"CNI_CONTAINERID", "CNI_IFNAME"}) {
    if (envOr(env, required).empty()) {
      return printError(out, version,
                        {kInvalidEnvironment, std::string(required) + " missing",
                         "the runtime must set " + std::string(required)});
    }
  }
  // DEL may come after the netns is gone; ADD and CHECK need it.
  const std::string netns = envOr(env, "CNI_NETNS");
  if (netns.empty() && op != enroll::EnrollRequest::DEL) {
    return printError(out, version,
                      {kInvalidEnvironment, "CNI_NETNS missing",
                       "the runtime must set CNI_NETNS for " + command});
  }
  auto args = parseCniArgs(envOr(env, "CNI_ARGS"));
  if (!args)
    return printError(out, version, {kInvalidEnvironment, "invalid CNI_ARGS", args.error().str()});
  if (op == enroll::EnrollRequest::ADD && !conf->hasPrevResult()) {
    return printError(out, version,
                      {kInvalidConfig, "prevResult missing",
                       "tollgate-cni is a chained plugin: list it after the interface plugin"});
  }

  Fd netnsFd(netns.empty() ? -1 : ::open(netns.c_str(), O_RDONLY | O_CLOEXEC));
  if (netnsFd.get() < 0 && op != enroll::EnrollRequest::DEL) {
    return printError(
        out, version,
        {kIoFailure, "cannot open network namespace", Error::fromErrno("open " + netns).str()});
  }

  auto req = buildRequest(op, env, *args, *conf);
  req.set_netns_fd_attached(netnsFd.get() >= 0);
  auto reply = exchange(*conf, req, netnsFd.get());

  const std::string pod = podName(req);
  if (!reply) {
    if (op == enroll::EnrollRequest::DEL) {
      err << "tollgate-cni: warning: DEL " << pod << ": " << reply.error().str()
          << " (continuing: DEL must succeed when the agent is away)\n";
      return 0;
    }
    if (conf->failOpen) {
      err << "tollgate-cni: FAIL-OPEN: " << command << " " << pod << ": " << reply.error().str()
          << ": the pod starts WITHOUT egress control because failMode is \"open\"\n";
      if (op == enroll::EnrollRequest::ADD) out << toJson(conf->prevResult) << "\n";
      return 0;
    }
    return printError(out, version,
                      {kAgentUnreachable, "tollgate agent unreachable",
                       command + " " + pod + ": " + reply.error().str()});
  }
  if (!reply->ok()) {
    int code = reply->code() != 0 ? static_cast<int>(reply->code()) : kAgentRefused;
    std::string msg = reply->msg().empty() ? "tollgate agent refused " + command : reply->msg();
    return printError(out, version, {code, msg, reply->details()});
  }
  if (op == enroll::EnrollRequest::ADD) out << toJson(conf->prevResult) << "\n";
  return 0;
}

Environment processEnvironment() {
  Environment env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view key = kv.substr(0, eq);
    if (key.starts_with("CNI_")) env[std::string(key)] = std::string(kv.substr(eq + 1));
  }
  return env;
}

}  // namespace tollgate::cni
