// Writes records (rows of named fields) as an aligned table, RFC 4180 CSV, one JSON
// document, or NDJSON — streaming, in constant memory.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace checkpointctl {

enum class Format { Table, Csv, Json, Ndjson };

// A structured value: written as the JSON value `json` (an object, an array) in JSON and
// NDJSON, and as `text` in CSV and tables. `json` must be valid JSON.
struct JsonValue {
    std::string json;
    std::string text;
};

// A field: absent (JSON null, empty in CSV, "-" in a table), text, an integer, or a
// structured value. In a table, text is escaped (escaped_text), quoted ("…", with \" for a
// quote) when it could be mistaken for something else (empty, "-", spaces at either end, a
// leading quote), and cut to a width with "…" (output_sha256: its first 12 characters;
// run_id and timestamps whole).
using Field = std::variant<std::monostate, std::string, std::int64_t, JsonValue>;

// The first `held_records` records are held back and written only when more arrive or at
// finish(): an output that fails early (a damaged row) prints nothing at all, and a table's
// columns are sized on them. Past that, records stream out as they come; a failure then
// leaves a truncated output (JSON unterminated), and the caller's exit code says so.
// `text` as a table shows it, on one line and unambiguously: a backslash as \\, newline,
// carriage return and tab as \n, \r, \t, other control characters (and bytes that are not
// UTF-8) as \xHH.
std::string escaped_text(std::string_view text);

// Appends `text` to `out` as a JSON string literal (quotes, escapes; invalid UTF-8 as U+FFFD).
void append_json_string(std::string& out, std::string_view text);

class RecordWriter {
public:
    static constexpr std::size_t held_records = 1000;

    // Output is gathered in a buffer and written to `out` a buffer-full at a time
    // (buffer_bytes), at finish(), and on destruction (so that a failure mid-way still leaves
    // the records emitted so far).
    static constexpr std::size_t buffer_bytes = 64 * 1024;

    RecordWriter(std::ostream& out, Format format, std::vector<std::string> columns);
    ~RecordWriter();
    RecordWriter(const RecordWriter&) = delete;
    RecordWriter& operator=(const RecordWriter&) = delete;

    // One record: a field per column, in the order of the columns.
    void write(std::vector<Field> record);
    // Ends the output (the held records, JSON's closing bracket). Call once, after the last
    // record; the output is incomplete without it.
    void finish();

private:
    void release_held();
    void emit(const std::vector<Field>& record);
    void write_csv(const std::vector<Field>& record);
    void write_json_object(const std::vector<Field>& record);
    void write_table_row(const std::vector<std::string>& cells);
    void flush();

    std::ostream& out_;
    Format format_;
    std::vector<std::string> columns_;
    std::vector<std::vector<Field>> held_;
    bool streaming_ = false;  // the held records were released: write as they come
    std::int64_t emitted_ = 0;
    std::vector<std::size_t> widths_;  // table column widths, fixed at release
    std::string buffer_;               // written to out_ by flush()
    bool finished_ = false;
};

}  // namespace checkpointctl
