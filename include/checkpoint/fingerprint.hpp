// checkpoint — fingerprints: SHA-256 digests of what a stage's result depends on.
//
//     const std::string fingerprint = checkpoint::Fingerprint()
//                                         .add("preprocess v3")        // code version
//                                         .add(config_text)            // configuration
//                                         .add_file("data/raw.csv")    // an input file
//                                         .str();
//     if (!manager.has_checkpoint("preprocess", fingerprint)) { ... }
#pragma once

#include <checkpoint/export.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace checkpoint {

// Builds a fingerprint from parts, in order. Parts are framed (kind and length), so
// add("ab").add("c") and add("a").add("bc") differ, and so do add("x") and a file holding
// "x". The result is 64 lower-case hexadecimal digits. Copyable; not thread-safe.
class CHECKPOINT_EXPORT Fingerprint {
public:
    Fingerprint();

    // Adds a string part (any bytes).
    Fingerprint& add(std::string_view text);

    // Adds the contents of `file` (read in blocks, any size).
    // Throws Error(NotFound) when the file does not exist, Error(Io) when it cannot be read.
    Fingerprint& add_file(const std::filesystem::path& file);

    // The fingerprint of the parts added so far: 64 lower-case hexadecimal digits.
    std::string str() const;

private:
    std::string digest_;  // SHA-256 of (previous digest, framed part), 32 bytes
};

// The SHA-256 of `text`: 64 lower-case hexadecimal digits.
CHECKPOINT_EXPORT std::string fingerprint_of(std::string_view text);

// The SHA-256 of the contents of `file`: 64 lower-case hexadecimal digits, the same as
// `sha256sum FILE` prints. std::nullopt when the file does not exist.
// Throws Error(Io) when it exists but cannot be read (or is not a regular file).
CHECKPOINT_EXPORT std::optional<std::string> fingerprint_of_file(const std::filesystem::path& file);

}  // namespace checkpoint
