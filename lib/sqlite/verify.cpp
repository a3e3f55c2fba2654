#include "sqlite/verify.hpp"

#include "crypto/field_cipher.hpp"
#include "sha256.hpp"
#include "sqlite/output_files.hpp"

#include <checkpoint/error.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <sqlite3.h>

namespace checkpoint::detail {

namespace {

// Each check is a query whose rows are problems: one text column describing each.
struct Check {
    const char* sql;
};

// The stored timestamp form, checked by shape and by SQLite's own calendar.
#define CHECKPOINT_TIMESTAMP_OK(column)                                        \
    "(" column                                                                 \
    " GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:" \
    "[0-9][0-9].[0-9][0-9][0-9]Z' AND strftime('%Y-%m-%dT%H:%M:%fZ', " column ") IS " column ")"

constexpr Check checks[] = {
    {"SELECT 'checkpoints row ' || id || ': unknown status ' || quote(status) "
     "FROM checkpoints WHERE status NOT IN ('started', 'completed', 'failed', 'cleared')"},
    {"SELECT 'checkpoints row ' || id || ': no stage, but status ' || quote(status) "
     "FROM checkpoints WHERE stage IS NULL AND status IS NOT 'cleared'"},
    {"SELECT 'checkpoints row ' || id || ': timestamp ' || quote(timestamp) || "
     "' is not ISO-8601 UTC with milliseconds' FROM checkpoints "
     "WHERE NOT " CHECKPOINT_TIMESTAMP_OK("timestamp")},
    {"SELECT 'checkpoints row ' || id || ': negative version ' || quote(version) "
     "FROM checkpoints WHERE typeof(version) <> 'integer' OR version < 0"},
    {"SELECT 'checkpoints row ' || id || ': completed with version ' || version || "
     "' (completed versions start at 1)' FROM checkpoints "
     "WHERE status = 'completed' AND version < 1"},
    // Completed versions strictly increase per stage; no row goes below an earlier one.
    {"SELECT 'checkpoints row ' || id || ': stage ' || quote(stage) || CASE WHEN status = "
     "'completed' THEN ' completed as version ' || version || ', but an earlier row of the "
     "stage already reached version ' || previous || ' (each completed version must be above "
     "every earlier one)' ELSE ' is at version ' || version || ', below version ' || previous || "
     "' of an earlier row of the stage (versions never go down)' END FROM ("
     "  SELECT id, stage, status, version, max(version) OVER ("
     "    PARTITION BY pipeline, stage ORDER BY id "
     "    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous "
     "  FROM checkpoints WHERE stage IS NOT NULL) "
     "WHERE previous IS NOT NULL AND "
     "(CASE WHEN status = 'completed' THEN version <= previous ELSE version < previous END)"},
    {"SELECT 'checkpoints row ' || id || ': run ' || quote(run_id) || ' is not in runs' "
     "FROM checkpoints c WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = c.run_id)"},
    {"SELECT 'checkpoints row ' || id || ': negative duration ' || duration_ms "
     "FROM checkpoints WHERE duration_ms < 0"},
    {"SELECT 'run ' || quote(run_id) || ': unknown outcome ' || quote(outcome) FROM runs "
     "WHERE outcome NOT IN ('running', 'finished', 'failed', 'died')"},
    {"SELECT 'run ' || quote(run_id) || ': started_at ' || quote(started_at) || "
     "' is not ISO-8601 UTC with milliseconds' FROM runs "
     "WHERE NOT " CHECKPOINT_TIMESTAMP_OK("started_at")},
    {"SELECT 'run ' || quote(run_id) || ': ended_at ' || quote(ended_at) || "
     "' is not ISO-8601 UTC with milliseconds, or before started_at' FROM runs "
     "WHERE ended_at IS NOT NULL AND (NOT " CHECKPOINT_TIMESTAMP_OK(
         "ended_at") " OR ended_at < started_at)"},
    // The derived state must agree with the history it is derived from.
    {"SELECT 'stage ' || quote(c.stage) || ' of pipeline ' || quote(c.pipeline) || "
     "': derived state (stage_heads) disagrees with its history' FROM ("
     "  SELECT pipeline, stage, max(id) AS last_id, max(version) AS last_version "
     "  FROM checkpoints WHERE stage IS NOT NULL GROUP BY pipeline, stage) c "
     "LEFT JOIN stage_heads h ON h.pipeline = c.pipeline AND h.stage = c.stage "
     "LEFT JOIN checkpoints l ON l.id = c.last_id "
     "WHERE h.stage IS NULL OR h.head_id IS NOT c.last_id "
     "OR h.version IS NOT c.last_version OR h.status IS NOT l.status"},
    {"SELECT 'stage ' || quote(stage) || ' of pipeline ' || quote(pipeline) || "
     "': derived state points at missing history row ' || head_id FROM stage_heads h "
     "WHERE NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.id = h.head_id)"},
    {"SELECT 'stage ' || quote(h.stage) || ' of pipeline ' || quote(h.pipeline) || "
     "': derived state points at history row ' || h.head_id || ', which is not its own' "
     "FROM stage_heads h JOIN checkpoints c ON c.id = h.head_id "
     "WHERE c.pipeline IS NOT h.pipeline OR c.stage IS NOT h.stage"},
    {"SELECT 'pipeline ' || quote(p.pipeline) || ': last clear recorded as row ' || "
     "p.cleared_id || ', but the history says ' || coalesce(c.last_clear, 0) "
     "FROM pipelines p LEFT JOIN (SELECT pipeline, max(id) AS last_clear FROM checkpoints "
     "WHERE stage IS NULL GROUP BY pipeline) c ON c.pipeline = p.pipeline "
     "WHERE p.cleared_id IS NOT coalesce(c.last_clear, 0)"},
    {"SELECT 'pipeline ' || quote(c.pipeline) || ': has history but no pipelines row' "
     "FROM (SELECT DISTINCT pipeline FROM checkpoints) c "
     "WHERE NOT EXISTS (SELECT 1 FROM pipelines p WHERE p.pipeline = c.pipeline)"},
    // Schema 2: what a save carries. Only completed rows carry anything.
    {"SELECT 'checkpoints row ' || id || ': ' || status || ' row carries ' || "
     "CASE WHEN metadata IS NOT NULL THEN 'metadata' WHEN fingerprint IS NOT NULL THEN "
     "'a fingerprint' WHEN output_size IS NOT NULL THEN 'an output' ELSE 'inputs' END "
     "FROM checkpoints WHERE status <> 'completed' AND (metadata IS NOT NULL OR "
     "fingerprint IS NOT NULL OR output_size IS NOT NULL OR input_count <> 0)"},
    {"SELECT 'checkpoints row ' || id || ': metadata is not a JSON object' FROM checkpoints "
     "WHERE metadata IS NOT NULL AND key_id IS NULL AND (NOT json_valid(metadata) OR "
     "json_type(metadata) <> 'object')"},
    {"SELECT 'checkpoints row ' || id || ': output columns are inconsistent (size ' || "
     "quote(output_size) || ', sha256 ' || quote(output_sha256) || ', in database ' || "
     "quote(output_in_database) || ')' FROM checkpoints "
     "WHERE (output_size IS NULL) <> (output_sha256 IS NULL) "
     "OR (output_size IS NULL) <> (output_in_database IS NULL) "
     "OR (output_size IS NOT NULL AND (typeof(output_size) <> 'integer' OR output_size < 0 "
     "OR length(output_sha256) <> 64 OR output_sha256 GLOB '*[^0-9a-f]*' "
     "OR output_in_database NOT IN (0, 1)))"},
    {"SELECT 'checkpoints row ' || c.id || ': its output is missing from output_data' "
     "FROM checkpoints c WHERE c.output_in_database = 1 "
     "AND NOT EXISTS (SELECT 1 FROM output_data d WHERE d.checkpoint_id = c.id)"},
    {"SELECT 'checkpoints row ' || c.id || ': its output in output_data holds ' || "
     "length(d.data) || ' bytes instead of ' || c.output_size || ', or another SHA-256' "
     "FROM checkpoints c JOIN output_data d ON d.checkpoint_id = c.id "
     "WHERE c.key_id IS NULL AND (length(d.data) IS NOT c.output_size OR "
     "checkpoint_sha256(d.data) IS NOT c.output_sha256)"},
    {"SELECT 'output_data row ' || d.checkpoint_id || ': no checkpoints row stores its output "
     "in the database' FROM output_data d WHERE NOT EXISTS (SELECT 1 FROM checkpoints c "
     "WHERE c.id = d.checkpoint_id AND c.output_in_database = 1)"},
    {"SELECT 'checkpoints row ' || c.id || ': input_count ' || c.input_count || "
     "' but ' || (SELECT count(*) FROM checkpoint_inputs i WHERE i.checkpoint_id = c.id) || "
     "' rows in checkpoint_inputs' FROM checkpoints c WHERE c.input_count IS NOT "
     "(SELECT count(*) FROM checkpoint_inputs i WHERE i.checkpoint_id = c.id)"},
    {"SELECT 'checkpoint_inputs of row ' || i.checkpoint_id || ': no such checkpoints row' "
     "FROM checkpoint_inputs i WHERE NOT EXISTS (SELECT 1 FROM checkpoints c "
     "WHERE c.id = i.checkpoint_id)"},
    {"SELECT 'checkpoints row ' || i.checkpoint_id || ': its input ' || quote(i.input_stage) || "
     "' names row ' || i.input_id || ', which is not an earlier row' FROM checkpoint_inputs i "
     "WHERE i.input_id >= i.checkpoint_id"},
    {"SELECT 'stage ' || quote(h.stage) || ' of pipeline ' || quote(h.pipeline) || "
     "': derived state (stage_heads.checks) disagrees with its last row' FROM stage_heads h "
     "JOIN checkpoints c ON c.id = h.head_id WHERE h.checks IS NOT "
     "(c.status = 'completed' AND (c.output_in_database IS 0 OR c.input_count > 0))"},
    // An input's row may have been pruned since; while it exists, it must be what it says.
    {"SELECT 'checkpoints row ' || i.checkpoint_id || ': its input ' || quote(i.input_stage) || "
     "' names row ' || i.input_id || ', which is not that stage''s completed version ' || "
     "i.input_version FROM checkpoint_inputs i JOIN checkpoints u ON u.id = i.input_id "
     "JOIN checkpoints c ON c.id = i.checkpoint_id WHERE u.pipeline IS NOT c.pipeline "
     "OR u.stage IS NOT i.input_stage OR u.status <> 'completed' "
     "OR u.version IS NOT i.input_version"},
};

#undef CHECKPOINT_TIMESTAMP_OK

// checkpoint_sha256(blob): its SHA-256 as 64 lower-case hex digits, for the checks above.
void sha256_function(sqlite3_context* context, int, sqlite3_value** arguments) {
    const void* bytes = sqlite3_value_blob(arguments[0]);
    const int size = sqlite3_value_bytes(arguments[0]);
    const std::string hex =
        to_hex(sha256(std::string_view(static_cast<const char*>(bytes), size > 0 ? size : 0)));
    sqlite3_result_text(context, hex.c_str(), static_cast<int>(hex.size()), SQLITE_TRANSIENT);
}

void register_sha256_function(SQLite::Database& db) {
    sqlite3_create_function(db.getHandle(), "checkpoint_sha256", 1,
                            SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr, sha256_function, nullptr,
                            nullptr);
}

// Every output file that a row names exists, with its size and SHA-256.
void check_output_files(SQLite::Database& db, const std::filesystem::path& outputs,
                        std::vector<std::string>& problems, std::size_t max_problems,
                        const DatabaseKey* key) {
    try {
        SQLite::Statement files(db,
                                "SELECT output_sha256, output_size, min(id), count(*) FROM "
                                "checkpoints WHERE output_in_database = 0 "
                                "GROUP BY output_sha256, output_size");
        while (problems.size() < max_problems && files.executeStep()) {
            const std::string sha = files.getColumn(0).getString();
            const std::int64_t others = files.getColumn(3).getInt64() - 1;
            const std::string rows =
                "row " + std::to_string(files.getColumn(2).getInt64()) +
                (others == 0 ? std::string()
                             : " (and " + std::to_string(others) + " later row" +
                                   (others == 1 ? "" : "s") + " with the same output)");
            if (!is_sha256_hex(sha)) continue;  // reported by the column checks
            try {
                read_output_file(outputs, sha,
                                 static_cast<std::uint64_t>(files.getColumn(1).getInt64()), key);
            } catch (const Error& e) {
                problems.push_back("checkpoints " + rows + ": " + e.what());
            }
        }
    } catch (const SQLite::Exception& e) {
        problems.push_back(std::string("the output file check could not run: ") + e.what());
    }
}

// An encrypted database: every output in output_data decrypts in its row's context and
// matches the row's size and SHA-256.
void check_encrypted_outputs(SQLite::Database& db, const DatabaseKey& key,
                             std::vector<std::string>& problems, std::size_t max_problems) {
    try {
        SQLite::Statement rows(db,
                               "SELECT c.id, c.pipeline, coalesce(c.stage, ''), c.version, "
                               "c.output_size, c.output_sha256, d.data FROM checkpoints c "
                               "JOIN output_data d ON d.checkpoint_id = c.id ORDER BY c.id");
        while (problems.size() < max_problems && rows.executeStep()) {
            const std::string id = std::to_string(rows.getColumn(0).getInt64());
            const std::string pipeline = rows.getColumn(1).getString();
            const std::string stage = rows.getColumn(2).getString();
            const SQLite::Column data = rows.getColumn(6);
            try {
                const std::string plain =
                    open_field(key, {pipeline, stage, rows.getColumn(3).getInt64(), "output"},
                               std::string_view(static_cast<const char*>(data.getBlob()),
                                                static_cast<std::size_t>(data.getBytes())),
                               "checkpoints row " + id);
                if (static_cast<std::int64_t>(plain.size()) != rows.getColumn(4).getInt64() ||
                    to_hex(sha256(plain)) != rows.getColumn(5).getString()) {
                    problems.push_back("checkpoints row " + id +
                                       ": its output in output_data decrypts to other bytes "
                                       "than its size and SHA-256 say");
                }
            } catch (const Error& e) {
                problems.push_back(e.what());
            }
        }
    } catch (const SQLite::Exception& e) {
        problems.push_back(std::string("the encrypted output check could not run: ") + e.what());
    }
}

}  // namespace

std::vector<std::string> verify_database(SQLite::Database& db, const std::filesystem::path& outputs,
                                         const DatabaseKey* key, std::size_t max_problems) {
    std::vector<std::string> problems;
    register_sha256_function(db);
    {
        SQLite::Statement integrity(db, "PRAGMA integrity_check(100)");
        while (integrity.executeStep()) {
            const std::string line = integrity.getColumn(0).getString();
            if (line != "ok") problems.push_back("integrity_check: " + line);
        }
    }
    // Integrity problems may be damaged pages or only broken CHECK constraints: run the
    // table checks anyway, reporting the ones that the damage keeps from running.
    for (const Check& check : checks) {
        try {
            SQLite::Statement query(db, check.sql);
            while (problems.size() < max_problems && query.executeStep())
                problems.push_back(query.getColumn(0).getString());
        } catch (const SQLite::Exception& e) {
            problems.push_back(std::string("a table check could not run: ") + e.what());
        }
    }
    check_output_files(db, outputs, problems, max_problems, key);
    if (key) check_encrypted_outputs(db, *key, problems, max_problems);
    return problems;
}

}  // namespace checkpoint::detail
