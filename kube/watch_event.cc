#include "kube/watch_event.h"

#include <fmt/format.h>

namespace tollgate::kube {

std::string objectKey(const nlohmann::json& object) {
  if (!object.is_object()) return "";
  auto md = object.find("metadata");
  if (md == object.end() || !md->is_object()) return "";
  auto name = md->find("name");
  if (name == md->end() || !name->is_string() || name->get_ref<const std::string&>().empty()) return "";
  auto ns = md->find("namespace");
  if (ns != md->end() && ns->is_string() && !ns->get_ref<const std::string&>().empty()) {
    return ns->get<std::string>() + "/" + name->get<std::string>();
  }
  return name->get<std::string>();
}

namespace {
std::string resourceVersionOf(const nlohmann::json& object) {
  auto md = object.find("metadata");
  if (md == object.end() || !md->is_object()) return "";
  auto rv = md->find("resourceVersion");
  return rv != md->end() && rv->is_string() ? rv->get<std::string>() : "";
}
}  // namespace

Result<WatchEvent> parseWatchEvent(std::string_view line) {
  nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
  if (j.is_discarded()) return fail(fmt::format("watch event: not JSON: {:.120}", line));
  if (!j.is_object()) return fail("watch event: not a JSON object");
  auto t = j.find("type");
  if (t == j.end() || !t->is_string()) return fail("watch event: no \"type\" string");
  auto o = j.find("object");
  if (o == j.end() || !o->is_object()) return fail("watch event: no \"object\" object");
  WatchEvent ev;
  const auto& type = t->get_ref<const std::string&>();
  if (type == "ADDED") ev.type = WatchEvent::Type::Added;
  else if (type == "MODIFIED") ev.type = WatchEvent::Type::Modified;
  else if (type == "DELETED") ev.type = WatchEvent::Type::Deleted;
  else if (type == "BOOKMARK") ev.type = WatchEvent::Type::Bookmark;
  else if (type == "ERROR") ev.type = WatchEvent::Type::Error;
  else return fail(fmt::format("watch event: unknown type \"{:.40}\"", type));
  ev.object = std::move(*o);
  if (ev.type == WatchEvent::Type::Error) {
    auto code = ev.object.find("code");
    ev.errorCode = code != ev.object.end() && code->is_number_integer() ? code->get<int>() : 0;
    auto msg = ev.object.find("message");
    ev.errorMessage = msg != ev.object.end() && msg->is_string() ? msg->get<std::string>() : "";
    return ev;
  }
  ev.resourceVersion = resourceVersionOf(ev.object);
  if (ev.resourceVersion.empty()) return fail(fmt::format("watch event {}: no metadata.resourceVersion", type));
  if (ev.type != WatchEvent::Type::Bookmark) {
    ev.key = objectKey(ev.object);
    if (ev.key.empty()) return fail(fmt::format("watch event {}: no metadata.name", type));
  }
  return ev;
}

std::string statusMessage(std::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_object()) {
    auto m = j.find("message");
    if (m != j.end() && m->is_string()) return m->get<std::string>();
  }
  return std::string(body.substr(0, 200));
}

}  // namespace tollgate::kube
