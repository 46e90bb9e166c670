#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/rule_report.h"
#include "common/error.h"

namespace tollgate::agent {

// One way a pod could try to get around the node (tollgatectl verify), as a probe run from inside
// the pod's netns, and the judgement of what became of it. The probe only sends: whether it was
// refused is read from the agent's own records (pod and fence counters, the event journal), never
// from a peer answering, because probes go to an address nothing may answer.

// Who the probe runs as. Credentials are changed for the probing thread only (raw setresuid /
// capset: per-task in the kernel), in a thread that has entered the pod's netns and then exits.
enum class ProbeUser {
  Pod,           // the pod's uid (no capabilities)
  ProxyUid,      // uid 1337: Istio's proxy uid, which sidecar rules exempt
  RootNoCaps,    // uid 0 with every capability dropped (a default container's root, minus NET_RAW)
  RootNetAdmin,  // uid 0 with CAP_NET_ADMIN and CAP_NET_RAW added (a pod granted them)
};
std::string toString(ProbeUser u);

enum class ProbeKind {
  Tcp,          // connect(), closed as soon as it completes: nothing is sent on it
  TcpFastOpen,  // sendto(MSG_FASTOPEN) with one byte that decides nothing
  Udp,          // sendto() of one datagram, unconnected
  Dns,          // a DNS query (udp) for verify.tollgate.invalid, answer awaited briefly
  IcmpEcho,     // echo request: a ping socket for unprivileged users, a raw socket for root
  RawIp,        // a raw socket of IP protocol 253 (RFC 3692 experimentation)
};

struct Probe {
  std::string vector;    // what the line is called: "tcp", "udp", "so-mark", "dot", ...
  ProbeUser user = ProbeUser::Pod;
  ProbeKind kind = ProbeKind::Tcp;
  std::string address;   // destination, IPv4, IPv6 or IPv4-mapped IPv6 ("::ffff:a.b.c.d")
  uint16_t port = 0;
  uint32_t mark = 0;     // non-zero: SO_MARK before sending (needs CAP_NET_ADMIN)
  // The destination is on the pod's loopback: staying there is the expected outcome.
  bool loopback = false;
  // The proxy must take this one itself and refuse it (its own port): a journal entry that is
  // anything but a deny fails.
  bool proxyMustRefuse = false;
  std::string description;  // one phrase for the line: "direct TCP as the pod's uid"
};

// What the probe saw from its side.
struct ProbeOutcome {
  enum class Stage { Credentials, Socket, Option, Send, Done };
  Stage stage = Stage::Done;  // where it stopped
  int err = 0;                // errno at that stage; 0: none
  bool synchronous = true;    // err came from the call itself (not a later ICMP error)
  bool sent = false;          // the kernel took a packet (connect started, datagram queued)
  bool connected = false;     // tcp: the handshake completed
  bool answered = false;      // dns: a reply with the query's id came back
};
std::string describe(const ProbeOutcome& o);

// Changes the calling thread's credentials to `user` (podUid for ProbeUser::Pod). Only this
// thread: the rest of the process keeps its own.
Status becomeUser(ProbeUser user, uint32_t podUid);

// Runs the probe on the calling thread, which must already be in the pod's netns with the
// probe's credentials. Waits at most `waitMs` for a TCP handshake or a DNS answer.
ProbeOutcome runProbe(const Probe& p, int waitMs);

// The agent's records about one probe: counters read before and after it, and whether the
// proxy logged a connection to the probe's destination since it started.
struct ProbeEvidence {
  Counters podBefore, podAfter;      // the pod's redirect counters (empty: unreadable/missing)
  Counters fenceBefore, fenceAfter;  // the host fence's counters (empty: no fence)
  bool proxySaw = false;
  std::string proxyDecision;         // "allow"/"deny" when proxySaw
  std::string proxyReason;
};

struct ProbeVerdict {
  bool passed = false;
  std::string how;  // "redirected to the proxy (deny unnamed_tcp)", "LEAK: sent, and ..."
};

// Pure: whether the probe was refused, and by what. Passes only with evidence that nothing got
// past the node: taken by the proxy or the DNS/QUIC sockets, dropped by the pod's rules (EPERM and
// a drop counter) or by the host fence (its drop counters), refused by the kernel for want of a
// capability, no route in the pod, or kept on the pod's loopback.
ProbeVerdict judge(const Probe& p, const ProbeOutcome& o, const ProbeEvidence& e);

struct VerifyPlanParams {
  std::string target4 = "192.0.2.1";    // TEST-NET-1 (RFC 5737): never answered
  std::string target6 = "2001:db8::1";  // the documentation prefix (RFC 3849)
  uint32_t mark = 0x7467;               // the proxy's packet mark
  uint16_t proxyPort = 15001;
};

// Every vector verify runs, in order. Ports on the target differ per probe so that the journal
// entry of one cannot be taken for another's.
std::vector<Probe> verifyPlan(const VerifyPlanParams& params);

}  // namespace tollgate::agent
