#include "crypto/key_check.hpp"

#include <checkpoint/error.hpp>

#include <sodium.h>

namespace checkpoint::detail {

KeyVerdict judge_key(const std::optional<RecordedKey>& recorded, const DatabaseKey* given,
                     bool has_rows, bool read_only, const std::string& where) {
    if (recorded && given) {
        if (recorded->check_value.size() == given->check_value.size() &&
            sodium_memcmp(recorded->check_value.data(), given->check_value.data(),
                          given->check_value.size()) == 0) {
            return KeyVerdict::Keyed;
        }
        throw Error(ErrorCode::WrongKey,
                    where +
                        ": the key file given is not this database's key (the database's "
                        "key id is " +
                        recorded->key_id + ", the file's " + given->key_id +
                        "); nothing was written. Give the key file the database was written "
                        "with");
    }
    if (recorded) return KeyVerdict::KeyMissing;
    if (!given || read_only) return KeyVerdict::Plain;  // a plaintext database read with a key
    if (has_rows) {
        throw Error(ErrorCode::InvalidArgument,
                    where +
                        ": holds history written without a key, and a key file was given; "
                        "a database is either all plaintext or all keyed (mixed is not "
                        "allowed). Nothing was written. Open it without the key file, or "
                        "copy its history into a new keyed database (checkpointctl copy)");
    }
    return KeyVerdict::Register;
}

void throw_key_required(const std::string& where, const std::string& action) {
    throw Error(ErrorCode::KeyRequired,
                where + ": " + action +
                    " refused: the database was written with a key, and none was given. "
                    "Nothing was written; give its key file (Options::key_file, "
                    "checkpointctl --key-file)");
}

}  // namespace checkpoint::detail
