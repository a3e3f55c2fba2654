#include <checkpoint/fingerprint.hpp>

#include "sha256.hpp"

#include <checkpoint/error.hpp>

#include <cstdint>

namespace checkpoint {

namespace {

// A part's frame: its kind and its length, so that parts cannot run into each other.
std::string frame(char kind, std::uint64_t length) {
    std::string header(1, kind);
    for (int shift = 56; shift >= 0; shift -= 8)
        header.push_back(static_cast<char>((length >> shift) & 0xff));
    return header;
}

}  // namespace

Fingerprint::Fingerprint() : digest_(detail::sha256("checkpoint fingerprint v1")) {}

Fingerprint& Fingerprint::add(std::string_view text) {
    detail::Sha256 hasher;
    hasher.update(digest_);
    hasher.update(frame('s', text.size()));
    hasher.update(text);
    digest_ = hasher.finish();
    return *this;
}

Fingerprint& Fingerprint::add_file(const std::filesystem::path& file) {
    // The file's own digest is framed, so a file's content never reads as a string part.
    detail::Sha256 content;
    const std::uint64_t size = detail::hash_file(file, content);
    detail::Sha256 hasher;
    hasher.update(digest_);
    hasher.update(frame('f', size));
    hasher.update(content.finish());
    digest_ = hasher.finish();
    return *this;
}

std::string Fingerprint::str() const {
    return detail::to_hex(digest_);
}

std::string fingerprint_of(std::string_view text) {
    return detail::to_hex(detail::sha256(text));
}

std::optional<std::string> fingerprint_of_file(const std::filesystem::path& file) {
    detail::Sha256 hasher;
    try {
        detail::hash_file(file, hasher);
    } catch (const Error& e) {
        if (e.code() == ErrorCode::NotFound) return std::nullopt;
        throw;
    }
    return detail::to_hex(hasher.finish());
}

}  // namespace checkpoint
