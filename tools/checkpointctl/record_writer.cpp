#include "record_writer.hpp"

#include "text_width.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace checkpointctl {

namespace {

void append_quoted(std::string& out, std::string_view text, const char* quote_escape);

// Appends the decimal digits of `number`, without a temporary string.
void append_integer(std::string& out, std::int64_t number) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, number).ptr;
    out.append(digits, static_cast<std::size_t>(end - digits));
}

// True when `text` holds a byte that makes a CSV field need quotes: a comma, a quote or a
// line break. (One pass; std::string::find_first_of calls memchr once per byte.)
bool needs_csv_quotes(std::string_view text) {
    for (const char c : text) {
        if (c == ',' || c == '"' || c == '\r' || c == '\n') return true;
    }
    return false;
}

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
        std::string quoted;
        append_quoted(quoted, cell, "\\\"");
        cell = std::move(quoted);
    }
    const std::size_t limit = cell_limit(column);
    if (column == "output_sha256" && cell.size() > limit) return cell.substr(0, limit);
    if (limit != 0) return cut_to_width(cell, limit);
    return cell;
}

// Appends `text` to `out` between quotes, each quote doubled (CSV) or escaped with a
// backslash (a table cell).
void append_quoted(std::string& out, std::string_view text, const char* quote_escape) {
    out += '"';
    for (std::size_t start = 0;;) {
        const std::size_t quote = text.find('"', start);
        out.append(text.substr(start, quote == std::string_view::npos ? quote : quote - start));
        if (quote == std::string_view::npos) break;
        out += quote_escape;
        start = quote + 1;
    }
    out += '"';
}

// Appends a field as RFC 4180 CSV: quoted only when it holds a comma, a quote or a line
// break; absent as nothing.
void append_csv_field(std::string& out, const Field& field) {
    if (std::holds_alternative<std::monostate>(field)) return;
    if (const auto* number = std::get_if<std::int64_t>(&field)) {
        append_integer(out, *number);
        return;
    }
    const auto* value = std::get_if<JsonValue>(&field);
    const std::string& text = value ? value->text : std::get<std::string>(field);
    if (!needs_csv_quotes(text)) {
        out += text;
    } else {
        append_quoted(out, text, "\"\"");
    }
}

// The two-character escape that a table cell and a JSON string both use for a backslash,
// newline, carriage return or tab; nullptr for any other byte.
const char* common_escape(unsigned char c) {
    switch (c) {
        case '\\':
            return "\\\\";
        case '\n':
            return "\\n";
        case '\r':
            return "\\r";
        case '\t':
            return "\\t";
        default:
            return nullptr;
    }
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
        if (const char* escape = common_escape(c)) {
            out += escape;
        } else if (c < 0x20 || c == 0x7F) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02X", c);
            out += hex;
        } else {
            out += static_cast<char>(c);
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
        if (c == '"') {
            out += "\\\"";
        } else if (const char* escape = common_escape(c)) {
            out += escape;
        } else {  // another control character (printable ASCII was copied above)
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
            out += escaped;
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

RecordWriter::~RecordWriter() {
    // Without finish() (a failure mid-way): what was emitted still goes out.
    try {
        flush();
    } catch (...) {  // a destructor must not throw; the caller reports the failure
    }
}

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
    if (format_ == Format::Json) buffer_ += emitted_ == 0 ? "]\n" : "\n]\n";
    flush();
    out_.flush();
}

void RecordWriter::flush() {
    if (buffer_.empty()) return;
    out_.write(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
    buffer_.clear();
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
            buffer_ += '[';
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
            buffer_ += '\n';
            break;
        case Format::Json:
            buffer_ += emitted_ == 0 ? "\n" : ",\n";
            write_json_object(record);
            break;
        case Format::Table:
            write_table_row(table_cells(record, columns_));
            break;
    }
    ++emitted_;
    // One write per buffer-full, not one per field or per record.
    if (buffer_.size() >= buffer_bytes) flush();
}

void RecordWriter::write_csv(const std::vector<Field>& record) {
    for (std::size_t i = 0; i < record.size(); ++i) {
        if (i > 0) buffer_ += ',';
        append_csv_field(buffer_, record[i]);
    }
    buffer_ += "\r\n";  // RFC 4180 line break
}

void RecordWriter::write_json_object(const std::vector<Field>& record) {
    buffer_ += '{';
    for (std::size_t i = 0; i < columns_.size(); ++i) {
        if (i > 0) buffer_ += ',';
        append_json_string(buffer_, columns_[i]);
        buffer_ += ':';
        const Field& field = record[i];
        if (const auto* text = std::get_if<std::string>(&field)) {
            append_json_string(buffer_, *text);
        } else if (const auto* number = std::get_if<std::int64_t>(&field)) {
            append_integer(buffer_, *number);
        } else if (const auto* value = std::get_if<JsonValue>(&field)) {
            buffer_ += value->json;
        } else {
            buffer_ += "null";
        }
    }
    buffer_ += '}';
}

void RecordWriter::write_table_row(const std::vector<std::string>& cells) {
    for (std::size_t i = 0; i < cells.size(); ++i) {
        buffer_ += cells[i];
        if (i + 1 < cells.size()) {
            const std::size_t width = display_width(cells[i]);
            buffer_.append(widths_[i] > width ? widths_[i] - width + 2 : 2, ' ');
        }
    }
    buffer_ += '\n';
}

}  // namespace checkpointctl
