// PostgresBackend: connecting, the heartbeat, and writes (see postgres_backend_impl.hpp for
// the other files).
#include "postgres/postgres_backend.hpp"

#include "clock.hpp"
#include "crypto/field_cipher.hpp"
#include "identity.hpp"
#include "logging.hpp"
#include "postgres/migrations.hpp"
#include "postgres/postgres_backend_impl.hpp"
#include "postgres/postgres_chain.hpp"
#include "sha256.hpp"

#include <checkpoint/error.hpp>

#include <poll.h>
#include <algorithm>
#include <utility>

namespace checkpoint::detail {

namespace {

// How often a transaction that met a deadlock or a serialization failure is tried again
// before the failure (Busy) reaches the caller.
constexpr int max_write_attempts = 20;

bool is_retryable(const pqxx::sql_error& e) {
    return e.sqlstate() == "40001" || e.sqlstate() == "40P01";
}

}  // namespace

std::vector<const char*> PgParams::values() const {
    std::vector<const char*> values;
    values.reserve(storage_.size());
    for (const auto& value : storage_) values.push_back(value ? value->c_str() : nullptr);
    return values;
}

pqxx::result PgParams::exec(pqxx::transaction_base& tx, const char* name) const {
    return tx.exec_prepared(name, pqxx::prepare::make_dynamic_params(values()));
}

pqxx::result PgParams::exec_sql(pqxx::transaction_base& tx, const std::string& sql) const {
    return tx.exec_params(sql, pqxx::prepare::make_dynamic_params(values()));
}

PostgresBackend::PostgresBackend(const BackendConfig& config, RunIdentity run)
    : impl_(std::make_unique<Impl>()) {
    impl_->config = config;
    impl_->run = std::move(run);
    impl_->server = parse_location(config.directory.string());
    impl_->location = impl_->server.redacted;
    impl_->description = describe_location(impl_->server);
    impl_->open();
}

PostgresBackend::~PostgresBackend() {
    impl_->stop_heartbeat();
}

const std::string& PostgresBackend::location() const noexcept {
    return impl_->location;
}

const std::string& PostgresBackend::description() const noexcept {
    return impl_->description;
}

const std::filesystem::path& PostgresBackend::path() const noexcept {
    return impl_->no_path;
}

std::optional<int> PostgresBackend::migrated_from() const noexcept {
    return impl_->migrated_from;
}

int PostgresBackend::schema_version() const noexcept {
    return latest_postgres_schema_version();
}

const std::filesystem::path& PostgresBackend::outputs_directory() const noexcept {
    return impl_->no_path;
}

void PostgresBackend::Impl::open() {
    retrying("opening", [&] {
        connection();
        migrated_from = migrate_postgres(*connection_);
        check_key();
        if (!config.read_only) {
            pqxx::work tx(connection());
            reap_dead_runs(tx);
            tx.commit();
        }
    });
}

// The recorded key against the key file given (judge_key), recording it in a database
// without rows, under the chain's lock.
void PostgresBackend::Impl::check_key() {
    {
        pqxx::read_transaction tx(connection());
        const bool has_rows = tx.exec1("SELECT EXISTS (SELECT 1 FROM checkpoints)")[0].as<bool>();
        key_verdict = judge_key(read_pg_recorded_key(tx), config.key.get(), has_rows,
                                config.read_only, description);
    }
    if (key_verdict != KeyVerdict::Register) return;
    pqxx::work tx(connection());
    lock_pg_chain(tx);
    const bool has_rows = tx.exec1("SELECT EXISTS (SELECT 1 FROM checkpoints)")[0].as<bool>();
    key_verdict =
        judge_key(read_pg_recorded_key(tx), config.key.get(), has_rows, false, description);
    if (key_verdict == KeyVerdict::Register) {
        tx.exec_params0(
            "INSERT INTO encryption_keys (key_id, check_value, role) "
            "VALUES ($1, decode($2, 'hex'), 'current')",
            config.key->key_id, to_hex(config.key->check_value));
        tx.commit();
        key_verdict = KeyVerdict::Keyed;
    }
}

void PostgresBackend::Impl::lock_chain(pqxx::transaction_base& tx) {
    const std::string recorded = lock_pg_chain(tx);
    const std::string expected = key_verdict == KeyVerdict::Keyed ? config.key->key_id : "";
    if (recorded == expected) return;
    if (expected.empty()) throw_key_required(description, "writing");
    throw Error(ErrorCode::WrongKey, description +
                                         ": its key changed since it was opened; nothing was "
                                         "written. Open it again with its key file");
}

namespace {

// True when an idle connection's socket has something to read or is closed: between two
// calls the server sends nothing unless it is going away (a restart, a terminated session),
// so the connection is dead and a statement sent on it would fail, or leave its outcome
// unknown. One poll() with no wait.
bool idle_connection_closed(pqxx::connection_base& connection) {
    const int socket = connection.sock();
    if (socket < 0) return true;
    pollfd descriptor{socket, POLLIN, 0};
    return ::poll(&descriptor, 1, 0) > 0;
}

}  // namespace

pqxx::connection_base& PostgresBackend::Impl::connection() {
    if (connection_ &&
        (!connection_->get().is_open() || idle_connection_closed(connection_->get())))
        connection_.reset();
    if (!connection_) {
        connection_.emplace(server, config.busy_timeout, config.read_only,
                            PgConnection::RawErrors{});
        // Durability::Normal: a commit does not wait for the server's WAL flush; a server
        // crash may lose the last saves, never corrupt anything (as SQLite's NORMAL).
        if (config.durability == Durability::Normal && !config.read_only) {
            pqxx::nontransaction tx(connection_->get());
            tx.exec0("SET synchronous_commit TO off");
        }
        for (const pg_sql::Statement& statement : pg_sql::all)
            connection_->get().prepare(statement.name, statement.sql);
        sql_statements_ready = false;
        if (connected_before)
            log().warn("reconnected to {} at {}", description, connection_->server_reached());
        connected_before = true;
    }
    return connection_->get();
}

spdlog::logger& PostgresBackend::Impl::log() const {
    return config.logger ? *config.logger : *default_logger();
}

void PostgresBackend::Impl::reconnect(const std::string& action, ReconnectDeadline& deadline,
                                      std::exception_ptr failure) {
    connection_.reset();
    // A first attempt at once (the server may be back already), then with back-off.
    do {
        try {
            connection();
            return;
        } catch (...) {
            failure = std::current_exception();
            connection_.reset();
            if (classify_failure(failure) == FailureKind::Other) fail(action);  // translated
        }
    } while (deadline.wait_before_retry());
    std::string last;
    try {
        std::rethrow_exception(failure);
    } catch (...) {
        try {
            std::rethrow_exception(translated(action));
        } catch (const std::exception& e) {
            last = e.what();
        }
    }
    throw Error(
        ErrorCode::Unavailable,
        description + ": " + action +
            " failed: the connection to the server was lost, and no server at " + server.endpoint +
            " could be reached again (with target_session_attrs=read-write: none "
            "accepted writes) within " +
            std::to_string(deadline.timeout().count()) + " ms (Options::reconnect_timeout, " +
            std::to_string(deadline.attempts() + 1) + " attempt(s)). The last attempt: " + last);
}

void PostgresBackend::Impl::fail(const std::string& action) {
    try {
        throw;
    } catch (const pqxx::broken_connection&) {
        connection_.reset();
    } catch (const pqxx::in_doubt_error&) {
        connection_.reset();
    } catch (...) {
        if (connection_ && !connection_->get().is_open()) connection_.reset();
    }
    throw_translated_pg(server, action, config.busy_timeout);
}

std::exception_ptr PostgresBackend::Impl::translated(const std::string& action) const {
    try {
        throw_translated_pg(server, action, config.busy_timeout);
    } catch (...) {
        return std::current_exception();
    }
}

void PostgresBackend::Impl::require_writable(const std::string& action) const {
    if (config.read_only) {
        throw Error(ErrorCode::ReadOnly,
                    description + ": " + action +
                        " refused: the manager was opened read-only (Options::read_only)");
    }
}

// ---- The heartbeat ----

void PostgresBackend::Impl::start_heartbeat() {
    if (heartbeat.joinable()) return;
    heartbeat = std::thread([this] {
        std::optional<PgConnection> own;
        std::unique_lock lock(heartbeat_mutex);
        while (
            !heartbeat_wake.wait_for(lock, heartbeat_interval, [this] { return heartbeat_stop; })) {
            lock.unlock();
            try {
                if (!own) {
                    own.emplace(server, config.busy_timeout, false);
                    own->get().prepare(pg_sql::touch_run.name, pg_sql::touch_run.sql);
                }
                pqxx::nontransaction tx(own->get());
                PgParams().text(run.run_id).text(utc_now()).exec(tx, pg_sql::touch_run.name);
            } catch (...) {
                own.reset();  // the server is away: try again at the next beat
            }
            lock.lock();
        }
    });
}

void PostgresBackend::Impl::stop_heartbeat() noexcept {
    {
        std::lock_guard lock(heartbeat_mutex);
        heartbeat_stop = true;
    }
    heartbeat_wake.notify_all();
    if (heartbeat.joinable()) heartbeat.join();
}

// ---- Writes ----

void PostgresBackend::prepare_output(Write& write) const {
    write.output_in_database = true;  // every output lives in output_chunks
}

std::string PostgresBackend::Impl::describe_write(const Write& write) const {
    switch (write.kind) {
        case Write::Kind::Stage:
            return "recording stage '" + write.stage + "' as " +
                   std::string(to_string(write.status));
        case Write::Kind::Import:
            return "importing stage '" + write.stage + "'";
        case Write::Kind::PipelineClear:
            return "clearing pipeline '" + config.pipeline + "'";
        case Write::Kind::ClearDownstream:
            return "clearing stage '" + write.stage + "' and its downstream stages";
    }
    return "writing";
}

void PostgresBackend::Impl::record_run(pqxx::transaction_base& tx) {
    const std::string now = utc_now();
    PgParams()
        .text(run.run_id)
        .text(config.pipeline)
        .text(run.process.host)
        .integer(run.process.pid)
        .text(run.process.user)
        .text(now)
        .exec(tx, pg_sql::insert_run.name);
    PgParams().text(config.pipeline).exec(tx, pg_sql::insert_pipeline.name);
}

Appended PostgresBackend::Impl::append_row(pqxx::transaction_base& tx, const std::string& stage,
                                           Status status, std::optional<std::int64_t> duration_ms,
                                           const std::string& message, const std::string& timestamp,
                                           const std::string& write_id, const Write* save,
                                           std::optional<std::int64_t> lease_token) {
    if (!lease_token && save) lease_token = save->lease_token;
    PgParams params;
    params.text(config.pipeline)
        .text(stage)
        .text(std::string(to_string(status)))
        .integer(status == Status::Completed ? 1 : 0)
        .text(timestamp)
        .text(run.run_id)
        .optional_integer(duration_ms)
        // Encrypted: the plaintext never reaches the server (the UPDATE below sets the
        // ciphertext once the row has its version).
        .text_or_null(data_key() ? std::string() : message);
    bool checks = false;
    if (save) {
        params.text_or_null(data_key() ? std::string() : save->metadata)
            .text_or_null(save->fingerprint);
        if (save->output) {
            params.integer(static_cast<std::int64_t>(save->output->size()))
                .text(save->output_sha256)
                .boolean(true);
        } else {
            params.null().null().null();
        }
        params.integer(static_cast<std::int64_t>(save->inputs.size()));
        checks = !save->inputs.empty();
    } else {
        params.null().null().null().null().null().integer(0);
    }
    params.boolean(checks).optional_integer(lease_token).text_or_null(write_id);
    const pqxx::result result = params.exec(tx, pg_sql::append.name);
    if (result.size() != 1)
        throw Error(ErrorCode::Internal, description + ": appending a row returned no row");
    const Appended appended{result[0][0].as<std::int64_t>(), result[0][1].as<std::int64_t>()};
    if (const DatabaseKey* key = data_key()) {
        // metadata is jsonb: its ciphertext is stored as a JSON string.
        PgParams()
            .integer(appended.id)
            .text(key->key_id)
            .text_or_null(
                message.empty()
                    ? std::string()
                    : seal_text_field(*key, {config.pipeline, stage, appended.version, "message"},
                                      message))
            .text_or_null(
                !save || save->metadata.empty()
                    ? std::string()
                    : seal_text_field(*key, {config.pipeline, stage, appended.version, "metadata"},
                                      save->metadata))
            .exec_sql(tx,
                      "UPDATE checkpoints SET key_id = $2, message = $3, "
                      "metadata = to_jsonb($4::text) WHERE id = $1");
    }
    return appended;
}

void PostgresBackend::Impl::apply(pqxx::transaction_base& tx, Write& write) {
    switch (write.kind) {
        case Write::Kind::Stage:
            if (write.lease_token) check_lease(tx, write);
            if (write.status == Status::Completed) {
                apply_completed(tx, write);
            } else {
                write.appended =
                    append_row(tx, write.stage, write.status, write.duration_ms, write.message,
                               utc_now(), write.write_id, nullptr, write.lease_token);
            }
            return;
        case Write::Kind::ClearDownstream:
            apply_clear_downstream(tx, write);
            return;
        case Write::Kind::Import: {
            const pqxx::result found = PgParams()
                                           .text(config.pipeline)
                                           .text(write.stage)
                                           .text(write.timestamp)
                                           .text(write.message)
                                           .exec(tx, pg_sql::find_import.name);
            if (!found.empty()) return;  // imported before
            write.appended = append_row(tx, write.stage, Status::Completed, std::nullopt,
                                        write.message, write.timestamp, write.write_id);
            return;
        }
        case Write::Kind::PipelineClear: {
            const pqxx::result result = PgParams()
                                            .text(config.pipeline)
                                            .text(utc_now())
                                            .text(run.run_id)
                                            .text(write.write_id)
                                            .exec(tx, pg_sql::append_pipeline_clear.name);
            if (result.size() != 1) {
                throw Error(ErrorCode::Internal,
                            description + ": the pipeline has no row in table pipelines");
            }
            write.appended = Appended{result[0][0].as<std::int64_t>(), 0};
            return;
        }
    }
}

// Inside a write transaction: a Completed row, with what SaveOptions carried.
void PostgresBackend::Impl::apply_completed(pqxx::transaction_base& tx, Write& write) {
    const std::vector<UsedInput> used = check_inputs(tx, write);
    write.appended = append_row(tx, write.stage, Status::Completed, write.duration_ms,
                                write.message, utc_now(), write.write_id, &write);
    for (std::size_t i = 0; i < write.inputs.size(); ++i) {
        PgParams()
            .integer(write.appended->id)
            .integer(static_cast<std::int64_t>(i))
            .text(write.inputs[i])
            .integer(used[i].id)
            .integer(used[i].version)
            .exec(tx, pg_sql::insert_input.name);
    }
    if (write.output)
        insert_output_chunks(tx, write.stage, write.appended->id, write.appended->version,
                             *write.output);
}

// Inside a write transaction: each input's completed head, locked (FOR SHARE) until the
// commit so that none of them moves on meanwhile; throws Error(InvalidArgument) when one
// has none or is not up to date.
std::vector<PostgresBackend::Impl::UsedInput> PostgresBackend::Impl::check_inputs(
    pqxx::transaction_base& tx, const Write& write) {
    std::vector<UsedInput> used;
    FactsScope facts(*this, tx);
    for (const std::string& input : write.inputs) {
        const auto head = completed_head_of(tx, input, true);
        const std::string reason = head && head->checks
                                       ? StalenessCheck(*this).reason(row_facts(head->id))
                                       : std::string();
        require_usable_input(write.stage, input, head.has_value(), reason);
        used.push_back({head->id, head->version});
    }
    return used;
}

void PostgresBackend::Impl::insert_output_chunks(pqxx::transaction_base& tx,
                                                 const std::string& stage, std::int64_t id,
                                                 std::int64_t version, const std::string& output) {
    std::string sealed;
    if (const DatabaseKey* key = data_key())
        sealed = seal_field(*key, {config.pipeline, stage, version, "output"}, output);
    const std::string& bytes = data_key() ? sealed : output;
    std::size_t offset = 0;
    int chunk = 0;
    do {
        const std::size_t size = std::min(output_chunk_bytes, bytes.size() - offset);
        tx.exec_prepared(pg_sql::insert_chunk.name, id, chunk,
                         pqxx::binarystring(bytes.data() + offset, size));
        offset += size;
        ++chunk;
    } while (offset < bytes.size());
}

// Inside a write transaction: clears `stage` and every stage downstream of it.
void PostgresBackend::Impl::apply_clear_downstream(pqxx::transaction_base& tx, Write& write) {
    std::vector<std::string> downstream;
    const pqxx::result rows =
        PgParams().text(config.pipeline).text(write.stage).exec(tx, pg_sql::downstream.name);
    for (const auto& row : rows) downstream.push_back(row[0].as<std::string>());
    write.appended =
        append_row(tx, write.stage, Status::Cleared, std::nullopt, {}, utc_now(), write.write_id);
    write.cleared.push_back(write.stage);
    for (const std::string& stage : downstream) {
        append_row(tx, stage, Status::Cleared, std::nullopt, {}, utc_now(), {});
        write.cleared.push_back(stage);
    }
}

// Writes `writes` in one transaction (see Backend::write_batch). Each write carries a
// client id (a UUID) that its first row keeps (unique): when the connection is lost, the
// backend reconnects (for up to reconnect_timeout) and, if the commit's outcome was unknown,
// looks the ids up: found, the transaction committed and its results stand; not found,
// nothing of it committed (its versions were rolled back with it) and it runs again. So a
// write is recorded once, whatever the failover, and versions have no gaps from retries.
void PostgresBackend::write_batch(const std::vector<Write*>& writes) {
    Impl& s = *impl_;
    if (writes.empty()) return;
    if (s.config.read_only) {
        for (Write* write : writes) {
            try {
                s.require_writable(s.describe_write(*write));
            } catch (...) {
                write->error = std::current_exception();
            }
        }
        return;
    }
    if (s.key_verdict == KeyVerdict::KeyMissing) {
        for (Write* write : writes) {
            try {
                throw_key_required(s.description, s.describe_write(*write));
            } catch (...) {
                write->error = std::current_exception();
            }
        }
        return;
    }
    for (Write* write : writes) {
        if (write->write_id.empty()) write->write_id = new_run_id();
    }
    const std::string action =
        writes.size() == 1 ? s.describe_write(*writes.front())
                           : "writing " + std::to_string(writes.size()) + " changes in one commit";
    ReconnectDeadline deadline(s.config.reconnect_timeout);
    for (int conflicts = 0;;) {
        for (Write* write : writes) {
            write->appended.reset();
            write->cleared.clear();
            write->error = nullptr;
        }
        std::exception_ptr failure;
        try {
            s.attempt_batch(writes);
            s.note_committed();
            return;
        } catch (...) {
            failure = std::current_exception();
        }
        const FailureKind kind = classify_failure(failure);
        try {
            if (kind == FailureKind::Other) {
                try {
                    std::rethrow_exception(failure);
                } catch (const pqxx::sql_error& e) {
                    if (is_retryable(e) && ++conflicts < max_write_attempts) continue;
                } catch (...) {
                }
                // The transaction failed as a whole: nothing was written.
                for (Write* write : writes) {
                    write->appended.reset();
                    write->cleared.clear();
                    write->error = [&] {
                        try {
                            std::rethrow_exception(failure);
                        } catch (...) {
                            try {
                                s.fail(s.describe_write(*write));
                            } catch (...) {
                                return std::current_exception();
                            }
                        }
                    }();
                }
                return;
            }
            s.reconnect(action, deadline, failure);
            if (kind == FailureKind::OutcomeUnknown) {
                const bool done = s.committed(writes, action, deadline);
                s.log().warn(
                    "{}: {}: the connection was lost during the commit; after "
                    "reconnecting, its client write id was {}",
                    s.description, action,
                    done ? "found: it committed once, its result stands"
                         : "not found: nothing of it committed, writing it again");
                if (done) {
                    s.note_committed();
                    return;
                }
            }
            // Nothing of it committed: write it again on the connection made.
        } catch (...) {
            // No server came back in time (Unavailable, saying so), or a reconnect failed
            // for another reason. After an unknown outcome nothing can tell whether the
            // writes committed: the Error says so.
            std::exception_ptr error = std::current_exception();
            if (kind == FailureKind::OutcomeUnknown) {
                try {
                    std::rethrow_exception(error);
                } catch (const Error& e) {
                    error = std::make_exception_ptr(
                        Error(e.code(), std::string(e.what()) +
                                            ". The write's commit was in flight when the "
                                            "connection was lost: whether it was recorded is "
                                            "unknown until a server is back (look at latest() "
                                            "or the history then)"));
                } catch (...) {
                }
            }
            for (Write* write : writes) {
                write->appended.reset();
                write->cleared.clear();
                write->error = error;
            }
            return;
        }
    }
}

void PostgresBackend::Impl::note_committed() {
    if (!run_recorded) {
        run_recorded = true;
        start_heartbeat();
    }
}

void PostgresBackend::Impl::attempt_batch(const std::vector<Write*>& writes) {
    if (writes.size() == 1 && stage_write_fits(*writes.front())) {
        write_stage(*writes.front());
        return;
    }
    // Every write is a transaction, single statements too: the history chain is extended
    // in it, under its lock.
    // Savepoints only when there is another write to protect.
    const bool isolate = writes.size() > 1;
    pqxx::work tx(connection());
    if (!run_recorded) record_run(tx);
    const bool clears = std::any_of(writes.begin(), writes.end(), [](const Write* w) {
        return w->kind == Write::Kind::PipelineClear;
    });
    PgParams()
        .text(config.pipeline)
        .exec(tx, clears ? pg_sql::lock_pipeline_alone.name : pg_sql::lock_pipeline_shared.name);
    lock_chain(tx);
    for (Write* write : writes) {
        if (!isolate) {
            apply(tx, *write);
            continue;
        }
        tx.exec0("SAVEPOINT batch_write");
        try {
            apply(tx, *write);
            tx.exec0("RELEASE SAVEPOINT batch_write");
        } catch (const pqxx::sql_error& e) {
            if (is_retryable(e) || classify_failure(std::current_exception()) != FailureKind::Other)
                throw;
            write->error = translated(describe_write(*write));
            write->appended.reset();
            write->cleared.clear();
            tx.exec0("ROLLBACK TO SAVEPOINT batch_write");
            tx.exec0("RELEASE SAVEPOINT batch_write");
        } catch (const Error&) {
            write->error = std::current_exception();
            write->appended.reset();
            write->cleared.clear();
            tx.exec0("ROLLBACK TO SAVEPOINT batch_write");
            tx.exec0("RELEASE SAVEPOINT batch_write");
        }
    }
    extend_pg_chain(tx, chain_key(), run.run_id);
    try {
        tx.commit();
    } catch (const pqxx::in_doubt_error&) {
        throw;
    } catch (const std::exception& e) {
        // libpqxx reports a lost connection during COMMIT as in_doubt_error only once it has
        // seen the connection closed; a session terminated during it (57P01) is in doubt too.
        if (classify_failure(std::current_exception()) != FailureKind::Other)
            throw pqxx::in_doubt_error(e.what());
        throw;
    }
}

bool PostgresBackend::Impl::committed(const std::vector<Write*>& writes, const std::string& action,
                                      ReconnectDeadline& deadline) {
    std::string ids = "{";
    for (const Write* write : writes) {
        if (ids.size() > 1) ids += ",";
        ids += write->write_id;
    }
    ids += "}";
    for (;;) {
        try {
            pqxx::result found;
            {
                pqxx::nontransaction tx(connection());
                found = PgParams().text(ids).exec(tx, pg_sql::find_writes.name);
            }
            if (found.empty()) return false;
            for (const auto& row : found) {
                const std::string id = row[0].as<std::string>();
                for (Write* write : writes) {
                    if (write->write_id != id || write->appended) continue;
                    write->appended =
                        Appended{row[1].as<std::int64_t>(), row[2].as<std::int64_t>()};
                    if (write->kind == Write::Kind::ClearDownstream)
                        write->cleared.push_back(write->stage);
                }
            }
            // The commit may be durable on this server only: a session ended while its
            // commit waited for the synchronous standby keeps the commit locally. A commit of
            // our own that writes (the run's heartbeat: the run was recorded, by this write's
            // transaction or before) waits for the standby up to its position, which covers
            // the write's (nothing waits without synchronous replication, or with
            // Durability::Normal). It must write whatever the run's outcome (another process
            // may have reaped the run meanwhile: touch_run would match nothing, write no WAL
            // and wait for nothing), and the found row may be an early-released commit not
            // yet flushed (postgres_stage_write.cpp): flush_run updates the row regardless.
            pqxx::work confirm(connection());
            PgParams().text(run.run_id).text(utc_now()).exec(confirm, pg_sql::flush_run.name);
            confirm.commit();
            return true;
        } catch (...) {
            const std::exception_ptr failure = std::current_exception();
            if (classify_failure(failure) == FailureKind::Other) fail(action);
            reconnect(action, deadline, failure);
        }
    }
}

void PostgresBackend::close_run(bool failed) {
    Impl& s = *impl_;
    s.stop_heartbeat();
    if (!s.run_recorded) return;
    s.retrying("closing run " + s.run.run_id, [&] {
        pqxx::nontransaction tx(s.connection());
        PgParams()
            .text(s.run.run_id)
            .text(utc_now())
            .text(failed ? "failed" : "finished")
            .exec(tx, pg_sql::close_run.name);
    });
    s.run_recorded = false;
}

}  // namespace checkpoint::detail
