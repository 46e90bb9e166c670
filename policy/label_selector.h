#pragma once

#include "policy/model.h"

namespace tollgate::policy {

// Kubernetes label selector semantics: every matchLabels pair AND every matchExpressions
// requirement must hold. An empty selector ({}) matches every label set, including the empty one.
// In with no values matches nothing (the API server rejects it; we fail closed rather than open).
bool matches(const LabelSelector& selector, const Labels& labels);

// One requirement on its own: In (key present, value listed), NotIn (key absent, or value not
// listed), Exists, DoesNotExist.
bool matches(const LabelRequirement& requirement, const Labels& labels);

}  // namespace tollgate::policy
