// Whether a database and a key file go together (README, "Security"): the rule, once, for
// both backends. A database records its key's check value (table encryption_keys); a key
// file's check value is derived from it (secret_key.hpp).
#pragma once

#include "crypto/secret_key.hpp"

#include <optional>
#include <string>

namespace checkpoint::detail {

enum class KeyVerdict {
    Plain,       // no key given, none recorded: plaintext, unkeyed chain
    Keyed,       // the recorded key was given
    Register,    // a key was given to a database without rows or key: record it, then Keyed
    KeyMissing,  // a key is recorded but none was given: reads of the chain and every write
                 // are refused with Error(KeyRequired)
};

// The database's recorded key (its check value), or none.
struct RecordedKey {
    std::string key_id;
    std::string check_value;
};

// Throws Error(WrongKey) when `given` is not the recorded key, Error(InvalidArgument) when a
// key is given for a database that holds rows written without one (mixed plaintext and
// encrypted history is not allowed). `where` names the database for messages.
KeyVerdict judge_key(const std::optional<RecordedKey>& recorded, const DatabaseKey* given,
                     bool has_rows, bool read_only, const std::string& where);

// The Error(KeyRequired) for `action` on the database `where`.
[[noreturn]] void throw_key_required(const std::string& where, const std::string& action);

}  // namespace checkpoint::detail
