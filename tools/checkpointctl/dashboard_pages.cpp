#include "dashboard_pages.hpp"

namespace checkpointctl::dashboard {

namespace {

std::string head(std::string_view title, std::string_view extra) {
    std::string html =
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    html += extra;
    html += "<title>" + html_escape(title) + "</title>\n";
    return html;
}

const char* const top_bar =
    "<header class=\"top\"><a class=\"brand\" href=\"/\">checkpoint</a>"
    "<span class=\"crumbs\" id=\"crumbs\"></span><span class=\"live\" id=\"live\"></span>"
    "</header>\n";

}  // namespace

std::string_view asset(const std::string& name) {
    return embedded_assets().at(name);
}

std::string html_escape(std::string_view text) {
    std::string escaped;
    escaped.reserve(text.size());
    for (const char c : text) {
        switch (c) {
            case '&':
                escaped += "&amp;";
                break;
            case '<':
                escaped += "&lt;";
                break;
            case '>':
                escaped += "&gt;";
                break;
            case '"':
                escaped += "&quot;";
                break;
            case '\'':
                escaped += "&#39;";
                break;
            default:
                escaped += c;
        }
    }
    return escaped;
}

const char* const page_security_policy =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

std::string page_html(std::string_view view, std::string_view title) {
    std::string html = head(title, "<link rel=\"stylesheet\" href=\"/assets/dashboard.css\">\n");
    html += "</head>\n<body data-view=\"" + html_escape(view) + "\">\n";
    html += top_bar;
    html +=
        "<main id=\"app\"><noscript>This dashboard needs JavaScript; the same data is in "
        "the JSON API (/api/pipelines).</noscript></main>\n"
        "<script src=\"/assets/dashboard.js\"></script>\n</body>\n</html>\n";
    return html;
}

std::string message_page_html(int status, std::string_view heading, std::string_view message) {
    std::string html = head(std::to_string(status) + " " + std::string(heading),
                            "<link rel=\"stylesheet\" href=\"/assets/dashboard.css\">\n");
    html += "</head>\n<body data-view=\"message\">\n";
    html += top_bar;
    html += "<main><h1>" + std::to_string(status) + " " + html_escape(heading) +
            "</h1>\n<div class=\"error\" role=\"alert\">" + html_escape(message) +
            "</div>\n<p><a href=\"/\">Every pipeline</a></p></main>\n</body>\n</html>\n";
    return html;
}

std::string report_html(std::string_view title, const std::string& script_safe_data) {
    std::string html = head(title,
                            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
                            "'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                            "img-src data:; base-uri 'none'; form-action 'none'\">\n");
    html += "<style>\n";
    html += asset("dashboard.css");
    html += "</style>\n</head>\n<body data-view=\"report\">\n";
    html +=
        "<header class=\"top\"><span class=\"brand\">checkpoint</span>"
        "<span class=\"crumbs\" id=\"crumbs\"></span><span class=\"live\">report</span>"
        "</header>\n<main id=\"app\"><noscript>This report needs JavaScript to draw its "
        "tables; its data is the JSON below.</noscript></main>\n";
    html += "<script type=\"application/json\" id=\"checkpoint-data\">";
    html += script_safe_data;
    html += "</script>\n<script>\n";
    html += asset("dashboard.js");
    html += "</script>\n</body>\n</html>\n";
    return html;
}

}  // namespace checkpointctl::dashboard
