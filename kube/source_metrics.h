#pragma once

#include <string>

#include "kube/kube_config_source.h"

namespace tollgate::kube {

// The tollgate_config_source_* families (Prometheus text) for a `kubernetes` source's status:
// the same names and help on every binary that reads the API (agent and gateway).
std::string renderSourceMetrics(const KubeSourceStatus& status);

// Why a source is not ready yet ("" once it is): the line /healthz/ready answers with.
std::string notReadyReason(const KubeSourceStatus& status);

}  // namespace tollgate::kube
