#include "verify.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

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
    {"SELECT 'checkpoints row ' || id || ': stage ' || quote(stage) || ' version ' || "
     "version || CASE WHEN status = 'completed' THEN ' is not above' ELSE ' is below' END || "
     "' the earlier version ' || previous FROM ("
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
};

#undef CHECKPOINT_TIMESTAMP_OK

}  // namespace

std::vector<std::string> verify_database(SQLite::Database& db, std::size_t max_problems) {
    std::vector<std::string> problems;
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
    return problems;
}

}  // namespace checkpoint::detail
