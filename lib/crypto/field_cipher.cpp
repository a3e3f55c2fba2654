#include "crypto/field_cipher.hpp"

#include <checkpoint/error.hpp>

#include <cerrno>
#include <cstring>
#include <vector>

#include <sodium.h>
#include <unistd.h>

namespace checkpoint::detail {

namespace {

constexpr std::string_view text_prefix = "ckpt-enc1:";
constexpr std::size_t chunk_bytes = 64 * 1024;
constexpr std::size_t nonce_bytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr std::size_t tag_bytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr std::size_t stream_header = crypto_secretstream_xchacha20poly1305_HEADERBYTES;
constexpr std::size_t stream_overhead = crypto_secretstream_xchacha20poly1305_ABYTES;

void put(std::string& out, std::string_view part) {
    const std::uint64_t size = part.size();
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(size >> shift));
    out.append(part);
}

std::string associated_data(const DatabaseKey& key, const FieldContext& context) {
    std::string ad = "checkpoint field v1";
    put(ad, key.key_id);
    put(ad, context.pipeline);
    put(ad, context.stage);
    put(ad, std::to_string(context.version));
    put(ad, context.field);
    return ad;
}

std::string file_associated_data(const DatabaseKey& key, const std::string& sha256_hex) {
    std::string ad = "checkpoint output file v1";
    put(ad, key.key_id);
    put(ad, sha256_hex);
    return ad;
}

const unsigned char* bytes_of(std::string_view text) {
    return reinterpret_cast<const unsigned char*>(text.data());
}

[[noreturn]] void damaged(const std::string& where, const std::string& why) {
    throw Error(ErrorCode::OutputDamaged,
                where + ": " + why +
                    " (altered, or moved from another row or file). The stage must run again: "
                    "clear it or save it anew");
}

}  // namespace

std::string seal_field(const DatabaseKey& key, const FieldContext& context,
                       std::string_view plaintext) {
    const std::string ad = associated_data(key, context);
    std::string sealed(nonce_bytes + plaintext.size() + tag_bytes, '\0');
    auto* out = reinterpret_cast<unsigned char*>(sealed.data());
    randombytes_buf(out, nonce_bytes);
    unsigned long long length = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + nonce_bytes, &length, bytes_of(plaintext),
                                               plaintext.size(), bytes_of(ad), ad.size(), nullptr,
                                               out, key.data.data());
    return sealed;
}

std::string open_field(const DatabaseKey& key, const FieldContext& context, std::string_view sealed,
                       const std::string& where) {
    if (sealed.size() < nonce_bytes + tag_bytes) damaged(where, "the ciphertext is too short");
    const std::string ad = associated_data(key, context);
    std::string plain(sealed.size() - nonce_bytes - tag_bytes, '\0');
    unsigned long long length = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            reinterpret_cast<unsigned char*>(plain.data()), &length, nullptr,
            bytes_of(sealed) + nonce_bytes, sealed.size() - nonce_bytes, bytes_of(ad), ad.size(),
            bytes_of(sealed), key.data.data()) != 0) {
        damaged(where, "its " + std::string(context.field) + " does not decrypt with this key");
    }
    return plain;
}

std::string seal_text_field(const DatabaseKey& key, const FieldContext& context,
                            std::string_view plaintext) {
    const std::string sealed = seal_field(key, context, plaintext);
    const int variant = sodium_base64_VARIANT_ORIGINAL;
    std::string text(sodium_base64_encoded_len(sealed.size(), variant), '\0');
    sodium_bin2base64(text.data(), text.size(), bytes_of(sealed), sealed.size(), variant);
    text.resize(std::strlen(text.c_str()));
    return std::string(text_prefix) + key.key_id + ":" + text;
}

bool is_sealed_text(std::string_view text) noexcept {
    return text.substr(0, text_prefix.size()) == text_prefix;
}

std::string open_text_field(const DatabaseKey& key, const FieldContext& context,
                            std::string_view text, const std::string& where) {
    if (!is_sealed_text(text))
        damaged(where,
                "its " + std::string(context.field) + " is not encrypted in an encrypted database");
    text.remove_prefix(text_prefix.size());
    const std::size_t colon = text.find(':');
    if (colon == std::string_view::npos)
        damaged(where, "its " + std::string(context.field) + " is not a ciphertext");
    const std::string_view base64 = text.substr(colon + 1);
    std::string sealed(base64.size(), '\0');
    std::size_t length = 0;
    if (sodium_base642bin(reinterpret_cast<unsigned char*>(sealed.data()), sealed.size(),
                          base64.data(), base64.size(), nullptr, &length, nullptr,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
        damaged(where, "its " + std::string(context.field) + " is not a ciphertext");
    }
    sealed.resize(length);
    return open_field(key, context, sealed, where);
}

std::uint64_t sealed_file_size(std::uint64_t plain_size) noexcept {
    const std::uint64_t chunks = plain_size == 0 ? 1 : (plain_size + chunk_bytes - 1) / chunk_bytes;
    return stream_header + chunks * stream_overhead + plain_size;
}

std::optional<std::uint64_t> plain_file_size(std::uint64_t file_size) noexcept {
    if (file_size < stream_header + stream_overhead) return std::nullopt;
    const std::uint64_t body = file_size - stream_header;
    const std::uint64_t chunks =
        (body + chunk_bytes + stream_overhead - 1) / (chunk_bytes + stream_overhead);
    if (body < chunks * stream_overhead) return std::nullopt;
    const std::uint64_t plain = body - chunks * stream_overhead;
    if (sealed_file_size(plain) != file_size) return std::nullopt;
    return plain;
}

bool write_sealed_file(int fd, const DatabaseKey& key, const std::string& sha256_hex,
                       std::string_view bytes) {
    const std::string ad = file_associated_data(key, sha256_hex);
    crypto_secretstream_xchacha20poly1305_state state;
    std::vector<unsigned char> buffer(stream_header + chunk_bytes + stream_overhead);
    crypto_secretstream_xchacha20poly1305_init_push(&state, buffer.data(), key.data.data());
    const auto write_all = [&](const unsigned char* data, std::size_t size) {
        while (size > 0) {
            const ssize_t n = ::write(fd, data, size);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            data += n;
            size -= static_cast<std::size_t>(n);
        }
        return true;
    };
    if (!write_all(buffer.data(), stream_header)) return false;
    std::size_t offset = 0;
    do {
        const std::size_t size = std::min(chunk_bytes, bytes.size() - offset);
        const bool last = offset + size == bytes.size();
        unsigned long long length = 0;
        crypto_secretstream_xchacha20poly1305_push(
            &state, buffer.data(), &length, bytes_of(bytes) + offset, size, bytes_of(ad), ad.size(),
            last ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
        if (!write_all(buffer.data(), static_cast<std::size_t>(length))) return false;
        offset += size;
    } while (offset < bytes.size());
    sodium_memzero(&state, sizeof state);
    return true;
}

std::string read_sealed_file(int fd, const DatabaseKey& key, const std::string& sha256_hex,
                             std::uint64_t plain_size, const std::string& where) {
    const std::string ad = file_associated_data(key, sha256_hex);
    std::vector<unsigned char> buffer(chunk_bytes + stream_overhead);
    const auto read_exactly = [&](unsigned char* data, std::size_t size) {
        while (size > 0) {
            const ssize_t n = ::read(fd, data, size);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                throw Error(ErrorCode::Io,
                            where + ": cannot be read (" + std::strerror(errno) + ")");
            }
            if (n == 0) damaged(where, "it is shorter than its output");
            data += n;
            size -= static_cast<std::size_t>(n);
        }
    };
    unsigned char header[stream_header];
    read_exactly(header, stream_header);
    crypto_secretstream_xchacha20poly1305_state state;
    if (crypto_secretstream_xchacha20poly1305_init_pull(&state, header, key.data.data()) != 0)
        damaged(where, "its header is invalid");
    std::string plain(plain_size, '\0');
    std::uint64_t offset = 0;
    bool final_seen = false;
    do {
        const std::size_t size =
            static_cast<std::size_t>(std::min<std::uint64_t>(chunk_bytes, plain_size - offset));
        read_exactly(buffer.data(), size + stream_overhead);
        unsigned long long length = 0;
        unsigned char tag = 0;
        if (crypto_secretstream_xchacha20poly1305_pull(
                &state, reinterpret_cast<unsigned char*>(plain.data()) + offset, &length, &tag,
                buffer.data(), size + stream_overhead, bytes_of(ad), ad.size()) != 0 ||
            length != size) {
            damaged(where, "it does not decrypt with this key");
        }
        offset += size;
        final_seen = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
        if (final_seen != (offset == plain_size)) damaged(where, "it was truncated or extended");
    } while (offset < plain_size);
    sodium_memzero(&state, sizeof state);
    return plain;
}

}  // namespace checkpoint::detail
