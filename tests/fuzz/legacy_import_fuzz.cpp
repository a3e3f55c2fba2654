// Fuzz target: the parser of the original design's <stage>.checkpoint files
// (tools/checkpointctl/legacy_import.cpp). The input is parsed both as a whole file
// (parse_legacy_file) and as a timestamp (parse_legacy_timestamp). Every timestamp it
// accepts must come out in the stored form YYYY-MM-DDTHH:MM:SS.mmmZ and read back as itself.
#include "legacy_import.hpp"

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

namespace {

[[noreturn]] void fail(const char* what, std::string_view text) {
    std::fprintf(stderr, "legacy_import_fuzz: %s: '%.*s'\n", what, static_cast<int>(text.size()),
                 text.data());
    std::abort();
}

bool stored_form(std::string_view t) {
    constexpr std::string_view shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (t.size() != shape.size()) return false;
    for (std::size_t i = 0; i < t.size(); ++i) {
        const bool ok = shape[i] == 'd' ? std::isdigit(static_cast<unsigned char>(t[i])) != 0
                                        : t[i] == shape[i];
        if (!ok) return false;
    }
    return true;
}

void check_timestamp(std::string_view input, const std::string& stored) {
    if (!stored_form(stored)) fail("a timestamp not in stored form", stored);
    const auto again = checkpointctl::parse_legacy_timestamp(stored);
    if (!again || *again != stored) fail("a stored timestamp does not read back as itself", stored);
    (void)input;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (const auto timestamp = checkpointctl::parse_legacy_timestamp(text))
        check_timestamp(text, *timestamp);
    const auto file = checkpointctl::parse_legacy_file(text);
    if (const auto* timestamp = std::get_if<std::optional<std::string>>(&file)) {
        if (*timestamp) check_timestamp(text, **timestamp);
    } else if (std::get<checkpointctl::LegacyFileError>(file).reason.empty()) {
        fail("a file rejected without a reason", text);
    }
    return 0;
}
