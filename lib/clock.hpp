// Wall-clock timestamps in the on-disk format: ISO-8601 UTC with milliseconds.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace checkpoint::detail {

// "2026-11-27T06:37:48.123Z" for `when`.
std::string format_timestamp(std::chrono::system_clock::time_point when);

// format_timestamp(now).
std::string utc_now();

// True when `text` is exactly the stored form "YYYY-MM-DDTHH:MM:SS.mmmZ" of a real
// calendar date and time.
bool is_stored_timestamp(std::string_view text);

// Checks a time bound given by a user ("2026-11-27", "2026-11-27T06:37",
// "2026-11-27T06:37:48", "2026-11-27T06:37:48.123", each optionally ending in "Z") and
// returns it without the "Z", so that it compares as text with stored timestamps.
// Throws Error(InvalidArgument) naming `what` for anything else.
std::string normalize_time_bound(std::string_view text, std::string_view what);

}  // namespace checkpoint::detail
