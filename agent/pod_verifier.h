#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "agent/bypass_probe.h"
#include "agent/fence.h"
#include "agent/netns.h"
#include "agent/redirect.h"
#include "proto/admin.pb.h"
#include "proxy/event_journal.h"

namespace tollgate::agent {

// tollgatectl verify NS/POD: proves from inside the pod's netns that the pod cannot get around
// the node. First the defences are checked as installed (the pod's rules, the host fence, a node
// route to the target so the fence sees what leaks), then every vector of verifyPlan() is run
// under its identity and judged from the agent's counters and journal (agent/bypass_probe.h).
//
// Counters are node-wide per pod and fence: on a busy node another pod's fence drop in the same
// instant can be counted for a probe. Probes of one verify run one after another; the agent runs
// one verify at a time.
class PodVerifier {
 public:
  struct Inputs {
    std::string ns, name;
    std::shared_ptr<Netns> pod;
    std::string podKey, podCgroup;                      // for PodTarget
    // Non-empty: the redirect sees a process as the pod only in this cgroup directory (ebpf
    // mode), so each probe runs in a child process placed below it instead of an agent thread.
    std::string probeCgroup;
    std::shared_ptr<const RedirectInstaller> redirect;  // null: no redirect installer
    const HostFence* fence = nullptr;             // null: none installed
    const Netns* node = nullptr;                  // the node netns (fence, route)
    const proxy::EventJournal* journal = nullptr;
    VerifyPlanParams plan;
    uint32_t podUid = 65534;
    // How long a probe waits for its handshake or answer, and for the agent's records of it.
    std::chrono::milliseconds probeWait{300};
    std::chrono::milliseconds settle{1000};
  };

  explicit PodVerifier(Inputs in) : in_(std::move(in)) {}

  // Every check and vector, in order; passed() on all of them means no way around was found.
  std::vector<admin::VerifyCheck> run() const;

 private:
  admin::VerifyCheck checkRules() const;
  admin::VerifyCheck checkFence() const;
  admin::VerifyCheck checkRoute() const;
  admin::VerifyCheck runVector(const Probe& p) const;
  // Counters of the pod's table / the fence now; empty when absent or unreadable.
  Counters podCounters() const;
  Counters fenceCounters() const;
  // Whether the journal holds a connection of this pod to the probe's port after `cursor` (for
  // the proxy's own port also one it could not attribute: no original destination, "-").
  bool proxySaw(uint64_t cursor, const Probe& p, ProbeEvidence& e) const;
  // Runs the probe with its credentials in the pod's netns: on a helper thread, or in a child
  // process in in_.probeCgroup. An error when it could not be started at all.
  Result<ProbeOutcome> probe(const Probe& p) const;
  Result<ProbeOutcome> probeInCgroup(const Probe& p) const;

  PodTarget target() const { return PodTarget(*in_.pod, in_.podKey, in_.podCgroup); }

  Inputs in_;
};

}  // namespace tollgate::agent
