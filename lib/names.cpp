#include "names.hpp"

#include <checkpoint/checkpoint_manager.hpp>
#include <checkpoint/error.hpp>

#include <cstdint>

namespace checkpoint::detail {

namespace {

// Length of the well-formed UTF-8 sequence at text[i], or 0 when it is malformed.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) noexcept {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
    const unsigned char lead = byte(i);
    if (lead < 0x80) return 1;
    std::size_t length = 0;
    std::uint32_t code = 0;
    std::uint32_t min_code = 0;
    if ((lead & 0xE0) == 0xC0) {
        length = 2, code = lead & 0x1F, min_code = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
        length = 3, code = lead & 0x0F, min_code = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
        length = 4, code = lead & 0x07, min_code = 0x10000;
    } else {
        return 0;
    }
    if (i + length > text.size()) return 0;
    for (std::size_t k = 1; k < length; ++k) {
        if ((byte(i + k) & 0xC0) != 0x80) return 0;
        code = (code << 6) | (byte(i + k) & 0x3F);
    }
    if (code < min_code || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
    return length;
}

}  // namespace

bool is_valid_utf8(std::string_view text) noexcept {
    for (std::size_t i = 0; i < text.size();) {
        const std::size_t length = utf8_sequence_length(text, i);
        if (length == 0) return false;
        i += length;
    }
    return true;
}

void validate_name(std::string_view name, std::string_view what) {
    const std::string subject(what);
    if (name.empty()) {
        throw Error(ErrorCode::InvalidArgument,
                    "invalid " + subject + ": it is empty; give a non-empty name");
    }
    if (name.size() > max_name_bytes) {
        throw Error(ErrorCode::InvalidArgument,
                    "invalid " + subject + ": it is " + std::to_string(name.size()) +
                        " bytes long; the limit is " + std::to_string(max_name_bytes) +
                        " bytes of UTF-8");
    }
    if (name.find('\0') != std::string_view::npos) {
        throw Error(ErrorCode::InvalidArgument,
                    "invalid " + subject + ": it contains a NUL byte at offset " +
                        std::to_string(name.find('\0')) + "; remove it");
    }
    if (!is_valid_utf8(name)) {
        throw Error(ErrorCode::InvalidArgument,
                    "invalid " + subject + ": it is not valid UTF-8; names must be UTF-8 text");
    }
}

std::string sanitize_message(std::string_view message) {
    static constexpr std::string_view replacement = "\xEF\xBF\xBD";  // U+FFFD
    std::string out;
    out.reserve(std::min(message.size(), max_message_bytes));
    for (std::size_t i = 0; i < message.size();) {
        // A NUL byte would cut the text short in C tools (the sqlite3 shell): replace it too.
        const std::size_t length = message[i] == '\0' ? 0 : utf8_sequence_length(message, i);
        const std::string_view piece = length == 0 ? replacement : message.substr(i, length);
        if (out.size() + piece.size() > max_message_bytes) break;
        out.append(piece);
        i += length == 0 ? 1 : length;
    }
    return out;
}

}  // namespace checkpoint::detail
