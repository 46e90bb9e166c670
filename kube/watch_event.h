#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace tollgate::kube {

// One line of a watch stream: {"type": "ADDED", "object": {...}}.
struct WatchEvent {
  enum class Type { Added, Modified, Deleted, Bookmark, Error };
  Type type = Type::Added;
  nlohmann::json object;
  std::string resourceVersion;  // object.metadata.resourceVersion
  std::string key;              // "ns/name" or "name" (not for Bookmark / Error)
  int errorCode = 0;            // Error: the Status object's code (410: the version is gone)
  std::string errorMessage;
};

// Parses one watch line. Errors say what is wrong with it (never throws).
Result<WatchEvent> parseWatchEvent(std::string_view line);

// "ns/name" or "name" from metadata; empty when metadata.name is missing or not a string.
std::string objectKey(const nlohmann::json& object);

// A Status object's message (or the body itself, cut to 200 bytes) for error text.
std::string statusMessage(std::string_view body);

}  // namespace tollgate::kube
