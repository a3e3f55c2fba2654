#include "clock.hpp"

#include <checkpoint/error.hpp>

#include <cctype>
#include <cstdio>
#include <ctime>

namespace checkpoint::detail {

std::string format_timestamp(std::chrono::system_clock::time_point when) {
    using namespace std::chrono;
    const auto millis = duration_cast<milliseconds>(when.time_since_epoch()).count();
    std::time_t seconds = static_cast<std::time_t>(millis / 1000);
    int fraction = static_cast<int>(millis % 1000);
    if (fraction < 0) fraction += 1000, seconds -= 1;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char buffer[64];  // room for any int year, so the format can never truncate
    std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, fraction);
    return buffer;
}

std::string utc_now() {
    return format_timestamp(std::chrono::system_clock::now());
}

bool is_stored_timestamp(std::string_view text) {
    if (text.size() != 24 || text.back() != 'Z') return false;
    try {
        normalize_time_bound(text, "timestamp");
    } catch (const Error&) {
        return false;
    }
    std::tm fields{};
    const std::string copy(text);
    if (strptime(copy.c_str(), "%Y-%m-%dT%H:%M:%S", &fields) == nullptr) return false;
    // A date such as February 30 parses, but does not survive the round trip.
    std::tm normalized = fields;
    const std::time_t seconds = timegm(&normalized);
    std::tm back{};
    gmtime_r(&seconds, &back);
    return back.tm_mday == fields.tm_mday && back.tm_mon == fields.tm_mon &&
           back.tm_hour == fields.tm_hour && back.tm_min == fields.tm_min &&
           back.tm_sec == fields.tm_sec;
}

std::string normalize_time_bound(std::string_view text, std::string_view what) {
    // The stored form, position by position: digits where 'd', the literal elsewhere.
    static constexpr std::string_view pattern = "dddd-dd-ddTdd:dd:dd.ddd";
    std::string_view body = text;
    if (!body.empty() && body.back() == 'Z') body.remove_suffix(1);
    // Accepted lengths: a date, minutes, seconds, milliseconds.
    const bool length_ok =
        body.size() == 10 || body.size() == 16 || body.size() == 19 || body.size() == 23;
    bool shape_ok = length_ok;
    for (std::size_t i = 0; shape_ok && i < body.size(); ++i) {
        const char expected = pattern[i];
        const char got = body[i];
        shape_ok = expected == 'd' ? std::isdigit(static_cast<unsigned char>(got)) != 0
                                   : (got == expected || (expected == 'T' && got == ' '));
    }
    if (!shape_ok) {
        throw Error(ErrorCode::InvalidArgument,
                    "invalid " + std::string(what) + " '" + std::string(text) +
                        "': use ISO-8601 UTC such as 2026-11-27, 2026-11-27T06:37 or "
                        "2026-11-27T06:37:48.123Z");
    }
    std::string normalized(body);
    if (normalized.size() > 10) normalized[10] = 'T';
    return normalized;
}

}  // namespace checkpoint::detail
