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
constexpr std::size_t chunk_bytes = sealed_chunk_bytes;
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

// ---- Output files: secretstream ----

struct SealedFileWriter::State {
    crypto_secretstream_xchacha20poly1305_state stream;
    ~State() { sodium_memzero(&stream, sizeof stream); }
};

namespace {

bool write_all(int fd, const unsigned char* data, std::size_t size) {
    while (size > 0) {
        const ssize_t n = ::write(fd, data, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

}  // namespace

SealedFileWriter::SealedFileWriter(int fd, const DatabaseKey& key, const std::string& sha256_hex)
    : fd_(fd),
      ad_(file_associated_data(key, sha256_hex)),
      key_(key),
      buffer_(stream_header + chunk_bytes + stream_overhead),
      state_(std::make_unique<State>()) {}

SealedFileWriter::~SealedFileWriter() = default;

bool SealedFileWriter::start() {
    crypto_secretstream_xchacha20poly1305_init_push(&state_->stream, buffer_.data(),
                                                    key_.data.data());
    return write_all(fd_, buffer_.data(), stream_header);
}

bool SealedFileWriter::push(std::string_view piece, bool last) {
    unsigned long long length = 0;
    crypto_secretstream_xchacha20poly1305_push(
        &state_->stream, buffer_.data(), &length, bytes_of(piece), piece.size(), bytes_of(ad_),
        ad_.size(), last ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
    return write_all(fd_, buffer_.data(), static_cast<std::size_t>(length));
}

struct SealedFileReader::State {
    crypto_secretstream_xchacha20poly1305_state stream;
    ~State() { sodium_memzero(&stream, sizeof stream); }
};

SealedFileReader::SealedFileReader(int fd, const DatabaseKey& key, const std::string& sha256_hex,
                                   std::uint64_t plain_size, std::string where)
    : fd_(fd),
      ad_(file_associated_data(key, sha256_hex)),
      plain_size_(plain_size),
      where_(std::move(where)),
      buffer_(chunk_bytes + stream_overhead),
      state_(std::make_unique<State>()) {
    unsigned char header[stream_header];
    read_exactly(header, stream_header);
    if (crypto_secretstream_xchacha20poly1305_init_pull(&state_->stream, header, key.data.data()) !=
        0)
        damaged(where_, "its header is invalid");
}

SealedFileReader::~SealedFileReader() = default;

void SealedFileReader::read_exactly(unsigned char* data, std::size_t size) {
    while (size > 0) {
        const ssize_t n = ::read(fd_, data, size);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            throw Error(ErrorCode::Io, where_ + ": cannot be read (" + std::strerror(errno) + ")");
        if (n == 0) damaged(where_, "it is shorter than its output");
        data += n;
        size -= static_cast<std::size_t>(n);
    }
}

std::size_t SealedFileReader::next(char* out) {
    // An empty output is one empty final chunk.
    if (started_ && offset_ == plain_size_) return 0;
    started_ = true;
    const std::size_t size =
        static_cast<std::size_t>(std::min<std::uint64_t>(chunk_bytes, plain_size_ - offset_));
    read_exactly(buffer_.data(), size + stream_overhead);
    unsigned long long length = 0;
    unsigned char tag = 0;
    if (crypto_secretstream_xchacha20poly1305_pull(
            &state_->stream, reinterpret_cast<unsigned char*>(out), &length, &tag, buffer_.data(),
            size + stream_overhead, bytes_of(ad_), ad_.size()) != 0 ||
        length != size) {
        damaged(where_, "it does not decrypt with this key");
    }
    offset_ += size;
    const bool final_seen = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    if (final_seen != (offset_ == plain_size_)) damaged(where_, "it was truncated or extended");
    return size;
}

bool write_sealed_file(int fd, const DatabaseKey& key, const std::string& sha256_hex,
                       std::string_view bytes) {
    SealedFileWriter writer(fd, key, sha256_hex);
    if (!writer.start()) return false;
    std::size_t offset = 0;
    do {
        const std::size_t size = std::min(chunk_bytes, bytes.size() - offset);
        if (!writer.push(bytes.substr(offset, size), offset + size == bytes.size())) return false;
        offset += size;
    } while (offset < bytes.size());
    return true;
}

void read_sealed_file(int fd, const DatabaseKey& key, const std::string& sha256_hex,
                      std::uint64_t plain_size, const std::string& where, std::string& plain,
                      const std::function<void(std::string_view)>& on_piece) {
    SealedFileReader reader(fd, key, sha256_hex, plain_size, where);
    plain.assign(plain_size, '\0');
    std::uint64_t offset = 0;
    do {
        const std::size_t size = reader.next(plain.data() + offset);
        if (on_piece) on_piece(std::string_view(plain.data() + offset, size));
        offset += size;
    } while (offset < plain_size);
}

// ---- Fields re-sealed piece by piece (FieldResealer) ----
// crypto_aead_xchacha20poly1305_ietf, spelled out so that it can run over pieces: the
// nonce's first 16 bytes derive a subkey (HChaCha20); ChaCha20-IETF with the nonce's last 8
// bytes (after 4 zero bytes) gives the Poly1305 key (block 0) and the keystream (from block
// 1); the tag is Poly1305 over ad, padding, ciphertext, padding, and both lengths.

namespace {

constexpr std::size_t ietf_nonce_bytes = crypto_aead_chacha20poly1305_ietf_NPUBBYTES;

struct AeadStream {
    unsigned char subkey[crypto_core_hchacha20_OUTPUTBYTES];
    unsigned char nonce[ietf_nonce_bytes];
    crypto_onetimeauth_poly1305_state mac;

    void start(const unsigned char* xnonce, const unsigned char* key, const std::string& ad) {
        crypto_core_hchacha20(subkey, xnonce, key, nullptr);
        std::memset(nonce, 0, 4);
        std::memcpy(nonce + 4, xnonce + crypto_core_hchacha20_INPUTBYTES, ietf_nonce_bytes - 4);
        unsigned char block0[64] = {0};
        crypto_stream_chacha20_ietf(block0, sizeof block0, nonce, subkey);
        crypto_onetimeauth_poly1305_init(&mac, block0);
        sodium_memzero(block0, sizeof block0);
        crypto_onetimeauth_poly1305_update(&mac, bytes_of(ad), ad.size());
        pad(ad.size());
    }
    void pad(std::uint64_t length) {
        static const unsigned char zeros[16] = {0};
        crypto_onetimeauth_poly1305_update(&mac, zeros, (0x10 - length) & 0xf);
    }
    // out = in XOR the keystream at byte `offset` of the ciphertext.
    void apply(unsigned char* out, const unsigned char* in, std::size_t size,
               std::uint64_t offset) const {
        while (size > 0) {
            const std::size_t within = static_cast<std::size_t>(offset % 64);
            const auto block = static_cast<std::uint32_t>(1 + offset / 64);
            std::size_t n = 0;
            if (within == 0 && size >= 64) {
                n = size - size % 64;
                crypto_stream_chacha20_ietf_xor_ic(out, in, n, nonce, block, subkey);
            } else {
                unsigned char stream[64] = {0};
                crypto_stream_chacha20_ietf_xor_ic(stream, stream, 64, nonce, block, subkey);
                n = std::min<std::size_t>(size, 64 - within);
                for (std::size_t i = 0; i < n; ++i) out[i] = in[i] ^ stream[within + i];
                sodium_memzero(stream, sizeof stream);
            }
            out += n;
            in += n;
            size -= n;
            offset += n;
        }
    }
    void tag(std::uint64_t ad_size, std::uint64_t text_size, unsigned char* out) {
        pad(text_size);
        unsigned char lengths[16];
        for (int i = 0; i < 8; ++i) {
            lengths[i] = static_cast<unsigned char>(ad_size >> (8 * i));
            lengths[8 + i] = static_cast<unsigned char>(text_size >> (8 * i));
        }
        crypto_onetimeauth_poly1305_update(&mac, lengths, sizeof lengths);
        crypto_onetimeauth_poly1305_final(&mac, out);
    }
    ~AeadStream() { sodium_memzero(this, sizeof *this); }
};

}  // namespace

struct FieldResealer::State {
    std::string ad_old, ad_new, where;
    const DatabaseKey& old_key;
    const DatabaseKey& new_key;
    std::uint64_t sealed_size;
    std::uint64_t text_size;
    std::uint64_t position = 0;
    unsigned char old_nonce[nonce_bytes];
    unsigned char new_nonce[nonce_bytes];
    unsigned char old_tag[tag_bytes];
    AeadStream old_stream, new_stream;
    std::vector<unsigned char> plain;
    State(const DatabaseKey& o, const DatabaseKey& n) : old_key(o), new_key(n) {}
};

FieldResealer::FieldResealer(const DatabaseKey& old_key, const DatabaseKey& new_key,
                             const FieldContext& context, std::uint64_t sealed_size,
                             std::string where)
    : state_(std::make_unique<State>(old_key, new_key)) {
    State& s = *state_;
    s.where = std::move(where);
    if (sealed_size < nonce_bytes + tag_bytes) damaged(s.where, "the ciphertext is too short");
    s.ad_old = associated_data(old_key, context);
    s.ad_new = associated_data(new_key, context);
    s.sealed_size = sealed_size;
    s.text_size = sealed_size - nonce_bytes - tag_bytes;
    randombytes_buf(s.new_nonce, nonce_bytes);
    s.new_stream.start(s.new_nonce, new_key.data.data(), s.ad_new);
}

FieldResealer::~FieldResealer() {
    if (state_) sodium_memzero(state_->plain.data(), state_->plain.size());
}

std::string FieldResealer::reseal(std::string_view piece) {
    State& s = *state_;
    if (piece.size() > s.sealed_size - s.position) damaged(s.where, "it is longer than recorded");
    std::string out(piece.size(), '\0');
    auto* to = reinterpret_cast<unsigned char*>(out.data());
    const unsigned char* from = bytes_of(piece);
    std::size_t left = piece.size();
    const std::uint64_t text_end = nonce_bytes + s.text_size;
    while (left > 0) {
        std::size_t n = 0;
        if (s.position < nonce_bytes) {
            n = std::min<std::size_t>(left, nonce_bytes - s.position);
            std::memcpy(s.old_nonce + s.position, from, n);
            std::memcpy(to, s.new_nonce + s.position, n);
            if (s.position + n == nonce_bytes)
                s.old_stream.start(s.old_nonce, s.old_key.data.data(), s.ad_old);
        } else if (s.position < text_end) {
            n = static_cast<std::size_t>(std::min<std::uint64_t>(left, text_end - s.position));
            const std::uint64_t offset = s.position - nonce_bytes;
            s.plain.resize(n);
            crypto_onetimeauth_poly1305_update(&s.old_stream.mac, from, n);
            s.old_stream.apply(s.plain.data(), from, n, offset);
            s.new_stream.apply(to, s.plain.data(), n, offset);
            crypto_onetimeauth_poly1305_update(&s.new_stream.mac, to, n);
        } else {
            n = left;  // the tag: kept for finish(); zeros meanwhile
            std::memcpy(s.old_tag + (s.position - text_end), from, n);
        }
        from += n;
        to += n;
        left -= n;
        s.position += n;
    }
    return out;
}

std::string FieldResealer::finish() {
    State& s = *state_;
    if (s.position != s.sealed_size) damaged(s.where, "it is shorter than recorded");
    unsigned char expected[tag_bytes];
    s.old_stream.tag(s.ad_old.size(), s.text_size, expected);
    if (crypto_verify_16(expected, s.old_tag) != 0)
        damaged(s.where, "its output does not decrypt with this key");
    std::string tag(tag_bytes, '\0');
    s.new_stream.tag(s.ad_new.size(), s.text_size, reinterpret_cast<unsigned char*>(tag.data()));
    return tag;
}

std::string open_stored_output(const DatabaseKey* key, std::string_view pipeline,
                               std::string_view stage, std::int64_t row_version, std::string data,
                               const std::string& where) {
    if (!key) return data;
    return open_field(*key, {pipeline, stage, row_version, "output"}, data, where);
}

}  // namespace checkpoint::detail
