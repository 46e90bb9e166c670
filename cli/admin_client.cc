#include "cli/admin_client.h"

#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <ostream>

#include "common/framing.h"

namespace tollgate::cli {

Result<admin::AdminReply> askAgent(const std::string& runDir, const admin::AdminRequest& req,
                                   int timeoutMs) {
  std::string path = runDir + "/admin.sock";
  auto sock = connectUnix(path, timeoutMs);
  if (!sock) {
    int code = sock.error().code;
    if (code == ENOENT || code == ECONNREFUSED) {
      return fail(fmt::format("agent not running: nothing answers on {} (is tollgate-agent "
                              "running with --run-dir {}?)",
                              path, runDir));
    }
    if (code == EACCES || code == EPERM) {
      return fail(fmt::format("permission denied on {}: the admin socket is root only", path));
    }
    return fail(sock.error().str());
  }
  std::string payload;
  req.SerializeToString(&payload);
  auto st = sendFrame(*sock, payload);
  // Even when the send failed the agent may have answered (a refusal): read what is there.
  auto frame = recvFrame(*sock);
  ::close(*sock);
  if (!frame && !st) frame = std::unexpected(st.error());
  if (!frame) return fail(fmt::format("no answer from the agent on {}: {}", path, frame.error().str()));
  admin::AdminReply reply;
  if (!reply.ParseFromString(frame->payload)) return fail("the agent's reply does not parse");
  if (!reply.ok()) return fail(reply.error());
  return reply;
}

Result<CommonOptions> commonOptions(const Args& a) {
  CommonOptions c{a.get("run-dir").value_or(std::string(kDefaultRunDir)),
                  a.get("output").value_or("table")};
  if (c.format != "table" && c.format != "json" && c.format != "yaml") {
    return fail(fmt::format("-o \"{}\": expected table, json or yaml", c.format));
  }
  return c;
}

Result<std::pair<std::string, std::string>> parsePodRef(const std::string& ref) {
  auto slash = ref.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == ref.size() ||
      ref.find('/', slash + 1) != std::string::npos) {
    return fail(fmt::format("\"{}\": expected NAMESPACE/POD", ref));
  }
  return std::make_pair(ref.substr(0, slash), ref.substr(slash + 1));
}

Result<size_t> parseCount(const std::string& text, std::string_view flag, bool allowZero) {
  size_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || (!allowZero && v == 0)) {
    return fail(fmt::format("{} \"{}\": expected a number{}", flag, text, allowZero ? "" : " above 0"));
  }
  return v;
}

int failUsage(std::ostream& err, std::string_view cmd, const std::string& message) {
  err << "tollgatectl " << cmd << ": " << message << "\n";
  return kExitUsage;
}

}  // namespace tollgate::cli
