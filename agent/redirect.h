#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/netns.h"
#include "agent/nft_table.h"
#include "agent/rule_report.h"
#include "common/error.h"

namespace tollgate::agent {

struct RedirectParams;

// A pod as a redirect installer sees it: its netns (what the nftables mode programs) and its
// cgroup (where the eBPF mode attaches). A netns alone converts to a target: the nftables mode
// needs nothing else.
struct PodTarget {
  PodTarget(const Netns& ns) : netns(ns) {}  // NOLINT(google-explicit-constructor)
  PodTarget(const Netns& ns, std::string podKey, std::string cgroupPath)
      : netns(ns), key(std::move(podKey)), cgroup(std::move(cgroupPath)) {}

  const Netns& netns;
  std::string key;     // "<ns>_<name>", the pod's state key
  std::string cgroup;  // the runtime's cgroupPath (absolute, or relative to the cgroup2 mount)
};

// Puts a pod's egress under the proxy's control: nftables in the pod's netns (NftRedirect), or
// eBPF programs on the pod's cgroup (BpfRedirect, agent/bpf_redirect.h).
class RedirectInstaller {
 public:
  virtual ~RedirectInstaller() = default;

  /// "nftables" or "ebpf", as TollgateConfig.redirectMode and the metrics name it.
  virtual const char* mode() const = 0;

  /// Installs the redirect for the pod, atomically replacing a previous installation.
  /// @return an error with context ("nft: install inet tollgate in netns <pod>: ...")
  virtual Status install(const PodTarget& pod) const = 0;

  /// Removes the redirect; succeeds when nothing is installed.
  virtual Status remove(const PodTarget& pod) const = 0;

  /// Compares what is installed for the pod with what install() would put there.
  /// @return the differences (empty when in sync), or an error when it cannot be read
  virtual Result<Drift> verify(const PodTarget& pod) const = 0;

  /// Reads the drop/accept counters by name (for metrics): drop_tcp, drop_udp, ...
  virtual Result<Counters> counters(const PodTarget& pod) const = 0;

  /// What is installed for the pod, as its tool prints it (tollgatectl rules).
  /// @return the listing, nullopt when nothing is installed, or an error when unreadable
  virtual Result<std::optional<std::string>> listing(const PodTarget& pod) const = 0;

  /// What install() puts there, in the same form as listing(). Two installers with the same
  /// expected() install the same thing.
  virtual std::string expected() const = 0;

  virtual const RedirectParams& params() const = 0;

  /// The cgroup a process must run in for this redirect to see it as the pod (tollgatectl
  /// verify's probes): empty when the netns alone decides (nftables).
  virtual Result<std::string> probeCgroup(const PodTarget& /*pod*/) const { return std::string(); }
};

// Which destinations reached over the loopback device skip the redirect.
enum class LoopbackMode {
  // Everything the kernel routes over lo: 127.0.0.0/8, ::1 and the pod's own addresses. A pod
  // talking to itself never meets the proxy.
  AllLocal,
  // Only 127.0.0.0/8 and ::1; TCP to the pod's own (non-loopback) addresses goes to the proxy.
  LoopbackOnly,
};

struct RedirectParams {
  uint16_t proxyPort = 15001;
  uint16_t dnsPort = 53;
  // DNS (udp and tcp to dnsPort) is allowed only to these addresses, without redirection.
  std::vector<std::string> resolversV4;
  std::vector<std::string> resolversV6;
  // Non-zero: DNS (udp and tcp to dnsPort, ANY address) is redirected to the DNS proxy on this
  // port instead, DNS over TLS (tcp/udp 853) is dropped and counted (drop_dot), and the
  // resolver lists above are not used. Zero: the allow-to-resolvers rules.
  uint16_t dnsProxyPort = 0;
  // Non-zero: udp/443 (QUIC) is redirected to this port, where a read-only socket parses QUIC
  // Initials for telemetry and never forwards; counted as drop_udp. Zero: dropped in the filter.
  uint16_t quicPort = 0;
  // Packets of the proxy's own sockets carry this mark and skip every chain. Must not be 0: a
  // zero mark would match every unmarked packet and open the pod.
  uint32_t mark = 0x7467;
  LoopbackMode loopback = LoopbackMode::AllLocal;
};

// Names of the table and its named counters (the counters() keys). nft 1.0.6 refuses keywords
// such as "udp" or "icmp" as object names, even quoted, hence the "drop_" prefix.
inline constexpr const char* kRedirectTable = "tollgate";
inline constexpr const char* kCounterDns = "dns";
inline constexpr const char* kCounterDropUdp = "drop_udp";
inline constexpr const char* kCounterDropIcmp = "drop_icmp";
inline constexpr const char* kCounterDropTcp = "drop_tcp";
inline constexpr const char* kCounterDropOther = "drop_other";
inline constexpr const char* kCounterDropDot = "drop_dot";  // only with dnsProxyPort

// The nftables redirect: one table `inet tollgate` per pod netns (exact text in docs/rules.md).
class NftRedirect final : public RedirectInstaller {
 public:
  // Validates params (addresses, ports, mark) and renders the table once.
  static Result<NftRedirect> create(const RedirectParams& params);

  const char* mode() const override { return "nftables"; }
  Status install(const PodTarget& pod) const override;
  Status remove(const PodTarget& pod) const override;
  Result<Drift> verify(const PodTarget& pod) const override;
  Result<Counters> counters(const PodTarget& pod) const override;
  Result<std::optional<std::string>> listing(const PodTarget& pod) const override {
    return table_.list(pod.netns);
  }
  std::string expected() const override { return table_.text(); }

  const RedirectParams& params() const override { return params_; }
  // The table as `nft list table inet tollgate` prints it (stateless).
  const std::string& ruleset() const { return table_.text(); }

 private:
  NftRedirect(RedirectParams params, std::string text)
      : params_(std::move(params)), table_("inet", kRedirectTable, std::move(text)) {}

  RedirectParams params_;
  NftTable table_;
};

}  // namespace tollgate::agent
