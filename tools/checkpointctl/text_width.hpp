// How many terminal columns text takes, so that tables stay aligned whatever the names hold:
// a small, self-contained table (no locale needed, unlike wcwidth(3)) of the characters a
// terminal draws two columns wide (East Asian Wide and Fullwidth, emoji) and of those it
// draws over the previous one (combining marks, joiners, variation selectors).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace checkpointctl {

// The columns one code point takes: 0 (combining marks, zero-width joiner and spaces,
// variation selectors), 2 (CJK ideographs, Hangul, kana, fullwidth forms, emoji) or 1.
int code_point_width(char32_t c);

// The columns UTF-8 `text` takes; a byte that is not part of well-formed UTF-8 counts 1.
std::size_t display_width(std::string_view text);

// `text` cut to at most `width` columns (width >= 1), ending in "…" when it was cut; never
// splits a code point (a wide character that does not fit is left out whole).
std::string cut_to_width(std::string_view text, std::size_t width);

// Decodes the well-formed UTF-8 sequence at text[i]: its code point and length; length 0
// when the bytes there are not well-formed UTF-8.
struct DecodedCodePoint {
    char32_t code_point = 0;
    std::size_t length = 0;
};
DecodedCodePoint decode_utf8(std::string_view text, std::size_t i);

}  // namespace checkpointctl
