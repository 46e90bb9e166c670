// libFuzzer target for what tollgate-cni reads from the container runtime: the first line of the
// input is CNI_ARGS, the rest is the network configuration JSON from stdin. Whatever the bytes,
// parseCniArgs and parseNetConf return a value or an error with a message (no crash, no
// exception, no sanitizer report), and an accepted configuration goes through what ADD does with
// it: the pod IPs for the agent and the prevResult written back as JSON.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "cni/json.h"
#include "cni/plugin.h"

namespace cni = tollgate::cni;

namespace {

// Names the property that broke, so a crash artifact says what it found.
void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "cni_config_fuzz: property failed: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const std::string_view cniArgs = input.substr(0, nl);
  const std::string_view stdinText = nl == std::string_view::npos ? "" : input.substr(nl + 1);

  if (auto args = cni::parseCniArgs(cniArgs); args) {
    for (const auto& [k, v] : *args) check(!k.empty() && k.find(';') == std::string::npos, "CNI_ARGS key non-empty, no ';'");
  } else {
    check(!args.error().str().empty(), "CNI_ARGS error has a message");
  }

  auto conf = cni::parseNetConf(stdinText);
  if (!conf) {
    check(!conf.error().str().empty(), "config error has a message");
    return 0;
  }
  check(!conf->cniVersion.empty() && conf->timeoutMs > 0, "accepted config has version and timeout");
  if (conf->hasPrevResult()) {
    for (const auto& ip : cni::podIpsFromResult(conf->prevResult)) {
      check(ip.find('/') == std::string::npos, "pod IP without prefix length");
    }
    // ADD prints the prevResult back to the runtime: it must be JSON that parses again.
    const std::string out = cni::toJson(conf->prevResult);
    auto again = cni::parseJsonObject(out);
    if (!again) std::fprintf(stderr, "written back: %s\nerror: %s\n", out.c_str(), again.error().str().c_str());
    check(again.has_value(), "prevResult written back parses again");
    (void)cni::toJsonPretty(conf->prevResult);
  }
  return 0;
}
