#pragma once

// Converts the loaded model to its protobuf mirror (proto/config.proto), for `tollgatectl config
// dump` and the admin API. One direction only: configuration enters through the YAML loader.

#include "policy/model.h"
#include "proto/config.pb.h"

namespace tollgate::policy {

tollgate::config::Config toProto(const Config& config);

}  // namespace tollgate::policy
