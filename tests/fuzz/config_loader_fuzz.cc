// libFuzzer target for the configuration loader: whatever the bytes, loadString returns (no crash,
// no exception, no sanitizer report), and a failed load always says why.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policy/config_loader.h"

using tollgate::policy::ConfigLoader;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto result = ConfigLoader::loadString(text, "fuzz.yaml");
  if (!result) {
    check(!result.error().empty());  // failing without a diagnostic would leave users guessing
    for (const auto& d : result.error()) check(!d.str().empty() && !d.message.empty());
    return 0;
  }
  for (const auto& w : result->warnings) check(!w.str().empty());
  // Every loaded object has a name: the loader rejects nameless ones.
  for (const auto& se : result->config.serviceEntries) check(!se.meta.name.empty());
  for (const auto& np : result->config.networkPolicies) check(!np.meta.name.empty());
  return 0;
}
