// PostgresBackend::verify: the invariants of the history that SQLite's verify checks
// (lib/sqlite/verify.cpp), in PostgreSQL's SQL, for every pipeline of the database. The
// server keeps its own pages sound (checksums, WAL); there is no integrity_check to run.
#include "crypto/field_cipher.hpp"
#include "postgres/postgres_backend_impl.hpp"
#include "postgres/postgres_chain.hpp"
#include "sha256.hpp"

#include <checkpoint/error.hpp>

namespace checkpoint::detail {

namespace {

// The stored timestamp form.
#define CHECKPOINT_PG_TIMESTAMP_OK(column) \
    "(" column " ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}Z$')"

// Each check is a query whose rows are problems: one text column describing each.
constexpr const char* checks[] = {
    "SELECT 'checkpoints row ' || id || ': unknown status ' || quote_literal(status) "
    "FROM checkpoints WHERE status NOT IN ('started', 'completed', 'failed', 'cleared')",
    "SELECT 'checkpoints row ' || id || ': no stage, but status ' || quote_literal(status) "
    "FROM checkpoints WHERE stage IS NULL AND status <> 'cleared'",
    "SELECT 'checkpoints row ' || id || ': timestamp ' || quote_literal(timestamp) || "
    "' is not ISO-8601 UTC with milliseconds' FROM checkpoints "
    "WHERE NOT " CHECKPOINT_PG_TIMESTAMP_OK("timestamp"),
    "SELECT 'checkpoints row ' || id || ': completed with version ' || version || "
    "' (completed versions start at 1)' FROM checkpoints "
    "WHERE status = 'completed' AND version < 1",
    // Completed versions strictly increase per stage; no row goes below an earlier one.
    "SELECT 'checkpoints row ' || id || ': stage ' || quote_literal(stage) || CASE WHEN status = "
    "'completed' THEN ' completed as version ' || version || ', but an earlier row of the "
    "stage already reached version ' || previous || ' (each completed version must be above "
    "every earlier one)' ELSE ' is at version ' || version || ', below version ' || previous || "
    "' of an earlier row of the stage (versions never go down)' END FROM ("
    "  SELECT id, stage, status, version, max(version) OVER ("
    "    PARTITION BY pipeline, stage ORDER BY id "
    "    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous "
    "  FROM checkpoints WHERE stage IS NOT NULL) v "
    "WHERE previous IS NOT NULL AND "
    "(CASE WHEN status = 'completed' THEN version <= previous ELSE version < previous END)",
    // The foreign key guarantees it, unless a hand edit dropped it.
    "SELECT 'checkpoints row ' || c.id || ': run ' || quote_literal(c.run_id) || "
    "' is not in runs' FROM checkpoints c "
    "WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = c.run_id)",
    "SELECT 'run ' || quote_literal(run_id) || ': started_at ' || quote_literal(started_at) || "
    "' is not ISO-8601 UTC with milliseconds' FROM runs "
    "WHERE NOT " CHECKPOINT_PG_TIMESTAMP_OK("started_at"),
    "SELECT 'run ' || quote_literal(run_id) || ': ended_at ' || quote_literal(ended_at) || "
    "' is not ISO-8601 UTC with milliseconds, or before started_at' FROM runs "
    "WHERE ended_at IS NOT NULL AND (NOT " CHECKPOINT_PG_TIMESTAMP_OK(
        "ended_at") " OR ended_at < started_at)",
    // The derived state must agree with the history it is derived from.
    "SELECT 'stage ' || quote_literal(c.stage) || ' of pipeline ' || quote_literal(c.pipeline) || "
    "': derived state (stage_heads) disagrees with its history' FROM ("
    "  SELECT pipeline, stage, max(id) AS last_id, max(version) AS last_version "
    "  FROM checkpoints WHERE stage IS NOT NULL GROUP BY pipeline, stage) c "
    "LEFT JOIN stage_heads h ON h.pipeline = c.pipeline AND h.stage = c.stage "
    "LEFT JOIN checkpoints l ON l.id = c.last_id "
    "WHERE h.stage IS NULL OR h.head_id IS DISTINCT FROM c.last_id "
    "OR h.version IS DISTINCT FROM c.last_version OR h.status IS DISTINCT FROM l.status",
    "SELECT 'stage ' || quote_literal(stage) || ' of pipeline ' || quote_literal(pipeline) || "
    "': derived state points at missing history row ' || head_id FROM stage_heads h "
    "WHERE NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.id = h.head_id)",
    "SELECT 'pipeline ' || quote_literal(p.pipeline) || ': last clear recorded as row ' || "
    "p.cleared_id || ', but the history says ' || coalesce(c.last_clear, 0) "
    "FROM pipelines p LEFT JOIN (SELECT pipeline, max(id) AS last_clear FROM checkpoints "
    "WHERE stage IS NULL GROUP BY pipeline) c ON c.pipeline = p.pipeline "
    "WHERE p.cleared_id IS DISTINCT FROM coalesce(c.last_clear, 0)",
    "SELECT 'pipeline ' || quote_literal(c.pipeline) || ': has history but no pipelines row' "
    "FROM (SELECT DISTINCT pipeline FROM checkpoints) c "
    "WHERE NOT EXISTS (SELECT 1 FROM pipelines p WHERE p.pipeline = c.pipeline)",
    // What a save carries. Only completed rows carry anything.
    "SELECT 'checkpoints row ' || id || ': ' || status || ' row carries ' || "
    "CASE WHEN metadata IS NOT NULL THEN 'metadata' WHEN fingerprint IS NOT NULL THEN "
    "'a fingerprint' WHEN output_size IS NOT NULL THEN 'an output' ELSE 'inputs' END "
    "FROM checkpoints WHERE status <> 'completed' AND (metadata IS NOT NULL OR "
    "fingerprint IS NOT NULL OR output_size IS NOT NULL OR input_count <> 0)",
    "SELECT 'checkpoints row ' || id || ': metadata is not a JSON object' FROM checkpoints "
    "WHERE metadata IS NOT NULL AND key_id IS NULL AND jsonb_typeof(metadata) <> 'object'",
    "SELECT 'checkpoints row ' || id || ': output columns are inconsistent (size ' || "
    "quote_nullable(output_size) || ', sha256 ' || quote_nullable(output_sha256) || "
    "', in database ' || quote_nullable(output_in_database) || ')' FROM checkpoints "
    "WHERE (output_size IS NULL) <> (output_sha256 IS NULL) "
    "OR (output_size IS NULL) <> (output_in_database IS NULL) "
    "OR (output_size IS NOT NULL AND (output_sha256 !~ '^[0-9a-f]{64}$' "
    "OR NOT output_in_database))",
    // Every output's chunks: numbered 0, 1, 2, ... with the size and SHA-256 of the row.
    "SELECT 'checkpoints row ' || c.id || ': its output in output_chunks holds ' || "
    "coalesce(d.bytes, 0) || ' bytes in ' || coalesce(d.chunks, 0) || ' chunks instead of ' || "
    "c.output_size || ' bytes, or another SHA-256' FROM checkpoints c "
    "LEFT JOIN LATERAL (SELECT sum(length(data)) AS bytes, count(*) AS chunks, "
    "  max(chunk) AS last, encode(sha256(string_agg(data, ''::bytea ORDER BY chunk)), 'hex') "
    "  AS sha256 FROM output_chunks o WHERE o.checkpoint_id = c.id) d ON true "
    "WHERE c.output_size IS NOT NULL AND (d.chunks IS DISTINCT FROM d.last + 1 "
    "OR (c.key_id IS NULL AND (coalesce(d.bytes, 0) <> c.output_size OR coalesce(d.sha256, "
    "encode(sha256(''::bytea), 'hex')) <> c.output_sha256)))",
    "SELECT 'output_chunks of row ' || o.checkpoint_id || ': no checkpoints row stores an "
    "output there' FROM (SELECT DISTINCT checkpoint_id FROM output_chunks) o "
    "WHERE NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.id = o.checkpoint_id "
    "AND c.output_size IS NOT NULL)",
    "SELECT 'checkpoints row ' || c.id || ': input_count ' || c.input_count || "
    "' but ' || (SELECT count(*) FROM checkpoint_inputs i WHERE i.checkpoint_id = c.id) || "
    "' rows in checkpoint_inputs' FROM checkpoints c WHERE c.input_count <> "
    "(SELECT count(*) FROM checkpoint_inputs i WHERE i.checkpoint_id = c.id)",
    "SELECT 'checkpoints row ' || i.checkpoint_id || ': its input ' || "
    "quote_literal(i.input_stage) || ' names row ' || i.input_id || ', which is not an "
    "earlier row' FROM checkpoint_inputs i WHERE i.input_id >= i.checkpoint_id",
    "SELECT 'stage ' || quote_literal(h.stage) || ' of pipeline ' || quote_literal(h.pipeline) || "
    "': derived state (stage_heads.checks) disagrees with its last row' FROM stage_heads h "
    "JOIN checkpoints c ON c.id = h.head_id WHERE h.checks <> "
    "(c.status = 'completed' AND c.input_count > 0)",
    // An input's row may have been pruned since; while it exists, it must be what it says.
    "SELECT 'checkpoints row ' || i.checkpoint_id || ': its input ' || "
    "quote_literal(i.input_stage) || ' names row ' || i.input_id || ', which is not that "
    "stage''s completed version ' || i.input_version FROM checkpoint_inputs i "
    "JOIN checkpoints u ON u.id = i.input_id JOIN checkpoints c ON c.id = i.checkpoint_id "
    "WHERE u.pipeline IS DISTINCT FROM c.pipeline OR u.stage IS DISTINCT FROM i.input_stage "
    "OR u.status <> 'completed' OR u.version IS DISTINCT FROM i.input_version",
};

#undef CHECKPOINT_PG_TIMESTAMP_OK

// An encrypted database: every output in output_chunks decrypts in its row's context and
// matches the row's size and SHA-256. One output in memory at a time, rows read in pages.
void check_encrypted_outputs(pqxx::transaction_base& tx, const DatabaseKey& key,
                             std::vector<std::string>& problems, std::size_t max_problems) {
    std::int64_t after = 0;
    for (;;) {
        const pqxx::result rows = tx.exec_params(
            "SELECT id, pipeline, coalesce(stage, ''), version, output_size, output_sha256 "
            "FROM checkpoints WHERE id > $1 AND key_id IS NOT NULL AND output_size IS NOT NULL "
            "ORDER BY id LIMIT 500",
            after);
        for (const auto& row : rows) {
            if (problems.size() >= max_problems) return;
            const std::string id = row[0].as<std::string>();
            const std::string pipeline = row[1].as<std::string>();
            const std::string stage = row[2].as<std::string>();
            std::string sealed;
            for (const auto& chunk : tx.exec_params(
                     "SELECT data FROM output_chunks WHERE checkpoint_id = $1 ORDER BY chunk",
                     row[0].as<std::int64_t>())) {
                const pqxx::binarystring bytes(chunk[0]);
                sealed.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
            }
            // A row without chunks is reported by the chunk check above.
            if (sealed.empty()) continue;
            try {
                const std::string plain =
                    open_field(key, {pipeline, stage, row[3].as<std::int64_t>(), "output"}, sealed,
                               "checkpoints row " + id);
                if (static_cast<std::int64_t>(plain.size()) != row[4].as<std::int64_t>() ||
                    to_hex(sha256(plain)) != row[5].as<std::string>()) {
                    problems.push_back("checkpoints row " + id +
                                       ": its output in output_chunks decrypts to other bytes "
                                       "than its size and SHA-256 say");
                }
            } catch (const Error& e) {
                problems.push_back(e.what());
            }
        }
        if (rows.size() < 500) return;
        after = rows[rows.size() - 1][0].as<std::int64_t>();
    }
}

}  // namespace

std::vector<std::string> PostgresBackend::verify() {
    Impl& s = *impl_;
    constexpr std::size_t max_problems = 1000;
    return s.retrying("verifying", [&] {
        std::vector<std::string> problems;
        for (const char* check : checks) {
            // Each check in its own transaction: one that fails (a table altered by hand)
            // is reported, and the others still run.
            try {
                pqxx::read_transaction tx(s.connection());
                for (const auto& row : tx.exec(check)) {
                    if (problems.size() >= max_problems) return problems;
                    problems.push_back(row[0].as<std::string>());
                }
            } catch (const pqxx::sql_error& e) {
                if (classify_failure(std::current_exception()) != FailureKind::Other) throw;
                problems.push_back(std::string("a table check could not run: ") +
                                   redact_uri(e.what()));
            }
        }
        if (const DatabaseKey* key = s.data_key()) {
            try {
                pqxx::read_transaction tx(s.connection());
                check_encrypted_outputs(tx, *key, problems, max_problems);
            } catch (const pqxx::sql_error& e) {
                if (classify_failure(std::current_exception()) != FailureKind::Other) throw;
                problems.push_back(std::string("the encrypted output check could not run: ") +
                                   redact_uri(e.what()));
            }
        }
        return problems;
    });
}

ChainState PostgresBackend::chain_state() {
    Impl& s = *impl_;
    try {
        pqxx::read_transaction tx(s.connection());
        return read_pg_chain_state(tx);
    } catch (const Error&) {
        throw;
    } catch (...) {
        s.fail("reading the history chain");
    }
}

std::vector<std::string> PostgresBackend::verify_chain(const std::optional<ChainHead>& expect) {
    Impl& s = *impl_;
    if (s.key_verdict == KeyVerdict::KeyMissing)
        throw_key_required(s.description, "verifying the history chain");
    try {
        // One snapshot for the head and every row.
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(s.connection());
        const ChainState state = read_pg_chain_state(tx);
        return detail::verify_chain(
            state,
            [&](const std::function<void(const ChainRow&)>& visit) {
                for_each_pg_chain_row(tx, state.start_id, visit);
            },
            s.chain_key(), expect, 1000);
    } catch (const Error&) {
        throw;
    } catch (...) {
        s.fail("verifying the history chain");
    }
}

const SecretKey* PostgresBackend::chain_key() const noexcept {
    return impl_->chain_key();
}

bool PostgresBackend::key_missing() const noexcept {
    return impl_->key_verdict == KeyVerdict::KeyMissing;
}

}  // namespace checkpoint::detail
