#include "policy/label_selector.h"

#include <algorithm>

namespace tollgate::policy {

namespace {
bool listed(const std::vector<std::string>& values, const std::string& value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}
}  // namespace

bool matches(const LabelRequirement& requirement, const Labels& labels) {
  auto it = labels.find(requirement.key);
  bool present = it != labels.end();
  switch (requirement.op) {
    case LabelRequirement::Op::In:
      return present && listed(requirement.values, it->second);
    case LabelRequirement::Op::NotIn:
      // Kubernetes: NotIn also selects objects that do not carry the key at all.
      return !present || !listed(requirement.values, it->second);
    case LabelRequirement::Op::Exists:
      return present;
    case LabelRequirement::Op::DoesNotExist:
      return !present;
  }
  return false;  // an operator this code does not know selects nothing
}

bool matches(const LabelSelector& selector, const Labels& labels) {
  for (const auto& [key, value] : selector.matchLabels) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  return std::all_of(selector.matchExpressions.begin(), selector.matchExpressions.end(),
                     [&](const LabelRequirement& r) { return matches(r, labels); });
}

}  // namespace tollgate::policy
