// PostgresBackend: a single stage write (save, start, failure) in two round trips.
//
// The general write path (attempt_batch) sends each statement on its own and then reads the
// rows it appended back to hash them into the chain: about ten round trips. Here the
// client computes the row itself: the first round trip sends BEGIN, the locks (pipeline,
// chain, lease) and write_state in one simple query, which returns what the row depends on
// (the chain's head, the stage's version, the claim, a new id); the client builds the row,
// seals what the key encrypts and hashes it (lib/history_chain.* holds the encoding), and
// the second round trip sends the row, its inputs and COMMIT. The statements are prepared
// (pg_sql::executed_as_sql) and run with SQL EXECUTE, their parameters quoted by libpq.
#include "clock.hpp"
#include "crypto/field_cipher.hpp"
#include "crypto/secret_key.hpp"
#include "history_chain.hpp"
#include "postgres/postgres_backend_impl.hpp"
#include "postgres/postgres_chain.hpp"
#include "sha256.hpp"

#include <checkpoint/error.hpp>

#include <algorithm>
#include <cstdio>

namespace checkpoint::detail {

namespace {

// PostgreSQL's rendering of a JSON string (jsonb's text output, escape_json()).
std::string json_string(const std::string& text) {
    std::string out = "\"";
    for (const char c : text) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
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
                if (static_cast<unsigned char>(c) < 0x20) {
                    char escaped[8];
                    std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
                    out += escaped;
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
}

std::string from_hex(const std::string& hex) {
    std::string bytes;
    const auto digit = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        bytes.push_back(static_cast<char>(digit(hex[i]) * 16 + digit(hex[i + 1])));
    return bytes;
}

// A history row as the chain sees it, filled column by column; complete() fails when a
// column of chain_row_columns was left out (a column added there must be set here too).
class RowValues {
public:
    RowValues() : row_{std::vector<ChainValue>(chain_row_column_count), {}, std::nullopt} {}

    RowValues& set(std::string_view column, ChainValue value) {
        const std::size_t index = chain_column_index(column);
        if (index == chain_row_column_count)
            throw Error(ErrorCode::Internal, "the chain has no column " + std::string(column));
        row_.values[index] = std::move(value);
        set_[index] = true;
        return *this;
    }
    RowValues& text_or_null(std::string_view column, const std::string& value) {
        return set(column, value.empty() ? ChainValue{} : ChainValue{value});
    }
    RowValues& optional(std::string_view column, const std::optional<std::int64_t>& value) {
        return set(column, value ? ChainValue{*value} : ChainValue{});
    }
    ChainRow& complete() {
        for (std::size_t i = 0; i < chain_row_column_count; ++i) {
            if (!set_[i]) {
                throw Error(ErrorCode::Internal,
                            std::string("a stage write left the chain's column ") +
                                chain_row_columns[i].name + " unset");
            }
        }
        return row_;
    }

private:
    ChainRow row_;
    bool set_[chain_row_column_count] = {};
};

}  // namespace

std::string PgParams::execute_sql(pqxx::connection_base& connection, const char* name) const {
    std::string sql = "EXECUTE ";
    sql += name;
    if (!storage_.empty()) {
        sql += "(";
        for (std::size_t i = 0; i < storage_.size(); ++i) {
            if (i > 0) sql += ", ";
            sql += storage_[i] ? connection.quote(*storage_[i]) : std::string("NULL");
        }
        sql += ")";
    }
    return sql + ";";
}

// The second round trip of write_stage failed with `failure`. A lost connection (or a
// terminated session): the outcome is unknown (in_doubt_error: write_batch reconnects and
// looks the write id up). A statement the server refused: the row's, so nothing
// committed (the failure is rethrown once the transaction is rolled back), or the flush's
// after the COMMIT: then the row committed, and the flush is waited for again on its own.
void PostgresBackend::Impl::settle_commit(pqxx::transaction_base& tx, std::exception_ptr failure,
                                          std::int64_t id) {
    const auto in_doubt = [&] {
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& e) {
            throw pqxx::in_doubt_error(e.what());
        }
    };
    if (classify_failure(failure) != FailureKind::Other) in_doubt();
    bool committed = false;
    try {
        tx.exec0("ROLLBACK");  // ends the row's transaction if it is still open
        committed = !PgParams().integer(id).exec(tx, pg_sql::row_facts.name).empty();
        if (committed) {
            if (PgParams()
                    .text(run.run_id)
                    .text(utc_now())
                    .exec(tx, pg_sql::flush_run.name)
                    .affected_rows() != 1)
                in_doubt();
        }
    } catch (const pqxx::in_doubt_error&) {
        throw;
    } catch (...) {
        in_doubt();
    }
    if (!committed) std::rethrow_exception(failure);
}

bool PostgresBackend::Impl::stage_write_fits(const Write& write) const {
    return write.kind == Write::Kind::Stage;
}

void PostgresBackend::Impl::write_stage(Write& write) {
    pqxx::connection_base& c = connection();
    if (!sql_statements_ready) {
        for (const pg_sql::Statement& statement : pg_sql::executed_as_sql)
            c.prepare_now(statement.name);
        sql_statements_ready = true;
    }
    pqxx::nontransaction tx(c);
    const bool completed = write.status == Status::Completed;
    const bool checks_inputs = completed && !write.inputs.empty();
    const bool leased = write.lease_token.has_value();
    const std::string plain_metadata = completed ? write.metadata : std::string();

    // Round trip 1: BEGIN, the locks, and what the row depends on.
    // Durability::Full: the transaction commits without waiting for the WAL flush, so that
    // its locks (the chain's: every write's) are released before the flush, and the flush
    // is then waited for by a write of its own (flush_run) in the same round trip: the
    // call returns once the row is durable, and the flushes of many writers are shared
    // (the server's group commit) instead of taken one after another under the lock.
    const bool early_release = config.durability == Durability::Full;
    std::string sql = early_release ? "BEGIN; SET LOCAL synchronous_commit TO off;" : "BEGIN;";
    if (!run_recorded) {
        sql += PgParams()
                   .text(run.run_id)
                   .text(config.pipeline)
                   .text(run.process.host)
                   .integer(run.process.pid)
                   .text(run.process.user)
                   .text(utc_now())
                   .execute_sql(c, pg_sql::insert_run.name);
        sql += PgParams().text(config.pipeline).execute_sql(c, pg_sql::insert_pipeline.name);
    }
    sql += PgParams().text(config.pipeline).execute_sql(c, pg_sql::lock_pipeline_shared.name);
    sql += PgParams().execute_sql(c, pg_sql::lock_chain.name);
    if (leased)
        sql += PgParams()
                   .text(config.pipeline)
                   .text(write.stage)
                   .execute_sql(c, pg_sql::lock_lease.name);
    sql += PgParams()
               .text(config.pipeline)
               .text(write.stage)
               .text_or_null(data_key() ? std::string() : plain_metadata)
               .optional_integer(write.lease_token)
               .text(run.run_id)
               .boolean(!checks_inputs)
               .execute_sql(c, pg_sql::write_state.name);

    bool in_transaction = true;
    try {
        const pqxx::result state = tx.exec(sql);
        if (state.size() != 1)
            throw Error(ErrorCode::Internal,
                        description + ": reading the write's state returned no row");
        const pqxx::row s = state[0];
        // The key, as lock_chain() checks it.
        const std::string recorded = s[0].is_null() ? std::string() : s[0].as<std::string>();
        const std::string expected = key_verdict == KeyVerdict::Keyed ? config.key->key_id : "";
        if (recorded != expected) {
            if (expected.empty()) throw_key_required(description, describe_write(write));
            throw Error(ErrorCode::WrongKey, description +
                                                 ": its key changed since it was opened; nothing "
                                                 "was written. Open it again with its key file");
        }
        if (!s[5].as<bool>())
            throw lease_lost_error(description, describe_write(write), write.stage,
                                   *write.lease_token);
        // The chain's head: the newest row, or the chain's start while it has no row.
        const std::int64_t start_id = s[1].as<std::int64_t>();
        ChainHead head{start_id, chain_zero_hash()};
        if (!s[2].is_null() && s[2].as<std::int64_t>() > start_id) {
            // Rows without a hash after the chain's head: hashed first, as the general path
            // does, when they are of this run; otherwise the write is refused, naming them.
            head = s[3].is_null()
                       ? extend_pg_chain(tx, chain_key(), run.run_id)
                       : ChainHead{s[2].as<std::int64_t>(), from_hex(s[3].as<std::string>())};
        }
        const std::int64_t previous = s[4].is_null() ? 0 : s[4].as<std::int64_t>();
        const std::int64_t version = previous + (completed ? 1 : 0);

        std::vector<UsedInput> used;
        std::int64_t id = 0;
        if (checks_inputs) {
            used = check_inputs(tx, write);
            id = PgParams().exec(tx, pg_sql::draw_id.name)[0][0].as<std::int64_t>();
        } else {
            id = s[7].as<std::int64_t>();
        }

        // The row, as stored and as the chain hashes it.
        const DatabaseKey* key = data_key();
        std::string message = write.message;
        std::string metadata = plain_metadata;  // jsonb text
        std::string metadata_rendered = s[6].is_null() ? std::string() : s[6].as<std::string>();
        if (key) {
            if (!message.empty())
                message = seal_text_field(*key, {config.pipeline, write.stage, version, "message"},
                                          message);
            if (!metadata.empty()) {
                metadata = json_string(seal_text_field(
                    *key, {config.pipeline, write.stage, version, "metadata"}, metadata));
                metadata_rendered = metadata;
            }
        }
        const std::string timestamp = utc_now();
        const std::string status(to_string(write.status));
        const bool has_output = completed && write.output != nullptr;
        std::optional<std::int64_t> output_size;
        if (has_output) output_size = static_cast<std::int64_t>(write.output->size());
        const std::string output_sha256 = has_output ? write.output_sha256 : std::string();
        const std::string fingerprint = completed ? write.fingerprint : std::string();
        const std::int64_t input_count =
            completed ? static_cast<std::int64_t>(write.inputs.size()) : 0;
        std::string write_id = write.write_id;
        std::transform(write_id.begin(), write_id.end(), write_id.begin(),
                       [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });

        RowValues values;
        values.set("id", id)
            .set("pipeline", config.pipeline)
            .set("stage", write.stage)
            .set("status", status)
            .set("version", version)
            .set("timestamp", timestamp)
            .set("run_id", run.run_id)
            .optional("duration_ms", write.duration_ms)
            .text_or_null("message", message)
            .text_or_null("metadata", metadata_rendered)
            .text_or_null("fingerprint", fingerprint)
            .optional("output_size", output_size)
            .text_or_null("output_sha256", output_sha256)
            .set("output_in_database", has_output ? ChainValue{std::int64_t{1}} : ChainValue{})
            .set("input_count", input_count)
            .text_or_null("key_id", key ? key->key_id : std::string())
            .optional("lease_token", write.lease_token)
            .text_or_null("write_id", write_id);
        ChainRow& row = values.complete();
        for (std::size_t i = 0; i < used.size(); ++i) {
            row.inputs.push_back(
                {static_cast<std::int64_t>(i), write.inputs[i], used[i].id, used[i].version});
        }
        const std::string hash = chain_hash(head.hash, row, chain_key());

        // Round trip 2: the row, its inputs (and output chunks), COMMIT.
        std::string write_sql =
            PgParams()
                .integer(id)
                .text(config.pipeline)
                .text(write.stage)
                .text(status)
                .integer(version)
                .text(timestamp)
                .text(run.run_id)
                .optional_integer(write.duration_ms)
                .text_or_null(message)
                .text_or_null(metadata)
                .text_or_null(fingerprint)
                .optional_integer(output_size)
                .text_or_null(output_sha256)
                .optional_text(has_output ? std::optional<std::string>("true") : std::nullopt)
                .integer(input_count)
                .optional_integer(write.lease_token)
                .text(write_id)
                .text_or_null(key ? key->key_id : std::string())
                .text(to_hex(hash))
                .boolean(checks_inputs)
                .execute_sql(c, pg_sql::write_row.name);
        for (std::size_t i = 0; i < used.size(); ++i) {
            write_sql += PgParams()
                             .integer(id)
                             .integer(static_cast<std::int64_t>(i))
                             .text(write.inputs[i])
                             .integer(used[i].id)
                             .integer(used[i].version)
                             .execute_sql(c, pg_sql::insert_input.name);
        }
        if (has_output) {
            // The chunks go as binary parameters, after their row.
            tx.exec(write_sql);
            write_sql.clear();
            insert_output_chunks(tx, write.stage, id, version, *write.output);
        }
        in_transaction = false;
        const std::string flush =
            early_release
                ? PgParams().text(run.run_id).text(timestamp).execute_sql(c, pg_sql::flush_run.name)
                : std::string();
        try {
            const pqxx::result last = tx.exec(write_sql + "COMMIT;" + flush);
            if (early_release && last.affected_rows() != 1)
                throw Error(ErrorCode::Internal, "the run's row is missing");
        } catch (...) {
            settle_commit(tx, std::current_exception(), id);
        }
        write.appended = Appended{id, version};
    } catch (...) {
        if (in_transaction) {
            try {
                if (c.is_open()) tx.exec("ROLLBACK");
            } catch (...) {
                // The connection broke: the server rolls the transaction back.
            }
        }
        throw;
    }
}

}  // namespace checkpoint::detail
