#include "proxy/access_log.h"

#include "common/json.h"

#include <ctime>

#include <fmt/format.h>

namespace tollgate::proxy {
namespace {

std::string rfc3339Millis(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - secs).count();
  std::time_t tt = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, ms);
}

std::string orDash(const std::string& s) { return s.empty() ? "-" : s; }

}  // namespace

std::string formatText(const AccessRecord& r) {
  // Names come from untrusted pod traffic; the sniffers normalise them, but escape anyway so a
  // crafted name can never forge a log line.
  return fmt::format("[{}] {}/{} {} \"{}\" \"{}\" {} {} {} {} \"{}\" {} {} {}",
                     rfc3339Millis(r.start), r.podNs, r.podName, orDash(r.identity),
                     r.originalDst, jsonEscape(orDash(r.name)), orDash(r.protocol), r.decision,
                     orDash(r.reason), orDash(r.decidedBy), jsonEscape(orDash(r.route)),
                     r.bytesUp, r.bytesDown, r.durationMs) +
         (r.nameAddrMismatch ? " name_addr_mismatch" : "");
}

std::string formatJson(const AccessRecord& r) {
  return fmt::format(
      "{{\"time\":\"{}\",\"pod_namespace\":\"{}\",\"pod_name\":\"{}\","
      "\"identity\":\"{}\",\"original_dst\":\"{}\",\"name\":\"{}\",\"protocol\":\"{}\","
      "\"decision\":\"{}\",\"reason\":\"{}\",\"decided_by\":\"{}\",\"route\":\"{}\","
      "\"bytes_up\":{},\"bytes_down\":{},\"duration_ms\":{}{}}}",
      rfc3339Millis(r.start), jsonEscape(r.podNs), jsonEscape(r.podName), jsonEscape(r.identity), jsonEscape(r.originalDst),
      jsonEscape(r.name), jsonEscape(r.protocol), jsonEscape(r.decision), jsonEscape(r.reason),
      jsonEscape(r.decidedBy), jsonEscape(r.route), r.bytesUp, r.bytesDown, r.durationMs,
      r.nameAddrMismatch ? ",\"name_addr_mismatch\":true" : "");
}

AccessLog::~AccessLog() {
  if (owned_ && out_ != nullptr) std::fclose(out_);
}

Status AccessLog::open(const std::string& path, LogFormat format) {
  std::lock_guard lock(mu_);
  format_ = format;
  if (owned_ && out_ != nullptr) std::fclose(out_);
  owned_ = false;
  out_ = nullptr;
  if (path.empty() || path == "-") {
    out_ = stdout;
    return {};
  }
  out_ = std::fopen(path.c_str(), "ae");
  if (out_ == nullptr) return failErrno("open access log " + path);
  owned_ = true;
  return {};
}

void AccessLog::write(const AccessRecord& r) {
  std::string line = format_ == LogFormat::Json ? formatJson(r) : formatText(r);
  line += '\n';
  std::lock_guard lock(mu_);
  FILE* out = out_ != nullptr ? out_ : stdout;
  std::fwrite(line.data(), 1, line.size(), out);
  std::fflush(out);
}

}  // namespace tollgate::proxy
