#include "record_writer.hpp"

#include <algorithm>
#include <cstdio>

namespace checkpointctl {

namespace {

// How a field reads in a table cell: control characters escaped so a row stays one line.
std::string table_cell(const Field& field) {
    if (std::holds_alternative<std::monostate>(field)) return "-";
    if (const auto* number = std::get_if<std::int64_t>(&field)) return std::to_string(*number);
    const auto* value = std::get_if<JsonValue>(&field);
    std::string cell;
    for (const char c : value ? value->text : std::get<std::string>(field)) {
        switch (c) {
            case '\n':
                cell += "\\n";
                break;
            case '\r':
                cell += "\\r";
                break;
            case '\t':
                cell += "\\t";
                break;
            default:
                cell += c;
        }
    }
    return cell;
}

// Display width of UTF-8 text: one column per code point (continuation bytes do not count).
std::size_t display_width(const std::string& text) {
    return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
        return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    }));
}

std::string csv_field(const Field& field) {
    if (std::holds_alternative<std::monostate>(field)) return {};
    if (const auto* number = std::get_if<std::int64_t>(&field)) return std::to_string(*number);
    const auto* value = std::get_if<JsonValue>(&field);
    const auto& text = value ? value->text : std::get<std::string>(field);
    if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
    std::string quoted = "\"";
    for (const char c : text) {
        if (c == '"') quoted += '"';
        quoted += c;
    }
    return quoted + "\"";
}

// Length of the well-formed UTF-8 sequence starting text[i], or 0 if it is malformed.
std::size_t utf8_length(std::string_view text, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
    const unsigned char lead = byte(i);
    std::size_t length = lead < 0xC2 ? 0 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : lead < 0xF5 ? 4 : 0;
    if (length == 0 || i + length > text.size()) return 0;
    for (std::size_t k = 1; k < length; ++k)
        if ((byte(i + k) & 0xC0) != 0x80) return 0;
    const unsigned char second = byte(i + 1);
    if ((lead == 0xE0 && second < 0xA0) || (lead == 0xED && second > 0x9F) ||
        (lead == 0xF0 && second < 0x90) || (lead == 0xF4 && second > 0x8F))
        return 0;  // overlong, surrogate, or past U+10FFFF
    return length;
}

}  // namespace

// `text` as a JSON string. Invalid UTF-8 (only possible in a hand-edited database)
// becomes U+FFFD, so the output is always valid JSON.
void append_json_string(std::string& out, std::string_view text) {
    out += '"';
    for (std::size_t i = 0; i < text.size();) {
        // Plain printable ASCII is copied a run at a time.
        std::size_t plain = i;
        while (plain < text.size()) {
            const auto p = static_cast<unsigned char>(text[plain]);
            if (p < 0x20 || p >= 0x80 || p == '"' || p == '\\') break;
            ++plain;
        }
        out.append(text.substr(i, plain - i));
        i = plain;
        if (i == text.size()) break;
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x80) {
            const std::size_t length = utf8_length(text, i);
            if (length == 0) {
                out += "\xEF\xBF\xBD";
                ++i;
            } else {
                out.append(text.substr(i, length));
                i += length;
            }
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20) {
                    char escaped[8];
                    std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
                    out += escaped;
                } else {
                    out += static_cast<char>(c);
                }
        }
        ++i;
    }
    out += '"';
}

namespace {

std::vector<std::string> table_cells(const std::vector<Field>& record) {
    std::vector<std::string> cells;
    for (const auto& field : record) cells.push_back(table_cell(field));
    return cells;
}

}  // namespace

RecordWriter::RecordWriter(std::ostream& out, Format format, std::vector<std::string> columns)
    : out_(out), format_(format), columns_(std::move(columns)) {}

void RecordWriter::write(std::vector<Field> record) {
    record.resize(columns_.size());
    if (streaming_) {
        emit(record);
        return;
    }
    held_.push_back(std::move(record));
    if (held_.size() > held_records) release_held();
}

void RecordWriter::finish() {
    if (finished_) return;
    finished_ = true;
    release_held();
    if (format_ == Format::Json) out_ << (emitted_ == 0 ? "]\n" : "\n]\n");
    out_.flush();
}

// Writes the header (sizing a table's columns on the held records), then the held records.
void RecordWriter::release_held() {
    if (streaming_) return;
    streaming_ = true;
    switch (format_) {
        case Format::Csv:
            write_csv(std::vector<Field>(columns_.begin(), columns_.end()));
            break;
        case Format::Json:
            out_ << "[";
            break;
        case Format::Ndjson:
            break;
        case Format::Table:
            widths_.assign(columns_.size(), 0);
            for (std::size_t i = 0; i < columns_.size(); ++i)
                widths_[i] = display_width(columns_[i]);
            for (const auto& record : held_) {
                const auto cells = table_cells(record);
                for (std::size_t i = 0; i < cells.size(); ++i)
                    widths_[i] = std::max(widths_[i], display_width(cells[i]));
            }
            write_table_row(columns_);
            break;
    }
    for (const auto& record : held_) emit(record);
    held_.clear();
    held_.shrink_to_fit();
}

void RecordWriter::emit(const std::vector<Field>& record) {
    switch (format_) {
        case Format::Csv:
            write_csv(record);
            break;
        case Format::Ndjson:
            write_json_object(record);
            out_ << '\n';
            break;
        case Format::Json:
            out_ << (emitted_ == 0 ? "\n" : ",\n");
            write_json_object(record);
            break;
        case Format::Table:
            write_table_row(table_cells(record));
            break;
    }
    ++emitted_;
}

void RecordWriter::write_csv(const std::vector<Field>& record) {
    for (std::size_t i = 0; i < record.size(); ++i) {
        if (i > 0) out_ << ',';
        out_ << csv_field(record[i]);
    }
    out_ << "\r\n";  // RFC 4180 line break
}

void RecordWriter::write_json_object(const std::vector<Field>& record) {
    line_.clear();
    line_ += '{';
    for (std::size_t i = 0; i < columns_.size(); ++i) {
        if (i > 0) line_ += ',';
        append_json_string(line_, columns_[i]);
        line_ += ':';
        const Field& field = record[i];
        if (const auto* text = std::get_if<std::string>(&field)) {
            append_json_string(line_, *text);
        } else if (const auto* number = std::get_if<std::int64_t>(&field)) {
            line_ += std::to_string(*number);
        } else if (const auto* value = std::get_if<JsonValue>(&field)) {
            line_ += value->json;
        } else {
            line_ += "null";
        }
    }
    line_ += '}';
    out_ << line_;
}

void RecordWriter::write_table_row(const std::vector<std::string>& cells) {
    std::string line;
    for (std::size_t i = 0; i < cells.size(); ++i) {
        line += cells[i];
        if (i + 1 < cells.size()) {
            const std::size_t width = display_width(cells[i]);
            line.append(widths_[i] > width ? widths_[i] - width + 2 : 2, ' ');
        }
    }
    out_ << line << '\n';
}

}  // namespace checkpointctl
