#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "policy/model.h"

namespace tollgate::policy {

// One problem found while loading: file:line, the object (kind/namespace/name) and the field.
struct Diagnostic {
  enum class Severity { Warning, Error };
  Severity severity = Severity::Error;
  std::string file;
  int line = 0;
  std::string object;  // "ServiceEntry/default/httpbin"; empty when the document has no identity
  std::string field;   // "spec.ports[0].number"
  std::string message;

  // "file:line: ServiceEntry/default/httpbin: spec.ports[0].number: must be 1-65535"
  std::string str() const;
};

struct LoadResult {
  Config config;
  std::vector<Diagnostic> warnings;  // unknown kinds, ignored documents
};

// Loads multi-document YAML into a Config. Unknown kinds are skipped with a warning; unknown
// fields are ignored; a wrong type or value is an error. Any error fails the whole load (the
// caller keeps its previous snapshot), and every error found is reported, not just the first.
class ConfigLoader {
 public:
  // A directory (every *.yaml / *.yml / *.json below it, sorted, recursively) or a single file.
  static std::expected<LoadResult, std::vector<Diagnostic>> loadPath(const std::string& path);

  // YAML text; `file` is only used to name the source in diagnostics.
  static std::expected<LoadResult, std::vector<Diagnostic>> loadString(std::string_view yaml,
                                                                      const std::string& file);
};

}  // namespace tollgate::policy
