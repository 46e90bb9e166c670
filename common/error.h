#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <utility>

namespace tollgate {

// An error as a value: what failed, the errno or library code, and the context a user needs
// ("nft: add rule in netns of pod default/client: Operation not permitted").
struct Error {
  std::string message;  // what failed, with its context
  int code = 0;         // errno or library code; 0 when none applies

  static Error fromErrno(std::string what, int err = errno) {
    return Error{std::move(what) + ": " + std::strerror(err), err};
  }

  // Prepends context: err.wrap("enroll pod default/client") -> "enroll pod default/client: <msg>".
  Error wrap(const std::string& context) const& { return Error{context + ": " + message, code}; }

  const std::string& str() const { return message; }
};

template <typename T>
using Result = std::expected<T, Error>;

using Status = std::expected<void, Error>;

inline std::unexpected<Error> fail(std::string message, int code = 0) {
  return std::unexpected(Error{std::move(message), code});
}

inline std::unexpected<Error> failErrno(std::string what, int err = errno) {
  return std::unexpected(Error::fromErrno(std::move(what), err));
}

}  // namespace tollgate
