#include "kube/source_metrics.h"

#include <fmt/format.h>

#include "proxy/metrics.h"

namespace tollgate::kube {

std::string renderSourceMetrics(const KubeSourceStatus& st) {
  std::string out;
  auto sample = [&](std::string_view name, std::string_view type, std::string_view help, double v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    out += proxy::formatSample(name, {}, v);
  };
  sample("tollgate_config_source_ready", "gauge",
         "1 once every resource was listed and a config loaded.", st.ready ? 1 : 0);
  sample("tollgate_config_source_connected", "gauge",
         "1 while every watch's last request was answered by the API server.", st.connected ? 1 : 0);
  sample("tollgate_config_source_relists_total", "counter",
         "Lists after the first (410 Gone, outages).", static_cast<double>(st.relists));
  sample("tollgate_config_source_gone_total", "counter",
         "410 Gone answers (expired resourceVersion).", static_cast<double>(st.gone));
  sample("tollgate_config_source_errors_total", "counter",
         "Failed requests and broken watch streams (the last snapshot stays).",
         static_cast<double>(st.errors));
  sample("tollgate_config_source_events_total", "counter", "Watch events applied.",
         static_cast<double>(st.events));
  sample("tollgate_config_source_loads_total", "counter",
         "Configs built from the API and installed.", static_cast<double>(st.loads));
  sample("tollgate_config_source_load_failures_total", "counter",
         "Configs refused by the loader (the last good one stays).",
         static_cast<double>(st.loadFailures));
  sample("tollgate_config_source_last_sync_timestamp_seconds", "gauge",
         "When the last config from the API was handed on.",
         static_cast<double>(
             std::chrono::duration_cast<std::chrono::seconds>(st.lastSync.time_since_epoch())
                 .count()));
  out += "# HELP tollgate_config_source_objects Objects held per resource.\n"
         "# TYPE tollgate_config_source_objects gauge\n";
  for (const auto& [name, r] : st.resources) {
    out += proxy::formatSample("tollgate_config_source_objects", {{"resource", name}},
                               static_cast<double>(r.objects));
  }
  return out;
}

std::string notReadyReason(const KubeSourceStatus& st) {
  if (st.ready) return "";
  std::string why = "the kubernetes source has not listed every resource yet";
  if (st.loads == 0 && st.loadFailures > 0) {
    why = "the config from the kubernetes API does not load";
  }
  if (!st.lastError.empty()) why += ": " + st.lastError;
  return why;
}

}  // namespace tollgate::kube
