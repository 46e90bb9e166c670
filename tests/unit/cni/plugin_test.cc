#include "cni/plugin.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>

#include "cni/json.h"
#include "common/framing.h"
#include "proto/enroll.pb.h"

namespace tollgate::cni {
namespace {

namespace fs = std::filesystem;

const char* kPrevResult =
    R"({"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"aa:bb:cc:dd:ee:ff",)"
    R"("sandbox":"/proc/self/ns/net"}],"ips":[{"address":"10.244.1.5/24","gateway":"10.244.1.1",)"
    R"("interface":0},{"address":"fd00::5/64","interface":0}],"dns":{}})";

std::string netConf(const std::string& socket, const std::string& extra = "",
                    const std::string& version = "1.0.0") {
  return R"({"cniVersion":")" + version + R"(","name":"lab","type":"tollgate-cni","socket":")" +
         socket + "\"" + extra + R"(,"prevResult":)" + kPrevResult + "}";
}

Environment addEnv(const std::string& command = "ADD") {
  return {{"CNI_COMMAND", command},
          {"CNI_CONTAINERID", "c0ffee"},
          {"CNI_NETNS", "/proc/self/ns/net"},
          {"CNI_IFNAME", "eth0"},
          {"CNI_ARGS",
           "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=client;"
           "K8S_POD_UID=1234"}};
}

// A one-shot enrollment server on a temp unix socket: records the request and whether the fd
// it received is the same netns as ours, then replies with `reply`.
class FakeAgent {
 public:
  explicit FakeAgent(enroll::EnrollReply reply, bool replyAtAll = true)
      : dir_(fs::temp_directory_path() /
             ("tg-cni-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++))) {
    fs::create_directories(dir_);
    path_ = (dir_ / "cni.sock").string();
    auto l = listenUnix(path_);
    EXPECT_TRUE(l.has_value()) << l.error().str();
    listener_ = *l;
    thread_ = std::thread([this, reply, replyAtAll] {
      int c = ::accept(listener_, nullptr, nullptr);
      if (c < 0) return;
      auto frame = recvFrame(c);
      if (frame) {
        request_.ParseFromString(frame->payload);
        gotFd_ = frame->fd >= 0;
        if (frame->fd >= 0) {
          struct stat theirs {
          }, ours{};
          if (::fstat(frame->fd, &theirs) == 0 && ::stat("/proc/self/ns/net", &ours) == 0) {
            sameNetns_ = theirs.st_ino == ours.st_ino && theirs.st_dev == ours.st_dev;
          }
          ::close(frame->fd);
        }
        if (replyAtAll) {
          std::string out;
          reply.SerializeToString(&out);
          (void)sendFrame(c, out);
        } else {
          // Hold the connection open without answering until the client gives up.
          char b;
          (void)::recv(c, &b, 1, 0);
        }
      }
      ::close(c);
    });
  }
  ~FakeAgent() {
    ::shutdown(listener_, SHUT_RDWR);  // wakes accept() when no client came
    finish();
    ::close(listener_);
    fs::remove_all(dir_);
  }
  const std::string& path() const { return path_; }
  // Waits for the server thread; the accessors below are valid afterwards.
  void finish() {
    if (thread_.joinable()) thread_.join();
  }
  const enroll::EnrollRequest& request() const { return request_; }
  bool gotFd() const { return gotFd_; }
  bool sameNetns() const { return sameNetns_; }

 private:
  static inline int counter_ = 0;
  fs::path dir_;
  std::string path_;
  int listener_ = -1;
  std::thread thread_;
  enroll::EnrollRequest request_;
  bool gotFd_ = false;
  bool sameNetns_ = false;
};

enroll::EnrollReply okReply() {
  enroll::EnrollReply r;
  r.set_ok(true);
  return r;
}

std::string unusedSocketPath() {
  return (fs::temp_directory_path() / ("tg-cni-none-" + std::to_string(::getpid()) + ".sock"))
      .string();
}

TEST(CniPlugin, VersionPrintsSupportedVersions) {
  std::ostringstream out, err;
  EXPECT_EQ(run({{"CNI_COMMAND", "VERSION"}}, "", out, err), 0);
  EXPECT_EQ(out.str(),
            "{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\","
            "\"1.0.0\"]}\n");
}

TEST(CniPlugin, AddSendsNetnsFdAndPodAndPassesPrevResultThrough) {
  FakeAgent agent(okReply());
  std::ostringstream out, err;
  int rc = run(addEnv(), netConf(agent.path()), out, err);
  agent.finish();
  EXPECT_EQ(rc, 0) << out.str() << err.str();
  EXPECT_TRUE(agent.gotFd());
  EXPECT_TRUE(agent.sameNetns()) << "the fd received is not /proc/self/ns/net";
  const auto& req = agent.request();
  EXPECT_EQ(req.op(), enroll::EnrollRequest::ADD);
  EXPECT_TRUE(req.netns_fd_attached());
  EXPECT_EQ(req.pod().namespace_(), "default");
  EXPECT_EQ(req.pod().name(), "client");
  EXPECT_EQ(req.pod().uid(), "1234");
  EXPECT_EQ(req.netns_path(), "/proc/self/ns/net");
  EXPECT_EQ(req.container_id(), "c0ffee");
  EXPECT_EQ(req.interface(), "eth0");
  ASSERT_EQ(req.pod_ips_size(), 2);
  EXPECT_EQ(req.pod_ips(0), "10.244.1.5");
  EXPECT_EQ(req.pod_ips(1), "fd00::5");
  EXPECT_EQ(out.str(), std::string(kPrevResult) + "\n");
}

TEST(CniPlugin, AddPassesTheRuntimesCgroupPath) {
  FakeAgent agent(okReply());
  std::ostringstream out, err;
  int rc = run(addEnv(),
               netConf(agent.path(), R"(,"capabilities":{"cgroupPath":true},)"
                                     R"("runtimeConfig":{"cgroupPath":"/kubepods/pod1234"})"),
               out, err);
  agent.finish();
  EXPECT_EQ(rc, 0) << out.str() << err.str();
  EXPECT_EQ(agent.request().cgroup_path(), "/kubepods/pod1234");
  EXPECT_FALSE(parseNetConf(R"({"cniVersion":"1.0.0","runtimeConfig":{"cgroupPath":[1]}})"));
  EXPECT_FALSE(parseNetConf(R"({"cniVersion":"1.0.0","runtimeConfig":"x"})"));
}

TEST(CniPlugin, AddAcceptsCniVersion040) {
  FakeAgent agent(okReply());
  std::ostringstream out, err;
  EXPECT_EQ(run(addEnv(), netConf(agent.path(), "", "0.4.0"), out, err), 0) << out.str();
  agent.finish();
  EXPECT_EQ(agent.request().op(), enroll::EnrollRequest::ADD);
}

TEST(CniPlugin, CniVersion031ListsEnrollButHaveNoCheck) {
  // A primary list declaring 0.3.1 (Calico's manifests): ADD enrolls and passes prevResult on.
  {
    FakeAgent agent(okReply());
    std::ostringstream out, err;
    EXPECT_EQ(run(addEnv(), netConf(agent.path(), "", "0.3.1"), out, err), 0) << out.str();
    agent.finish();
    EXPECT_EQ(agent.request().op(), enroll::EnrollRequest::ADD);
    EXPECT_EQ(out.str(), std::string(kPrevResult) + "\n");
  }
  // CHECK is not part of 0.3.x: refused without asking the agent.
  std::ostringstream out, err;
  EXPECT_EQ(run(addEnv("CHECK"), netConf(unusedSocketPath(), "", "0.3.1"), out, err), 1);
  EXPECT_NE(out.str().find("\"code\":1,"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("CHECK is not defined for cniVersion 0.3.1"), std::string::npos)
      << out.str();
}

TEST(CniPlugin, AddFailsWhenAgentRefuses) {
  enroll::EnrollReply no;
  no.set_ok(false);
  no.set_code(110);
  no.set_msg("redirect install failed");
  no.set_details("nft: Operation not permitted");
  FakeAgent agent(no);
  std::ostringstream out, err;
  EXPECT_EQ(run(addEnv(), netConf(agent.path()), out, err), 1);
  agent.finish();
  EXPECT_EQ(out.str(),
            "{\"cniVersion\":\"1.0.0\",\"code\":110,\"msg\":\"redirect install failed\","
            "\"details\":\"nft: Operation not permitted\"}\n");
}

TEST(CniPlugin, AddRefusalIsNotMaskedByFailOpen) {
  // fail-open covers an unreachable agent, not an agent that says no.
  enroll::EnrollReply no;
  no.set_ok(false);
  FakeAgent agent(no);
  std::ostringstream out, err;
  EXPECT_EQ(run(addEnv(), netConf(agent.path(), R"(,"failMode":"open")"), out, err), 1);
  agent.finish();
  EXPECT_NE(out.str().find("\"code\":191"), std::string::npos) << out.str();
}

TEST(CniPlugin, AddAgentUnreachableFailsClosed) {
  std::ostringstream out, err;
  EXPECT_EQ(run(addEnv(), netConf(unusedSocketPath()), out, err), 1);
  auto parsed = parseJsonObject(out.str());
  ASSERT_TRUE(parsed.has_value()) << out.str();
  EXPECT_EQ((*parsed)["code"].as<int>(), 190);
  EXPECT_EQ((*parsed)["cniVersion"].as<std::string>(), "1.0.0");
  EXPECT_NE((*parsed)["details"].as<std::string>().find("default/client"), std::string::npos);
}

TEST(CniPlugin, AddAgentUnreachableFailOpenPassesPrevResultAndWarns) {
  std::ostringstream out, err;
  EXPECT_EQ(run(addEnv(), netConf(unusedSocketPath(), R"(,"failMode":"open")"), out, err), 0);
  EXPECT_EQ(out.str(), std::string(kPrevResult) + "\n");
  EXPECT_NE(err.str().find("FAIL-OPEN"), std::string::npos) << err.str();
}

TEST(CniPlugin, AddAgentSilentTimesOut) {
  FakeAgent agent(okReply(), /*replyAtAll=*/false);
  std::ostringstream out, err;
  EXPECT_EQ(run(addEnv(), netConf(agent.path(), R"(,"timeoutMs":200)"), out, err), 1);
  agent.finish();
  EXPECT_NE(out.str().find("\"code\":190"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("no reply within 200 ms"), std::string::npos) << out.str();
}

TEST(CniPlugin, DelAgentUnreachableSucceedsWithWarning) {
  auto env = addEnv("DEL");
  env["CNI_NETNS"] = "";
  std::ostringstream out, err;
  EXPECT_EQ(run(env, netConf(unusedSocketPath()), out, err), 0);
  EXPECT_EQ(out.str(), "");
  EXPECT_NE(err.str().find("warning"), std::string::npos);
}

TEST(CniPlugin, DelSendsDel) {
  FakeAgent agent(okReply());
  std::ostringstream out, err;
  EXPECT_EQ(run(addEnv("DEL"), netConf(agent.path()), out, err), 0);
  agent.finish();
  EXPECT_EQ(agent.request().op(), enroll::EnrollRequest::DEL);
  EXPECT_EQ(out.str(), "");
}

TEST(CniPlugin, CheckReportsAgentVerdict) {
  {
    FakeAgent agent(okReply());
    std::ostringstream out, err;
    EXPECT_EQ(run(addEnv("CHECK"), netConf(agent.path()), out, err), 0);
    agent.finish();
    EXPECT_EQ(agent.request().op(), enroll::EnrollRequest::CHECK);
    EXPECT_TRUE(agent.sameNetns());
  }
  {
    enroll::EnrollReply no;
    no.set_ok(false);
    no.set_msg("rules drifted");
    FakeAgent agent(no);
    std::ostringstream out, err;
    EXPECT_EQ(run(addEnv("CHECK"), netConf(agent.path()), out, err), 1);
    agent.finish();
    EXPECT_NE(out.str().find("rules drifted"), std::string::npos);
  }
}

TEST(CniPlugin, BadInputGetsSpecErrors) {
  std::ostringstream out, err;
  EXPECT_EQ(run(addEnv(), "{not json", out, err), 1);
  EXPECT_NE(out.str().find("\"code\":6"), std::string::npos) << out.str();

  out.str("");
  EXPECT_EQ(run(addEnv(), netConf("/x", "", "0.2.0"), out, err), 1);
  EXPECT_NE(out.str().find("\"code\":1,"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("supports 0.3.0, 0.3.1, 0.4.0 and 1.0.0"), std::string::npos)
      << out.str();

  out.str("");
  auto env = addEnv();
  env.erase("CNI_NETNS");
  EXPECT_EQ(run(env, netConf("/x"), out, err), 1);
  EXPECT_NE(out.str().find("\"code\":4,"), std::string::npos) << out.str();

  out.str("");
  EXPECT_EQ(run(addEnv(), netConf("/x", R"(,"failMode":"sometimes")"), out, err), 1);
  EXPECT_NE(out.str().find("failMode"), std::string::npos) << out.str();

  out.str("");
  env = addEnv();
  env["CNI_NETNS"] = "/nonexistent/netns";
  EXPECT_EQ(run(env, netConf("/x"), out, err), 1);
  EXPECT_NE(out.str().find("\"code\":5,"), std::string::npos) << out.str();
}

// Found by the cni_config fuzz target: a default YAML::Node is a defined null, so a netconf with
// no prevResult (or "prevResult": null) went on to enroll the pod with no IPs and printed "null"
// as the ADD result. A chained plugin without a prevResult is a misconfiguration: refused.
TEST(CniPlugin, AddWithoutPrevResultIsRefusedBeforeEnrolling) {
  for (const char* conf :
       {R"({"cniVersion":"1.0.0","name":"lab","type":"tollgate-cni","socket":"/nonexistent"})",
        R"({"cniVersion":"1.0.0","name":"lab","type":"tollgate-cni","socket":"/nonexistent",)"
        R"("prevResult":null})"}) {
    std::ostringstream out, err;
    EXPECT_EQ(run(addEnv(), conf, out, err), 1) << conf;
    EXPECT_NE(out.str().find("prevResult missing"), std::string::npos) << out.str();
    EXPECT_NE(out.str().find("\"code\":7,"), std::string::npos) << out.str();
  }
}

TEST(CniJson, RoundTripKeepsTypesAndOrderAndEscapes) {
  const std::string in = R"({"b":"1","a":1,"c":[true,null,-2.5e3],"d":{"x":"q\"\\\n\u0001"}})";
  auto node = parseJsonObject(in);
  ASSERT_TRUE(node.has_value());
  EXPECT_EQ(toJson(*node), R"({"b":"1","a":1,"c":[true,null,-2.5e3],"d":{"x":"q\"\\\n\u0001"}})");
}

TEST(CniJson, RawControlCharactersAreRefusedLikeJsonDoes) {
  // Found by the cni_config fuzz target: a raw ESC or NUL in a string was accepted, and the
  // escaped form written back no longer parsed.
  auto esc = parseJsonObject(std::string("{\"a\":\"x\x1by\"}"));
  ASSERT_FALSE(esc.has_value());
  EXPECT_NE(esc.error().str().find("control character 0x1b at byte 7"), std::string::npos)
      << esc.error().str();
  EXPECT_FALSE(parseJsonObject(std::string("{\"a\":\"x\0y\"}", 10)).has_value());
  // Whitespace between tokens is fine.
  EXPECT_TRUE(parseJsonObject("{\n\t\"a\": 1\r\n}").has_value());
}

TEST(CniJson, OverlongKeysAreRefusedSoWhatIsWrittenBackParsesAgain) {
  const std::string key(600, 'k');
  auto r = parseJsonObject("{\"a\":{\"" + key + "\":1}}");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().str().find("object key longer than 512 bytes"), std::string::npos)
      << r.error().str();
  // Escapes count as written back: 100 x \u0001 is 600 bytes of JSON.
  std::string escaped;
  for (int i = 0; i < 100; ++i) escaped += "\\u0001";
  EXPECT_FALSE(parseJsonObject("{\"" + escaped + "\":1}").has_value());
  auto ok = parseJsonObject("{\"" + std::string(400, 'k') + "\":1}");
  ASSERT_TRUE(ok.has_value());
  EXPECT_TRUE(parseJsonObject(toJson(*ok)).has_value());
}

TEST(CniArgs, ParsesPairsAndRejectsGarbage) {
  auto a = parseCniArgs("IgnoreUnknown=1;K8S_POD_NAME=client");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->at("K8S_POD_NAME"), "client");
  EXPECT_FALSE(parseCniArgs("novalue").has_value());
}

}  // namespace
}  // namespace tollgate::cni
