#pragma once

// The human tables of the tollgatectl commands that ask the running agent (pure functions of an
// AdminReply and the current time, so tests compare them with golden text).

#include <cstdint>
#include <string>

#include "proto/admin.pb.h"

namespace tollgate::cli {

std::string renderStatus(const admin::AgentStatus& s, int64_t nowUnix);
std::string renderPods(const admin::AdminReply& r);
std::string renderRules(const admin::AdminReply& r);
std::string renderCerts(const admin::AdminReply& r, int64_t nowUnix);
std::string renderConns(const admin::AdminReply& r);
// tollgatectl verify: one line per check and vector, then the verdict.
std::string renderVerify(const admin::AdminReply& r, const std::string& podRef);
// One line of `tollgatectl log`: "2026-12-06T19:14:46.123Z conn  default/client <text>".
std::string renderEvent(const admin::LogEvent& e);
// 1536 -> "1.5K", 3 * 2^20 -> "3.0M"
std::string formatBytes(uint64_t n);

// "3d4h", "2h5m", "4m10s", "12s"; "-" for 0 or less. Relative times: "in 2h5m", "5m ago".
std::string formatDuration(int64_t seconds);
std::string formatUnixTime(int64_t unix);  // "2026-12-06T19:14:46Z"; "-" for 0

}  // namespace tollgate::cli
