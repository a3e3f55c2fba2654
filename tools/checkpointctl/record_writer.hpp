// Writes records (rows of named fields) as an aligned table, RFC 4180 CSV, one JSON
// document, or NDJSON — streaming, in constant memory.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

namespace checkpointctl {

enum class Format { Table, Csv, Json, Ndjson };

// A field: absent (JSON null, empty in CSV, "-" in a table), text, or an integer.
using Field = std::variant<std::monostate, std::string, std::int64_t>;

class RecordWriter {
public:
    RecordWriter(std::ostream& out, Format format, std::vector<std::string> columns);
    ~RecordWriter();
    RecordWriter(const RecordWriter&) = delete;
    RecordWriter& operator=(const RecordWriter&) = delete;

    // One record: a field per column, in the order of the columns.
    void write(std::vector<Field> record);
    // Ends the output (the table's buffered rows, JSON's closing bracket). Call once, after
    // the last record; the output is incomplete without it.
    void finish();

private:
    void start();
    void write_csv(const std::vector<Field>& record);
    void write_json_object(const std::vector<Field>& record);
    void flush_table();
    void write_table_row(const std::vector<std::string>& cells);

    std::ostream& out_;
    Format format_;
    std::vector<std::string> columns_;
    std::int64_t written_ = 0;
    // Table: the first rows are held back to size the columns; later rows reuse the widths.
    std::vector<std::vector<std::string>> pending_;
    std::vector<std::size_t> widths_;
    bool started_ = false;
    bool table_started_ = false;
    bool finished_ = false;
};

}  // namespace checkpointctl
