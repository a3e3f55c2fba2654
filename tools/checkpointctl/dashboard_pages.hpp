// The dashboard's HTML: page shells that dashboard.js fills from the JSON API, the pages
// for errors, and the one-file report. Every text that reaches HTML here is escaped.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace checkpointctl::dashboard {

// The files of tools/checkpointctl/dashboard/, by name ("dashboard.css", "dashboard.js"),
// embedded at build time (cmake/EmbedAssets.cmake).
const std::map<std::string, std::string_view>& embedded_assets();
// One of them; throws std::out_of_range for another name.
std::string_view asset(const std::string& name);

// `text` with &, <, >, " and ' as character references: safe as element text and as a
// quoted attribute value.
std::string html_escape(std::string_view text);

// The Content-Security-Policy of every served page: scripts, styles and requests only from
// the dashboard itself.
extern const char* const page_security_policy;

// A dashboard page: the shell that dashboard.js fills for `view` (pipelines, pipeline, run,
// history) from the JSON API.
std::string page_html(std::string_view view, std::string_view title);

// A page that says what went wrong: "404 Not Found" and why.
std::string message_page_html(int status, std::string_view heading, std::string_view message);

// The self-contained report: CSS, JavaScript and the data (`script_safe_data`, JSON text
// from script_safe_json_text()) inline; its policy forbids every network request.
std::string report_html(std::string_view title, const std::string& script_safe_data);

}  // namespace checkpointctl::dashboard
