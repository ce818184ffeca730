// hearth: the error type every module throws.
#pragma once

#include <stdexcept>
#include <string>

namespace hearth {

/// Base class of every error hearth raises on bad input (a malformed file, an unsupported
/// tensor type, an out-of-range parameter, a prompt longer than the context ...).
/// `what()` is one line meant for the user: it names the thing that is wrong.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace hearth
