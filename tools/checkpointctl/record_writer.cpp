#include "record_writer.hpp"

#include "text_width.hpp"

#include <algorithm>
#include <cstdio>

namespace checkpointctl {

namespace {

// The widest a table cell of `column` gets (0: no limit), so that a table fits a
// 120-column terminal; csv and json hold every value whole.
std::size_t cell_limit(const std::string& column) {
    if (column == "run_id" || column == "timestamp" || column == "last_change" ||
        column == "started_at" || column == "ended_at" || column == "last_activity")
        return 0;
    if (column == "output_sha256") return 12;
    if (column == "message" || column == "reason" || column == "metadata" || column == "inputs")
        return 32;
    return 24;
}

// How a field reads in a table cell (see Field).
std::string table_cell(const Field& field, const std::string& column) {
    if (std::holds_alternative<std::monostate>(field)) return "-";
    if (const auto* number = std::get_if<std::int64_t>(&field)) return std::to_string(*number);
    const auto* value = std::get_if<JsonValue>(&field);
    const std::string& text = value ? value->text : std::get<std::string>(field);
    std::string cell = escaped_text(text);
    const bool ambiguous = cell.empty() || cell == "-" || cell.front() == ' ' ||
                           cell.back() == ' ' || cell.front() == '"';
    if (ambiguous && !value) {
        std::string quoted = "\"";
        for (const char c : cell) {
            if (c == '"') quoted += '\\';
            quoted += c;
        }
        cell = quoted + "\"";
    }
    const std::size_t limit = cell_limit(column);
    if (column == "output_sha256" && cell.size() > limit) return cell.substr(0, limit);
    if (limit != 0) return cut_to_width(cell, limit);
    return cell;
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
    return decode_utf8(text, i).length;
}

}  // namespace

std::string escaped_text(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x80) {
            const std::size_t length = utf8_length(text, i);
            const char32_t code_point = length ? decode_utf8(text, i).code_point : 0;
            // Bytes that are not UTF-8, and the C1 controls, as \xHH.
            if (length == 0 || (code_point >= 0x80 && code_point < 0xA0)) {
                const std::size_t count = length ? length : 1;
                for (std::size_t k = 0; k < count; ++k) {
                    char hex[8];
                    std::snprintf(hex, sizeof hex, "\\x%02X",
                                  static_cast<unsigned char>(text[i + k]));
                    out += hex;
                }
                i += count;
            } else {
                out.append(text.substr(i, length));
                i += length;
            }
            continue;
        }
        switch (c) {
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
                if (c < 0x20 || c == 0x7F) {
                    char hex[8];
                    std::snprintf(hex, sizeof hex, "\\x%02X", c);
                    out += hex;
                } else {
                    out += static_cast<char>(c);
                }
        }
        ++i;
    }
    return out;
}

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

std::vector<std::string> table_cells(const std::vector<Field>& record,
                                     const std::vector<std::string>& columns) {
    std::vector<std::string> cells;
    for (std::size_t i = 0; i < record.size(); ++i)
        cells.push_back(table_cell(record[i], columns[i]));
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
                const auto cells = table_cells(record, columns_);
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
            write_table_row(table_cells(record, columns_));
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
