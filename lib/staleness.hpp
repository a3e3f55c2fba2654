// When a completed checkpoint is not up to date (stale): the rule, once for every backend.
// A backend supplies the facts (StalenessFacts); this file holds no SQL.
//
// A Completed row is stale when its output file is missing or has another size, or when one
// of the inputs it recorded was cleared (by itself or by a pipeline-wide clear), has a newer
// row (saved again, begun, failed), has no history any more, or is stale itself — checked
// transitively, each row once per check.
#pragma once

#include <checkpoint/records.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace checkpoint::detail {

// What staleness needs to know about one history row.
struct RowFacts {
    std::int64_t id = 0;
    std::optional<StoredOutput> output;
    std::int64_t input_count = 0;
    std::string fingerprint;
};

// One input a row recorded, with the current state of the input stage.
struct InputFacts {
    std::string stage;
    std::int64_t used_id = 0;       // the row id of the version the save used
    std::int64_t used_version = 0;  // that version
    // The stage's head (its last row): none when the stage has no history any more.
    struct Head {
        std::int64_t id = 0;
        Status status = Status::Completed;  // of the head row, as stored
        std::int64_t version = 0;           // the stage's latest completed version
    };
    std::optional<Head> head;
    std::int64_t cleared_id = 0;  // the pipeline's last pipeline-wide clear (0: none)
};

// Where a backend's facts come from (inside a transaction, or a read).
class StalenessFacts {
public:
    virtual ~StalenessFacts() = default;
    // The facts of row `id`; a row that retention deleted has nothing to check (id only).
    virtual RowFacts row_facts(std::int64_t id) = 0;
    // The inputs row `id` recorded, in order.
    virtual std::vector<InputFacts> input_facts(std::int64_t id) = 0;
    // The size of the output file for `sha256` (std::nullopt: missing), and its name for
    // messages. Only asked for outputs stored outside the database.
    virtual std::optional<std::uint64_t> output_file_size(const std::string& sha256) = 0;
    virtual std::string output_file_name(const std::string& sha256) = 0;
};

// Answers "why is this row not up to date?" for the rows of one call, each row once.
class StalenessCheck {
public:
    explicit StalenessCheck(StalenessFacts& facts) : facts_(facts) {}

    // Why the Completed row `row` is not up to date; empty when it is.
    std::string reason(const RowFacts& row);

    // Sets checkpoint.stale and stale_reason for a Completed row that has something to
    // check (an output file or inputs); leaves other rows as they are.
    void mark(Checkpoint& checkpoint);

private:
    std::string uncached_reason(const RowFacts& row);

    StalenessFacts& facts_;
    std::map<std::int64_t, std::string> checked_;  // row id -> reason (empty: up to date)
};

// Refuses the save of `stage` naming `input` (SaveOptions::inputs) when that input has no
// completed checkpoint (`completed` false) or is not up to date (`stale_reason` not
// empty): throws Error(InvalidArgument) saying which and what to do. The one check of the
// manager (before the save) and of each backend (again, inside the write transaction).
void require_usable_input(const std::string& stage, const std::string& input, bool completed,
                          const std::string& stale_reason);

// Whether a head with these facts needs StalenessCheck at all (an output file, or inputs).
inline bool has_staleness_checks(const std::optional<StoredOutput>& output,
                                 std::int64_t input_count) {
    return (output && !output->in_database) || input_count > 0;
}

}  // namespace checkpoint::detail
