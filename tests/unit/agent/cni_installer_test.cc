#include "agent/cni_installer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "agent/install_cni_command.h"
#include "cni/json.h"

namespace tollgate::agent {
namespace {

namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(TOLLGATE_SOURCE_DIR) / "tests/fixtures/cni";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::set<std::string> listDir(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

struct stat statOf(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st;
}

// Sets a file's mtime to a fixed past instant, so "not rewritten" is checkable even on
// filesystems with coarse timestamps.
void ageFile(const fs::path& p) {
  timespec times[2] = {{1'000'000'000, 0}, {1'000'000'000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, 0), 0);
}

class CniInstallerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tg-cni-installer-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    confDir_ = root_ / "net.d";
    binDir_ = root_ / "bin";
    fs::create_directories(confDir_);
    plugin_ = root_ / "tollgate-cni.src";
    spit(plugin_,
         "\x7f"
         "ELF fake tollgate-cni v1");
  }
  void TearDown() override { fs::remove_all(root_); }

  CniInstallerOptions options() const {
    CniInstallerOptions o;
    o.cniBinDir = binDir_.string();
    o.cniConfDir = confDir_.string();
    o.pluginBinary = plugin_.string();
    o.pluginConfig = defaultPluginConfig();
    return o;
  }

  void copyFixture(const std::string& name) { fs::copy_file(kFixtures / name, confDir_ / name); }

  fs::path root_, confDir_, binDir_, plugin_;
};

// ---- golden files ------------------------------------------------------------------------------

struct Golden {
  std::string input;     // fixture copied into the conf dir
  std::string output;    // file holding the chained list afterwards
  std::string expected;  // fixture with the expected bytes
};

class CniInstallerGoldenTest : public CniInstallerTest,
                               public ::testing::WithParamInterface<Golden> {};

TEST_P(CniInstallerGoldenTest, InstallWritesExpectedBytes) {
  copyFixture(GetParam().input);
  CniInstaller installer(options());
  auto r = installer.install();
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_TRUE(r->confWritten);
  EXPECT_EQ(r->confFile, (confDir_ / GetParam().output).string());
  std::string got = slurp(confDir_ / GetParam().output);
  // TOLLGATE_UPDATE_GOLDEN=1 rewrites the expected files; review the diff before committing it.
  if (std::getenv("TOLLGATE_UPDATE_GOLDEN")) spit(kFixtures / GetParam().expected, got);
  EXPECT_EQ(got, slurp(kFixtures / GetParam().expected));
  if (GetParam().input != GetParam().output) {
    EXPECT_EQ(r->convertedFrom, (confDir_ / GetParam().input).string());
    EXPECT_FALSE(fs::exists(confDir_ / GetParam().input)) << "the .conf would stay primary";
  }
  // What the runtime reads: a list whose last plugin is ours, in our configured form.
  auto doc = cni::parseJsonObject(got);
  ASSERT_TRUE(doc);
  const YAML::Node& plugins = (*doc)["plugins"];
  ASSERT_TRUE(plugins.IsSequence());
  EXPECT_EQ(cni::toJson(plugins[plugins.size() - 1]), defaultPluginConfig());
}

TEST_P(CniInstallerGoldenTest, SecondInstallDoesNotRewrite) {
  copyFixture(GetParam().input);
  CniInstaller installer(options());
  ASSERT_TRUE(installer.install());
  const fs::path out = confDir_ / GetParam().output;
  ageFile(out);
  auto before = statOf(out);
  auto files = listDir(confDir_);
  auto r = installer.install();
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_FALSE(r->confWritten);
  EXPECT_FALSE(r->binaryWritten);
  auto after = statOf(out);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(slurp(out), slurp(kFixtures / GetParam().expected));
  EXPECT_EQ(listDir(confDir_), files);
}

TEST_P(CniInstallerGoldenTest, UninstallPutsOriginalBytesBack) {
  copyFixture(GetParam().input);
  // A primary CNI that keeps its file private (it may hold credentials) keeps it so.
  ASSERT_EQ(::chmod((confDir_ / GetParam().input).c_str(), 0600), 0);
  CniInstaller installer(options());
  ASSERT_TRUE(installer.install());
  EXPECT_EQ(statOf(confDir_ / GetParam().output).st_mode & 07777, 0600u);
  auto r = installer.uninstall();
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->filesRestored, std::vector<std::string>{(confDir_ / GetParam().input).string()});
  EXPECT_TRUE(r->filesChanged.empty());
  EXPECT_EQ(statOf(confDir_ / GetParam().input).st_mode & 07777, 0600u);
  EXPECT_TRUE(r->binaryRemoved);
  // Exactly the original file, byte for byte; no backup, temp or converted file left behind.
  EXPECT_EQ(listDir(confDir_), std::set<std::string>{GetParam().input});
  EXPECT_EQ(slurp(confDir_ / GetParam().input), slurp(kFixtures / GetParam().input));
  EXPECT_TRUE(listDir(binDir_).empty());
}

TEST_P(CniInstallerGoldenTest, UninstallIsIdempotentAndReinstallGivesTheSameBytes) {
  copyFixture(GetParam().input);
  CniInstaller installer(options());
  ASSERT_TRUE(installer.install());
  ASSERT_TRUE(installer.uninstall());
  const fs::path in = confDir_ / GetParam().input;
  ageFile(in);
  auto before = statOf(in);

  // A second uninstall finds nothing of ours: it touches nothing and reports nothing.
  auto again = installer.uninstall();
  ASSERT_TRUE(again) << again.error().str();
  EXPECT_TRUE(again->filesRestored.empty());
  EXPECT_TRUE(again->filesChanged.empty());
  EXPECT_FALSE(again->binaryRemoved);
  auto after = statOf(in);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(listDir(confDir_), std::set<std::string>{GetParam().input});
  EXPECT_EQ(slurp(in), slurp(kFixtures / GetParam().input));

  // Install after uninstall (an agent upgrade re-runs its init container): the same bytes as the
  // first time, and uninstall still brings the original back.
  auto r = installer.install();
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(slurp(confDir_ / GetParam().output), slurp(kFixtures / GetParam().expected));
  ASSERT_TRUE(installer.uninstall());
  EXPECT_EQ(listDir(confDir_), std::set<std::string>{GetParam().input});
  EXPECT_EQ(slurp(in), slurp(kFixtures / GetParam().input));
  EXPECT_TRUE(listDir(binDir_).empty());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CniInstallerGoldenTest,
                         ::testing::Values(Golden{"10-calico.conflist", "10-calico.conflist",
                                                  "10-calico.conflist.expected"},
                                           Golden{"10-bridge.conflist", "10-bridge.conflist",
                                                  "10-bridge.conflist.expected"},
                                           Golden{"10-flannel.conf", "10-flannel.conflist",
                                                  "10-flannel.conflist.expected"}),
                         [](const auto& info) {
                           std::string n = info.param.input.substr(3);
                           for (auto& c : n) {
                             if (c == '.' || c == '-') c = '_';
                           }
                           return n;
                         });

// ---- which file, and keeping it chained --------------------------------------------------------

TEST_F(CniInstallerTest, PrimaryIsLexicographicallyFirstConfigFile) {
  spit(confDir_ / "99-last.conflist", slurp(kFixtures / "10-bridge.conflist"));
  copyFixture("10-calico.conflist");
  spit(confDir_ / "05-cilium.json", slurp(kFixtures / "10-bridge.conflist"));
  spit(confDir_ / "00-notes.txt", "not a CNI file");
  spit(confDir_ / "01-old.conflist.bak", "{");
  fs::create_directories(confDir_ / "02-dir.conflist");
  auto primary = CniInstaller::primaryConfFile(confDir_.string());
  ASSERT_TRUE(primary);
  EXPECT_EQ(*primary, (confDir_ / "05-cilium.json").string());

  CniInstaller installer(options());
  auto r = installer.install();
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->confFile, (confDir_ / "05-cilium.json").string());
  // A .json holding a list is rewritten in place; nothing else is touched.
  EXPECT_EQ(slurp(confDir_ / "05-cilium.json"), slurp(kFixtures / "10-bridge.conflist.expected"));
  EXPECT_EQ(slurp(confDir_ / "10-calico.conflist"), slurp(kFixtures / "10-calico.conflist"));
  EXPECT_EQ(slurp(confDir_ / "99-last.conflist"), slurp(kFixtures / "10-bridge.conflist"));

  auto none = CniInstaller::primaryConfFile((root_ / "missing").string());
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, "");
}

TEST_F(CniInstallerTest, NoConfigurationIsAnErrorNamingTheDir) {
  CniInstaller installer(options());
  auto r = installer.install();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find(confDir_.string()), std::string::npos) << r.error().str();
  EXPECT_NE(r.error().str().find("primary CNI"), std::string::npos) << r.error().str();
}

TEST_F(CniInstallerTest, ReconcileReinsertsAfterPrimaryRewritesItsFile) {
  copyFixture("10-calico.conflist");
  CniInstaller installer(options());
  ASSERT_TRUE(installer.install());
  // Calico's install container runs again and writes its own version.
  spit(confDir_ / "10-calico.conflist", slurp(kFixtures / "10-calico.conflist"));
  auto r = installer.reconcileOnce();
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_TRUE(r->confWritten);
  EXPECT_EQ(slurp(confDir_ / "10-calico.conflist"),
            slurp(kFixtures / "10-calico.conflist.expected"));
  // Nothing changed since: the next pass is a no-op.
  auto again = installer.reconcileOnce();
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->confWritten);
}

TEST_F(CniInstallerTest, ReconcileChainsANewEarlierFileToo) {
  copyFixture("10-calico.conflist");
  CniInstaller installer(options());
  ASSERT_TRUE(installer.install());
  spit(confDir_ / "05-cilium.conflist", slurp(kFixtures / "10-bridge.conflist"));
  auto r = installer.reconcileOnce();
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->confFile, (confDir_ / "05-cilium.conflist").string());
  EXPECT_EQ(slurp(confDir_ / "05-cilium.conflist"),
            slurp(kFixtures / "10-bridge.conflist.expected"));
  EXPECT_EQ(slurp(confDir_ / "10-calico.conflist"),
            slurp(kFixtures / "10-calico.conflist.expected"));

  // Uninstall takes our entry out of both, each back to its original bytes.
  auto u = installer.uninstall();
  ASSERT_TRUE(u) << u.error().str();
  EXPECT_EQ(u->filesRestored.size(), 2u);
  EXPECT_EQ(slurp(confDir_ / "05-cilium.conflist"), slurp(kFixtures / "10-bridge.conflist"));
  EXPECT_EQ(slurp(confDir_ / "10-calico.conflist"), slurp(kFixtures / "10-calico.conflist"));
  EXPECT_EQ(listDir(confDir_), (std::set<std::string>{"05-cilium.conflist", "10-calico.conflist"}));
}

TEST_F(CniInstallerTest, ReplacesAnExistingEntryInsteadOfAddingOne) {
  spit(confDir_ / "10-x.conflist",
       R"({"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"},)"
       R"({"type":"tollgate-cni","socket":"/old.sock"},{"type":"portmap"}]})");
  auto o = options();
  o.pluginConfig = defaultPluginConfig("/run/tollgate/cni.sock", "open");
  CniInstaller installer(o);
  auto r = installer.install();
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_TRUE(r->confWritten);
  auto doc = cni::parseJsonObject(slurp(confDir_ / "10-x.conflist"));
  ASSERT_TRUE(doc);
  EXPECT_EQ(cni::toJson(*doc),
            R"({"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"},{"type":"portmap"},)"
            R"({"type":"tollgate-cni","socket":"/run/tollgate/cni.sock","failMode":"open",)"
            R"("capabilities":{"cgroupPath":true}}]})");
  // No pristine original existed (the entry was already there), so uninstall rewrites.
  auto u = installer.uninstall();
  ASSERT_TRUE(u) << u.error().str();
  EXPECT_TRUE(u->filesRestored.empty());
  EXPECT_EQ(u->filesChanged, std::vector<std::string>{(confDir_ / "10-x.conflist").string()});
  auto after = cni::parseJsonObject(slurp(confDir_ / "10-x.conflist"));
  ASSERT_TRUE(after);
  EXPECT_EQ(
      cni::toJson(*after),
      R"({"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"},{"type":"portmap"}]})");
}

TEST_F(CniInstallerTest, UninstallAfterOtherChangesRemovesOnlyOurEntry) {
  copyFixture("10-calico.conflist");
  CniInstaller installer(options());
  ASSERT_TRUE(installer.install());
  // Someone else edits the chained file after us: their change must survive uninstall.
  std::string chained = slurp(confDir_ / "10-calico.conflist");
  auto pos = chained.find("\"mtu\": 0");
  ASSERT_NE(pos, std::string::npos);
  chained.replace(pos, 8, "\"mtu\": 1440");
  spit(confDir_ / "10-calico.conflist", chained);
  auto u = installer.uninstall();
  ASSERT_TRUE(u) << u.error().str();
  EXPECT_TRUE(u->filesRestored.empty());
  EXPECT_EQ(u->filesChanged, std::vector<std::string>{(confDir_ / "10-calico.conflist").string()});
  std::string got = slurp(confDir_ / "10-calico.conflist");
  EXPECT_EQ(got.find("tollgate-cni"), std::string::npos) << got;
  EXPECT_NE(got.find("\"mtu\": 1440"), std::string::npos) << got;
  EXPECT_EQ(listDir(confDir_), std::set<std::string>{"10-calico.conflist"}) << "stale backup";
}

TEST_F(CniInstallerTest, InvalidJsonIsAnErrorNamingTheFileAndNothingIsWritten) {
  const std::string broken =
      "{\n  \"cniVersion\": \"0.3.1\",\n  \"plugins\": [ {\"type\": \"calico\"\n";
  spit(confDir_ / "05-calico.conflist", broken);
  copyFixture("10-bridge.conflist");  // later: must not be chained instead
  CniInstaller installer(options());
  auto r = installer.install();
  ASSERT_FALSE(r);
  const std::string want =
      "cni install: " + (confDir_ / "05-calico.conflist").string() + ": not valid JSON: ";
  EXPECT_TRUE(r.error().str().starts_with(want)) << r.error().str();
  EXPECT_EQ(slurp(confDir_ / "05-calico.conflist"), broken);
  EXPECT_EQ(slurp(confDir_ / "10-bridge.conflist"), slurp(kFixtures / "10-bridge.conflist"));
  EXPECT_EQ(listDir(confDir_), (std::set<std::string>{"05-calico.conflist", "10-bridge.conflist"}));
  EXPECT_FALSE(fs::exists(binDir_ / "tollgate-cni")) << "binary written despite the error";
}

TEST_F(CniInstallerTest, StructurallyWrongFilesAreErrors) {
  spit(confDir_ / "10-a.conflist", R"({"cniVersion":"1.0.0","plugins":{"type":"bridge"}})");
  CniInstaller installer(options());
  auto r = installer.install();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("10-a.conflist: \"plugins\" is not a list"), std::string::npos)
      << r.error().str();
  spit(confDir_ / "10-a.conflist", R"({"cniVersion":"1.0.0","name":"a"})");
  r = installer.install();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("10-a.conflist: neither"), std::string::npos) << r.error().str();
  spit(confDir_ / "10-a.conflist", R"([1, 2])");
  r = installer.install();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("10-a.conflist: not valid JSON"), std::string::npos);
}

TEST_F(CniInstallerTest, ConversionNeverOverwritesSomeoneElsesConflist) {
  copyFixture("10-flannel.conf");
  spit(confDir_ / "10-flannel.conflist", slurp(kFixtures / "10-bridge.conflist"));
  CniInstaller installer(options());
  auto r = installer.install();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("10-flannel.conflist: that file exists"), std::string::npos)
      << r.error().str();
  EXPECT_EQ(slurp(confDir_ / "10-flannel.conflist"), slurp(kFixtures / "10-bridge.conflist"));
  EXPECT_EQ(slurp(confDir_ / "10-flannel.conf"), slurp(kFixtures / "10-flannel.conf"));
}

TEST_F(CniInstallerTest, ConvertsAgainWhenThePrimaryRewritesItsConf) {
  copyFixture("10-flannel.conf");
  CniInstaller installer(options());
  ASSERT_TRUE(installer.install());
  // Flannel's install container writes its .conf again; it sorts before our .conflist.
  std::string conf = slurp(kFixtures / "10-flannel.conf");
  conf.replace(conf.find("1450"), 4, "1400");
  spit(confDir_ / "10-flannel.conf", conf);
  auto r = installer.reconcileOnce();
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->convertedFrom, (confDir_ / "10-flannel.conf").string());
  std::string got = slurp(confDir_ / "10-flannel.conflist");
  EXPECT_NE(got.find("\"mtu\": 1400"), std::string::npos) << got;
  // And uninstall gives back flannel's newest file.
  ASSERT_TRUE(installer.uninstall());
  EXPECT_EQ(listDir(confDir_), std::set<std::string>{"10-flannel.conf"});
  EXPECT_EQ(slurp(confDir_ / "10-flannel.conf"), conf);
}

// ---- the binary --------------------------------------------------------------------------------

TEST_F(CniInstallerTest, BinaryCopyIsAtomicAndIdempotent) {
  copyFixture("10-bridge.conflist");
  mode_t oldMask = ::umask(077);  // the mode must not depend on it
  CniInstaller installer(options());
  auto r = installer.install();
  ::umask(oldMask);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_TRUE(r->binaryWritten);
  const fs::path dst = binDir_ / "tollgate-cni";
  EXPECT_EQ(slurp(dst), slurp(plugin_));
  auto first = statOf(dst);
  EXPECT_EQ(first.st_mode & 07777, 0755u);
  EXPECT_EQ(listDir(binDir_), std::set<std::string>{"tollgate-cni"}) << "temp file left";

  ageFile(dst);
  auto again = installer.install();
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->binaryWritten);
  auto second = statOf(dst);
  EXPECT_EQ(second.st_ino, first.st_ino);
  EXPECT_EQ(second.st_mtim.tv_sec, 1'000'000'000);

  // A new version replaces the file by rename: a new inode, never the old one rewritten in place
  // (a runtime exec'ing it mid-copy would run a torn binary).
  spit(plugin_,
       "\x7f"
       "ELF fake tollgate-cni v2");
  auto upgrade = installer.install();
  ASSERT_TRUE(upgrade);
  EXPECT_TRUE(upgrade->binaryWritten);
  auto third = statOf(dst);
  EXPECT_NE(third.st_ino, first.st_ino);
  EXPECT_EQ(third.st_mode & 07777, 0755u);
  EXPECT_EQ(slurp(dst), slurp(plugin_));
}

TEST_F(CniInstallerTest, UninstallKeepsABinaryThatIsNotOurs) {
  copyFixture("10-bridge.conflist");
  CniInstaller installer(options());
  ASSERT_TRUE(installer.install());
  spit(binDir_ / "tollgate-cni", "someone else's build");
  auto u = installer.uninstall();
  ASSERT_TRUE(u) << u.error().str();
  EXPECT_FALSE(u->binaryRemoved);
  EXPECT_EQ(slurp(binDir_ / "tollgate-cni"), "someone else's build");
}

TEST_F(CniInstallerTest, BadPluginConfigIsReported) {
  copyFixture("10-bridge.conflist");
  auto o = options();
  o.pluginConfig = R"({"type":"../evil"})";
  CniInstaller installer(o);
  auto r = installer.install();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("plain binary name"), std::string::npos) << r.error().str();
  EXPECT_EQ(slurp(confDir_ / "10-bridge.conflist"), slurp(kFixtures / "10-bridge.conflist"));
}

// ---- watch -------------------------------------------------------------------------------------

TEST_F(CniInstallerTest, WatchReinsertsAfterRewriteAndStops) {
  copyFixture("10-calico.conflist");
  CniInstaller installer(options());
  ASSERT_TRUE(installer.install());

  int ifd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  ASSERT_GE(ifd, 0);
  ASSERT_GE(::inotify_add_watch(ifd, confDir_.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE), 0);

  Status result;
  std::thread watcher([&] { result = installer.watch(); });
  const std::string expected = slurp(kFixtures / "10-calico.conflist.expected");
  const fs::path file = confDir_ / "10-calico.conflist";
  spit(file, slurp(kFixtures / "10-calico.conflist"));  // the primary CNI rewrites its file

  // Wait for the file to be chained again: on every write in the dir, look at it.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  bool chained = false;
  while (!chained && std::chrono::steady_clock::now() < deadline) {
    pollfd p{ifd, POLLIN, 0};
    ::poll(&p, 1, 1000);
    char buf[4096];
    while (::read(ifd, buf, sizeof buf) > 0) {
    }
    chained = slurp(file) == expected;
  }
  installer.stop();
  watcher.join();
  ::close(ifd);
  EXPECT_TRUE(chained) << slurp(file);
  EXPECT_TRUE(result) << result.error().str();
}

// ---- the subcommand ----------------------------------------------------------------------------

TEST_F(CniInstallerTest, CommandInstallsAndUninstalls) {
  copyFixture("10-flannel.conf");
  std::ostringstream out, err;
  int rc = runCniInstallCommand(
      {"install-cni", "--cni-bin-dir", binDir_.string(), "--cni-conf-dir=" + confDir_.string(),
       "--plugin", plugin_.string(), "--socket", "/var/run/tg.sock", "--fail-mode", "open"},
      out, err);
  ASSERT_EQ(rc, 0) << err.str();
  EXPECT_NE(err.str().find("WARNING"), std::string::npos) << "fail-open must be loud";
  auto doc = cni::parseJsonObject(slurp(confDir_ / "10-flannel.conflist"));
  ASSERT_TRUE(doc);
  const YAML::Node& plugins = (*doc)["plugins"];
  EXPECT_EQ(cni::toJson(plugins[1]),
            R"({"type":"tollgate-cni","socket":"/var/run/tg.sock","failMode":"open",)"
            R"("capabilities":{"cgroupPath":true}})");
  EXPECT_EQ(slurp(binDir_ / "tollgate-cni"), slurp(plugin_));

  std::ostringstream out2, err2;
  rc = runCniInstallCommand({"uninstall-cni", "--cni-bin-dir", binDir_.string(), "--cni-conf-dir",
                             confDir_.string(), "--plugin", plugin_.string()},
                            out2, err2);
  ASSERT_EQ(rc, 0) << err2.str();
  EXPECT_EQ(slurp(confDir_ / "10-flannel.conf"), slurp(kFixtures / "10-flannel.conf"));
  EXPECT_FALSE(fs::exists(binDir_ / "tollgate-cni"));
}

TEST_F(CniInstallerTest, CommandWarnsWhenThePrimaryDeclaresAVersionThePluginRejects) {
  // A list from before chaining existed (cniVersion 0.2.0): tollgate-cni would fail every ADD.
  auto old = slurp(kFixtures / "10-calico.conflist");
  auto at = old.find("\"0.3.1\"");
  ASSERT_NE(at, std::string::npos);
  std::ofstream(confDir_ / "10-calico.conflist", std::ios::binary)
      << old.replace(at, 7, "\"0.2.0\"");
  std::ostringstream out, err;
  ASSERT_EQ(
      runCniInstallCommand({"install-cni", "--cni-bin-dir", binDir_.string(), "--cni-conf-dir",
                            confDir_.string(), "--plugin", plugin_.string()},
                           out, err),
      0)
      << err.str();
  EXPECT_NE(err.str().find("WARNING: " + (confDir_ / "10-calico.conflist").string() +
                           " declares cniVersion 0.2.0"),
            std::string::npos)
      << err.str();

  // Calico's own 0.3.1 is accepted: installed without a warning.
  fs::remove_all(confDir_);
  fs::create_directories(confDir_);
  copyFixture("10-calico.conflist");
  std::ostringstream out1, err1;
  ASSERT_EQ(
      runCniInstallCommand({"install-cni", "--cni-bin-dir", binDir_.string(), "--cni-conf-dir",
                            confDir_.string(), "--plugin", plugin_.string()},
                           out1, err1),
      0)
      << err1.str();
  EXPECT_EQ(err1.str().find("WARNING"), std::string::npos) << err1.str();
  EXPECT_EQ(slurp(confDir_ / "10-calico.conflist"),
            slurp(kFixtures / "10-calico.conflist.expected"));

  fs::remove_all(confDir_);
  fs::create_directories(confDir_);
  copyFixture("10-bridge.conflist");  // cniVersion 1.0.0
  std::ostringstream out2, err2;
  ASSERT_EQ(
      runCniInstallCommand({"install-cni", "--cni-bin-dir", binDir_.string(), "--cni-conf-dir",
                            confDir_.string(), "--plugin", plugin_.string()},
                           out2, err2),
      0)
      << err2.str();
  EXPECT_EQ(err2.str().find("WARNING"), std::string::npos) << err2.str();
}

TEST_F(CniInstallerTest, CommandRejectsBadUsage) {
  std::ostringstream out, err;
  EXPECT_EQ(runCniInstallCommand({"install-cni", "--fail-mode", "maybe"}, out, err), 2);
  EXPECT_NE(err.str().find("must be \"closed\" or \"open\""), std::string::npos) << err.str();
  EXPECT_EQ(runCniInstallCommand({"uninstall-cni", "--watch"}, out, err), 2);
  EXPECT_EQ(runCniInstallCommand({"install-cni", "--socket"}, out, err), 2);
  EXPECT_EQ(runCniInstallCommand({"run"}, out, err), 2);
  EXPECT_EQ(runCniInstallCommand({"install-cni", "--help"}, out, err), 0);
  EXPECT_NE(out.str().find("--cni-conf-dir"), std::string::npos);
  // A runtime failure is exit 1 and names the dir.
  std::ostringstream out2, err2;
  EXPECT_EQ(runCniInstallCommand({"install-cni", "--cni-conf-dir", confDir_.string(),
                                  "--cni-bin-dir", binDir_.string(), "--plugin", plugin_.string()},
                                 out2, err2),
            1);
  EXPECT_NE(err2.str().find(confDir_.string()), std::string::npos) << err2.str();
}

TEST(CniJsonPrettyTest, EmptyContainersAndNesting) {
  auto doc = cni::parseJsonObject(R"({"a":{},"b":[],"c":[[1,"2"]],"d":"x\"y","e":null})");
  ASSERT_TRUE(doc);
  EXPECT_EQ(cni::toJsonPretty(*doc),
            "{\n  \"a\": {},\n  \"b\": [],\n  \"c\": [\n    [\n      1,\n      \"2\"\n    ]\n  ],\n"
            "  \"d\": \"x\\\"y\",\n  \"e\": null\n}");
}

}  // namespace
}  // namespace tollgate::agent
