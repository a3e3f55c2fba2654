#include "postgres/location.hpp"

#include <checkpoint/error.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <memory>
#include <vector>

#include <libpq-fe.h>

namespace checkpoint::detail {

namespace {

constexpr std::string_view redacted_secret = "***";
// libpq's compiled-in socket directory on Debian (DEFAULT_PGSOCKET_DIR), used when neither
// the URI nor PGHOST names a host.
constexpr std::string_view default_socket_directory = "/var/run/postgresql";
constexpr std::string_view default_port = "5432";

bool starts_with_icase(std::string_view text, std::size_t at, std::string_view prefix) {
    if (text.size() - at < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(text[at + i])) != prefix[i]) return false;
    }
    return true;
}

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// A [begin, end) range of text that is a secret.
struct Span {
    std::size_t begin;
    std::size_t end;
};

// The passwords in a URI's user info: "scheme://user:SECRET@host", whatever the scheme (a
// location given by mistake as mysql://... must not show its password either). The user
// info ends at the last '@' before the URI ends (white space or a quote): a password that
// holds an unencoded '@' or '/' is still covered (at worst more than the password is hidden).
void find_uri_secrets(std::string_view text, std::vector<Span>& spans) {
    for (std::size_t at = 0; at < text.size(); ++at) {
        if (text.compare(at, 3, "://") != 0) continue;
        const std::size_t after = at + 3;
        std::size_t end = after;
        while (end < text.size() && !is_space(text[end]) && text[end] != '"' &&
               text[end] != '\'')
            ++end;
        const std::string_view rest = text.substr(after, end - after);
        const std::size_t last_at = rest.rfind('@');
        if (last_at != std::string_view::npos) {
            const std::size_t colon = rest.substr(0, last_at).find(':');
            if (colon != std::string_view::npos)
                spans.push_back({after + colon + 1, after + last_at});
        }
        at = end == at ? at : end - 1;
    }
}

// The values of "password=" and "sslpassword=" (any case, also PGPASSWORD=...), in a
// URI's query ("&" ends the value) or a key/value string (white space ends it, or the
// closing quote of a '...' value, with \' and \\ escapes).
void find_keyword_secrets(std::string_view text, std::vector<Span>& spans) {
    for (std::size_t at = 0; at < text.size(); ++at) {
        if (!starts_with_icase(text, at, "password")) continue;
        std::size_t i = at + 8;
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
        if (i >= text.size() || text[i] != '=') continue;
        ++i;
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
        const std::size_t begin = i;
        if (i < text.size() && text[i] == '\'') {
            ++i;
            while (i < text.size() && text[i] != '\'') i += text[i] == '\\' ? 2 : 1;
            i = std::min(i + 1, text.size());
        } else {
            while (i < text.size() && !is_space(text[i]) && text[i] != '&' && text[i] != '"')
                ++i;
        }
        if (i > begin) spans.push_back({begin, i});
        at = i == 0 ? 0 : i - 1;
    }
}

std::vector<Span> find_secrets(std::string_view text) {
    std::vector<Span> spans;
    find_uri_secrets(text, spans);
    find_keyword_secrets(text, spans);
    std::sort(spans.begin(), spans.end(),
              [](const Span& a, const Span& b) { return a.begin < b.begin; });
    return spans;
}

std::string replace_spans(std::string_view text, const std::vector<Span>& spans) {
    std::string out;
    out.reserve(text.size());
    std::size_t at = 0;
    for (const Span& span : spans) {
        if (span.end <= at) continue;  // inside one already replaced
        const std::size_t begin = std::max(span.begin, at);
        out.append(text.substr(at, begin - at));
        out.append(redacted_secret);
        at = span.end;
    }
    out.append(text.substr(at));
    return out;
}

// libpq's complaint about `uri`, made safe to print: it may quote a token of the URI
// ("invalid percent-encoded token: \"pa%zzss\"") or the whole URI. Every quoted fragment
// that overlaps a secret of `uri` is replaced, then anything redact_uri finds.
std::string scrub_libpq_message(std::string message, std::string_view uri) {
    while (!message.empty() && (message.back() == '\n' || is_space(message.back())))
        message.pop_back();
    std::vector<std::string_view> secrets;
    for (const Span& span : find_secrets(uri))
        secrets.push_back(uri.substr(span.begin, span.end - span.begin));
    std::string out;
    std::size_t at = 0;
    while (true) {
        const std::size_t open = message.find('"', at);
        const std::size_t close =
            open == std::string::npos ? std::string::npos : message.find('"', open + 1);
        if (close == std::string::npos) break;
        const std::string_view quoted =
            std::string_view(message).substr(open + 1, close - open - 1);
        bool secret = false;
        for (std::string_view s : secrets) {
            if (quoted.empty() || s.empty()) continue;
            if (s.find(quoted) != std::string_view::npos ||
                quoted.find(s) != std::string_view::npos)
                secret = true;
        }
        out.append(message, at, open + 1 - at);
        out.append(secret ? std::string(redacted_secret) : std::string(quoted));
        out.push_back('"');
        at = close + 1;
    }
    out.append(message, at);
    return redact_uri(out);
}

std::vector<std::string> split_commas(const std::string& text) {
    std::vector<std::string> parts;
    std::size_t at = 0;
    while (true) {
        const std::size_t comma = text.find(',', at);
        parts.push_back(text.substr(at, comma == std::string::npos ? comma : comma - at));
        if (comma == std::string::npos) return parts;
        at = comma + 1;
    }
}

struct ConninfoDeleter {
    void operator()(PQconninfoOption* options) const { PQconninfoFree(options); }
};
using Conninfo = std::unique_ptr<PQconninfoOption, ConninfoDeleter>;

std::map<std::string, std::string> to_map(const PQconninfoOption* options) {
    std::map<std::string, std::string> values;
    for (const PQconninfoOption* o = options; o != nullptr && o->keyword != nullptr; ++o) {
        if (o->val != nullptr) values.emplace(o->keyword, o->val);
    }
    return values;
}

std::string value_or(const std::map<std::string, std::string>& values, const std::string& key,
                     std::string_view fallback) {
    const auto found = values.find(key);
    if (found != values.end() && !found->second.empty()) return found->second;
    return std::string(fallback);
}

[[noreturn]] void invalid(const std::string& redacted, const std::string& why) {
    throw Error(ErrorCode::InvalidArgument,
                "invalid PostgreSQL location " + redacted + ": " + why +
                    ". Use a libpq connection URI: "
                    "postgresql://USER[:PASSWORD]@HOST[:PORT][,HOST2[:PORT2]]/DATABASE[?PARAM=VALUE&...]");
}

}  // namespace

bool is_postgres_location(std::string_view location) {
    return location.substr(0, 13) == "postgresql://" || location.substr(0, 11) == "postgres://";
}

std::string redact_uri(std::string_view text) { return replace_spans(text, find_secrets(text)); }

ServerLocation parse_location(std::string uri) {
    ServerLocation location;
    location.redacted = redact_uri(uri);
    if (!is_postgres_location(uri))
        invalid(location.redacted, "it does not start with postgresql:// or postgres://");

    char* error = nullptr;
    const Conninfo parsed(PQconninfoParse(uri.c_str(), &error));
    if (!parsed) {
        std::string why = "libpq cannot parse it";
        if (error != nullptr) {
            why += " (" + scrub_libpq_message(error, uri) + ")";
            PQfreemem(error);
        }
        invalid(location.redacted, why);
    }
    const std::map<std::string, std::string> given = to_map(parsed.get());
    // Defaults as libpq applies them: the PG* environment variables, then its own.
    const Conninfo defaults_list(PQconndefaults());
    const std::map<std::string, std::string> defaults = to_map(defaults_list.get());

    std::string hosts = value_or(given, "host", "");
    if (hosts.empty()) hosts = value_or(given, "hostaddr", "");
    if (hosts.empty()) hosts = value_or(defaults, "host", "");
    if (hosts.empty()) hosts = value_or(defaults, "hostaddr", default_socket_directory);
    const std::vector<std::string> host_list = split_commas(hosts);
    const std::vector<std::string> port_list =
        split_commas(value_or(given, "port", value_or(defaults, "port", default_port)));
    if (port_list.size() != 1 && port_list.size() != host_list.size()) {
        invalid(location.redacted, "it names " + std::to_string(host_list.size()) +
                                       " hosts but " + std::to_string(port_list.size()) +
                                       " ports (give one port for all, or one per host)");
    }
    for (const std::string& port : port_list) {
        const bool digits = !port.empty() && port.size() <= 5 &&
                            std::all_of(port.begin(), port.end(), [](char c) {
                                return std::isdigit(static_cast<unsigned char>(c)) != 0;
                            });
        if (!port.empty() && (!digits || std::atoi(port.c_str()) < 1 ||
                              std::atoi(port.c_str()) > 65535)) {
            // The port is not quoted: a password with an unencoded '/' ends up here.
            invalid(location.redacted, "a port is not a number from 1 to 65535");
        }
    }
    for (std::size_t i = 0; i < host_list.size(); ++i) {
        std::string host = host_list[i].empty()
                               ? value_or(defaults, "host", default_socket_directory)
                               : host_list[i];
        std::string port = port_list.size() == 1 ? port_list[0] : port_list[i];
        if (port.empty()) port = value_or(defaults, "port", default_port);
        if (host.find(':') != std::string::npos) host = "[" + host + "]";  // IPv6
        if (i > 0) location.endpoint += ",";
        location.endpoint += host + ":" + port;
    }
    location.database = value_or(given, "dbname", value_or(defaults, "dbname", ""));
    if (location.database.empty())
        location.database = value_or(given, "user", value_or(defaults, "user", ""));
    location.uri = std::move(uri);
    return location;
}

std::string describe_location(const ServerLocation& location) {
    return "checkpoint database '" + location.database + "' on " + location.endpoint;
}

}  // namespace checkpoint::detail
