#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

#include "common/error.h"

namespace tollgate::proxy {

// Everything logged when a connection ends.
struct AccessRecord {
  std::chrono::system_clock::time_point start;
  std::string podNs;
  std::string podName;
  std::string identity;     // spiffe://<trust-domain>/ns/<ns>/sa/<sa>
  std::string originalDst;  // "1.2.3.4:443"
  std::string name;         // SNI / Host (normalised), "" when none
  std::string protocol;     // "tls", "http", "tcp"
  std::string decision;     // "allow" / "deny"
  std::string reason;       // policy::toString(Reason) or a proxy failure ("sniff_timeout", ...)
  std::string decidedBy;    // "ServiceEntry/default/httpbin" or "-"
  std::string route;        // policy::Route::str() or "-"
  uint64_t bytesUp = 0;     // client -> upstream
  uint64_t bytesDown = 0;   // upstream -> client
  uint64_t durationMs = 0;
  // The SNI/Host names X but the pod never resolved the destination as X through the DNS
  // proxy (the decision is unchanged; a signal of a pinned or spoofed address).
  bool nameAddrMismatch = false;
};

enum class LogFormat { Text, Json };

// Envoy-like one-liner:
// [2026-11-23T18:40:28.123Z] default/client spiffe://... "1.2.3.4:443" "httpbin.test" tls allow
//   allowed_registry ServiceEntry/default/httpbin "direct httpbin.test:443" 120 4500 37
std::string formatText(const AccessRecord& r);
// One JSON object per line with the same fields.
std::string formatJson(const AccessRecord& r);

// Thread-safe line sink: stdout by default or an append-only file.
class AccessLog {
 public:
  AccessLog() = default;
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // path empty or "-": stdout.
  Status open(const std::string& path, LogFormat format);
  void setFormat(LogFormat format) { format_ = format; }
  void write(const AccessRecord& r);

 private:
  std::mutex mu_;
  FILE* out_ = nullptr;
  bool owned_ = false;
  LogFormat format_ = LogFormat::Text;
};

}  // namespace tollgate::proxy
