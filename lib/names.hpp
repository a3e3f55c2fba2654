// Validation of user-supplied names and messages before they reach the store.
#pragma once

#include <string>
#include <string_view>

namespace checkpoint::detail {

// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or values past
// U+10FFFF).
bool is_valid_utf8(std::string_view text) noexcept;

// Throws Error(InvalidArgument) unless `name` is 1..max_name_bytes bytes of valid UTF-8
// without NUL. `what` names the argument in the message ("stage name", "pipeline name").
void validate_name(std::string_view name, std::string_view what);

// `message` as valid UTF-8 (each invalid byte and each NUL becomes U+FFFD), cut at
// max_message_bytes on a character boundary.
std::string sanitize_message(std::string_view message);

}  // namespace checkpoint::detail
