#include "legacy_import.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace checkpointctl {

namespace {

constexpr std::string_view suffix = ".checkpoint";
constexpr std::uintmax_t max_file_bytes = 64 * 1024;

std::string_view trim(std::string_view text) {
    const auto blank = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
    while (!text.empty() && blank(text.front())) text.remove_prefix(1);
    while (!text.empty() && blank(text.back())) text.remove_suffix(1);
    return text;
}

std::string format_utc(std::int64_t millis_since_epoch) {
    std::time_t seconds = static_cast<std::time_t>(millis_since_epoch / 1000);
    int millis = static_cast<int>(millis_since_epoch % 1000);
    if (millis < 0) millis += 1000, seconds -= 1;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
    return buffer;
}

bool all_digits(std::string_view text) {
    return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) != 0;
    });
}

int to_int(std::string_view digits) {
    return std::stoi(std::string(digits));
}

// Milliseconds of a fraction of a second written as digits ("5" = 500, "123456" = 123).
int fraction_millis(std::string_view digits) {
    std::string padded(digits.substr(0, 3));
    padded.append(3 - padded.size(), '0');
    return to_int(padded);
}

// A time zone can carry year 0000 or 9999 out of the four-digit form: refuse those.
std::optional<std::string> in_stored_range(std::string utc) {
    if (utc.size() != 24 || utc[0] == '-') return std::nullopt;
    return utc;
}

std::optional<std::string> parse_epoch(std::string_view text) {
    const auto dot = text.find('.');
    const std::string_view whole = text.substr(0, dot);
    const std::string_view fraction =
        dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
    if (!all_digits(whole) || whole.size() > 11) return std::nullopt;
    if (dot != std::string_view::npos && !all_digits(fraction)) return std::nullopt;
    const std::int64_t seconds = std::stoll(std::string(whole));
    return format_utc(seconds * 1000 + (fraction.empty() ? 0 : fraction_millis(fraction)));
}

}  // namespace

std::optional<std::string> parse_legacy_timestamp(std::string_view text) {
    text = trim(text);
    if (auto epoch = parse_epoch(text)) return in_stored_range(*epoch);
    // YYYY-MM-DD[T ]HH:MM:SS
    if (text.size() < 19 || text[4] != '-' || text[7] != '-' ||
        (text[10] != 'T' && text[10] != ' ') || text[13] != ':' || text[16] != ':')
        return std::nullopt;
    for (std::size_t i : {0, 5, 8, 11, 14, 17}) {
        const std::size_t length = i == 0 ? 4 : 2;
        if (!all_digits(text.substr(i, length))) return std::nullopt;
    }
    std::tm fields{};
    fields.tm_year = to_int(text.substr(0, 4)) - 1900;
    fields.tm_mon = to_int(text.substr(5, 2)) - 1;
    fields.tm_mday = to_int(text.substr(8, 2));
    fields.tm_hour = to_int(text.substr(11, 2));
    fields.tm_min = to_int(text.substr(14, 2));
    fields.tm_sec = to_int(text.substr(17, 2));
    std::string_view rest = text.substr(19);
    int millis = 0;
    if (!rest.empty() && rest.front() == '.') {
        std::size_t digits = 1;
        while (digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits])))
            ++digits;
        if (digits == 1) return std::nullopt;
        millis = fraction_millis(rest.substr(1, digits - 1));
        rest.remove_prefix(digits);
    }
    std::optional<int> offset_minutes;  // east of UTC
    if (rest == "Z" || rest == "z") {
        offset_minutes = 0;
    } else if (!rest.empty() && (rest.front() == '+' || rest.front() == '-')) {
        std::string zone(rest.substr(1));
        zone.erase(std::remove(zone.begin(), zone.end(), ':'), zone.end());
        if (zone.size() != 4 || !all_digits(zone)) return std::nullopt;
        const int minutes = to_int(zone.substr(0, 2)) * 60 + to_int(zone.substr(2, 2));
        offset_minutes = rest.front() == '+' ? minutes : -minutes;
    } else if (!rest.empty()) {
        return std::nullopt;
    }
    const std::tm given = fields;
    std::time_t seconds;
    if (offset_minutes) {
        seconds = timegm(&fields) - static_cast<std::time_t>(*offset_minutes) * 60;
    } else {
        fields.tm_isdst = -1;  // local time, daylight saving as it was on that date
        seconds = std::mktime(&fields);
    }
    // Reject dates that do not exist (February 30): the normalized fields differ.
    if (fields.tm_mday != given.tm_mday || fields.tm_mon != given.tm_mon || given.tm_hour > 23 ||
        given.tm_min > 59 || given.tm_sec > 60)
        return std::nullopt;
    return in_stored_range(format_utc(static_cast<std::int64_t>(seconds) * 1000 + millis));
}

std::variant<std::optional<std::string>, LegacyFileError> parse_legacy_file(std::string_view text) {
    std::istringstream content{std::string(text)};
    std::vector<std::string> lines;
    for (std::string line; std::getline(content, line);) {
        if (!trim(line).empty()) lines.emplace_back(trim(line));
    }
    if (lines.empty()) return std::optional<std::string>{};  // completed, dated by its mtime
    if (lines[0] != "COMPLETED") {
        return LegacyFileError{"malformed: expected COMPLETED, found '" + lines[0] + "'"};
    }
    std::optional<std::string> timestamp;
    for (std::size_t i = 1; i < lines.size(); ++i) {
        const std::string_view line = lines[i];
        constexpr std::string_view key = "Timestamp:";
        if (line.substr(0, key.size()) != key || timestamp) {
            return LegacyFileError{"malformed: unexpected line '" + lines[i] + "'"};
        }
        if (!(timestamp = parse_legacy_timestamp(line.substr(key.size())))) {
            return LegacyFileError{"malformed: cannot read the time in '" + lines[i] + "'"};
        }
    }
    return timestamp;
}

LegacyScan scan_legacy_directory(const std::filesystem::path& directory) {
    std::error_code error;
    std::filesystem::directory_iterator entries(directory, error);
    if (error) {
        throw std::runtime_error("legacy directory " + directory.string() + ": cannot be read (" +
                                 error.message() + ")");
    }
    LegacyScan scan;
    std::vector<std::filesystem::path> files;
    for (const auto& entry : entries) {
        const std::string name = entry.path().filename().string();
        if (name.size() > suffix.size() &&
            name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
            files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
        const auto skip = [&](const std::string& reason) {
            scan.problems.push_back({file, reason});
        };
        if (!std::filesystem::is_regular_file(file, error)) {
            skip("not a regular file");
            continue;
        }
        const auto size = std::filesystem::file_size(file, error);
        if (error || size > max_file_bytes) {
            skip(error ? "cannot be read (" + error.message() + ")"
                       : "too large for a checkpoint file (" + std::to_string(size) + " bytes)");
            continue;
        }
        std::ifstream in(file, std::ios::binary);
        std::stringstream content;
        content << in.rdbuf();
        if (!in.good() && !in.eof()) {
            skip("cannot be read");
            continue;
        }
        if (!in.is_open()) {
            skip("cannot be opened");
            continue;
        }
        auto parsed = parse_legacy_file(content.str());
        if (const auto* problem = std::get_if<LegacyFileError>(&parsed)) {
            skip(problem->reason);
            continue;
        }
        auto timestamp = std::get<std::optional<std::string>>(std::move(parsed));
        const bool timestamp_written = timestamp.has_value();
        if (!timestamp) {
            const auto modified = std::filesystem::last_write_time(file, error);
            if (error) {
                skip("cannot read its modification time (" + error.message() + ")");
                continue;
            }
            const auto system = std::chrono::time_point_cast<std::chrono::milliseconds>(
                std::chrono::file_clock::to_sys(modified));
            timestamp = format_utc(system.time_since_epoch().count());
        }
        const std::string name = file.filename().string();
        const bool blank = content.str().find_first_not_of(" \t\r\n") == std::string::npos;
        scan.checkpoints.push_back({name.substr(0, name.size() - suffix.size()), *timestamp, file,
                                    timestamp_written, blank});
    }
    return scan;
}

}  // namespace checkpointctl
