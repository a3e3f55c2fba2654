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

namespace {

// The stored form, position by position: digits where 'd', the literal elsewhere.
constexpr std::string_view stored_pattern = "dddd-dd-ddTdd:dd:dd.ddd";

// True when `body` (no 'Z') is a prefix of the stored form of an accepted length: a date,
// minutes, seconds or milliseconds. A ' ' may stand for the 'T'.
bool has_stored_shape(std::string_view body) {
    if (body.size() != 10 && body.size() != 16 && body.size() != 19 && body.size() != 23)
        return false;
    for (std::size_t i = 0; i < body.size(); ++i) {
        const char expected = stored_pattern[i];
        const char got = body[i];
        const bool ok = expected == 'd' ? std::isdigit(static_cast<unsigned char>(got)) != 0
                                        : (got == expected || (expected == 'T' && got == ' '));
        if (!ok) return false;
    }
    return true;
}

// True when "YYYY-MM-DDTHH:MM:SS..." names a real calendar date and time: February 30,
// month 13 or 25:00 parse field by field, but do not survive the round trip through UTC.
bool is_real_time(const std::string& full) {
    std::tm fields{};
    if (strptime(full.c_str(), "%Y-%m-%dT%H:%M:%S", &fields) == nullptr) return false;
    std::tm normalized = fields;
    const std::time_t seconds = timegm(&normalized);
    std::tm back{};
    gmtime_r(&seconds, &back);
    return back.tm_year == fields.tm_year && back.tm_mon == fields.tm_mon &&
           back.tm_mday == fields.tm_mday && back.tm_hour == fields.tm_hour &&
           back.tm_min == fields.tm_min && back.tm_sec == fields.tm_sec;
}

}  // namespace

bool is_stored_timestamp(std::string_view text) {
    return text.size() == 24 && text.back() == 'Z' && text[10] == 'T' &&
           has_stored_shape(text.substr(0, 23)) && is_real_time(std::string(text));
}

std::string normalize_time_bound(std::string_view text, std::string_view what) {
    std::string_view body = text;
    if (!body.empty() && body.back() == 'Z') body.remove_suffix(1);
    std::string normalized(body);
    if (normalized.size() > 10) normalized[10] = 'T';
    // Complete the bound with the earliest time it stands for, to check it is real.
    static constexpr std::string_view earliest = "0000-01-01T00:00:00.000";
    if (!has_stored_shape(body) ||
        !is_real_time(normalized + std::string(earliest.substr(normalized.size())))) {
        throw Error(ErrorCode::InvalidArgument,
                    "invalid " + std::string(what) + " '" + std::string(text) +
                        "': use a real ISO-8601 UTC date or time such as 2026-11-27, "
                        "2026-11-27T06:37 or 2026-11-27T06:37:48.123Z");
    }
    return normalized;
}

}  // namespace checkpoint::detail
