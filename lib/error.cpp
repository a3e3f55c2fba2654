#include <checkpoint/error.hpp>

namespace checkpoint {

std::string_view to_string(ErrorCode code) noexcept {
    switch (code) {
        case ErrorCode::InvalidArgument:
            return "invalid_argument";
        case ErrorCode::NotFound:
            return "not_found";
        case ErrorCode::NotADatabase:
            return "not_a_database";
        case ErrorCode::Corrupt:
            return "corrupt";
        case ErrorCode::SchemaTooNew:
            return "schema_too_new";
        case ErrorCode::SchemaTooOld:
            return "schema_too_old";
        case ErrorCode::Io:
            return "io";
        case ErrorCode::DiskFull:
            return "disk_full";
        case ErrorCode::Busy:
            return "busy";
        case ErrorCode::ReadOnly:
            return "read_only";
        case ErrorCode::Internal:
            return "internal";
        case ErrorCode::Unsafe:
            return "unsafe";
        case ErrorCode::OutputDamaged:
            return "output_damaged";
        case ErrorCode::Unavailable:
            return "unavailable";
        case ErrorCode::LeaseLost:
            return "lease_lost";
        case ErrorCode::KeyRequired:
            return "key_required";
        case ErrorCode::WrongKey:
            return "wrong_key";
    }
    return "unknown";
}

Error::Error(ErrorCode code, const std::string& message)
    : std::runtime_error(message), code_(code) {}

}  // namespace checkpoint
