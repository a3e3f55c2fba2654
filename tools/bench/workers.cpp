// checkpoint_bench — the worker mode: the child processes the scenarios start (fork + exec of
// this binary, `checkpoint_bench --worker MODE ARGS...`).
#include "record_writer.hpp"
#include "scenario.hpp"

#include <cstdio>
#include <cstdlib>

#include <sqlite3.h>
#include <unistd.h>

namespace bench {

namespace {

void say(const std::string& line) {
    const std::string text = line + "\n";
    if (::write(STDOUT_FILENO, text.data(), text.size()) < 0) std::_Exit(1);
}

void wait_for_go() {
    char byte;
    while (::read(STDIN_FILENO, &byte, 1) > 0) {
    }
}

// The raw dump: every history row as one NDJSON object, written with the C API and stdio.
int raw_dump(const char* database) {
    bench::RawDatabase db(database, true, busy_timeout_ms);
    bench::RawStatement rows(db,
                             "SELECT id, pipeline, stage, status, version, timestamp, run_id, "
                             "duration_ms, message FROM checkpoints ORDER BY id");
    static const char* names[] = {"id",        "pipeline", "stage",       "status", "version",
                                  "timestamp", "run_id",   "duration_ms", "message"};
    std::string line;
    while (rows.step()) {
        line.clear();
        line += '{';
        for (int column = 0; column < 9; ++column) {
            if (column > 0) line += ',';
            line += '"';
            line += names[column];
            line += "\":";
            sqlite3_stmt* row = rows.get();
            switch (sqlite3_column_type(row, column)) {
                case SQLITE_NULL:
                    line += "null";
                    break;
                case SQLITE_INTEGER:
                    line += std::to_string(sqlite3_column_int64(row, column));
                    break;
                default:
                    // The same JSON text as checkpointctl writes: only the reads differ.
                    checkpointctl::append_json_string(
                        line, std::string_view(
                                  reinterpret_cast<const char*>(sqlite3_column_text(row, column)),
                                  static_cast<std::size_t>(sqlite3_column_bytes(row, column))));
            }
        }
        line += "}\n";
        std::fwrite(line.data(), 1, line.size(), stdout);
    }
    return std::fflush(stdout) == 0 ? 0 : 1;
}

// The raw "new process" lookup in this binary, which loads every shared library the library
// needs: open, one prepared lookup, close. Exit 0 when found.
int raw_open_check(const char* database, const char* stage, bool persist_wal) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(database, &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
        std::fprintf(stderr, "raw-open-check: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    sqlite3_busy_timeout(db, busy_timeout_ms);
    if (persist_wal) {
        int persist = 1;
        sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    }
    sqlite3_stmt* lookup = nullptr;
    int result = sqlite3_prepare_v2(db,
                                    "SELECT 1 FROM stage_heads WHERE pipeline = 'default' AND "
                                    "stage = ?1 AND status = 'completed'",
                                    -1, &lookup, nullptr);
    if (result == SQLITE_OK) {
        sqlite3_bind_text(lookup, 1, stage, -1, SQLITE_STATIC);
        result = sqlite3_step(lookup);
    }
    if (result != SQLITE_ROW && result != SQLITE_DONE)
        std::fprintf(stderr, "raw-open-check: %s\n", sqlite3_errmsg(db));
    sqlite3_finalize(lookup);
    sqlite3_close(db);
    return result == SQLITE_ROW ? 0 : (result == SQLITE_DONE ? 3 : 1);
}

}  // namespace

int worker_main(int argc, char** argv) {
    const std::string mode = argc > 2 ? argv[2] : "";
    try {
        if (mode == "save" && argc == 6) {  // DIR COUNT PREFIX
            CheckpointManager manager(argv[3], options(Durability::Full));
            const long count = std::stol(argv[4]);
            say("ready");
            wait_for_go();
            StageName name;
            for (long i = 0; i < count; ++i) manager.save_checkpoint(name(argv[5], i));
            say("done " + std::to_string(count));
            return 0;
        }
        if (mode == "raw-save" && argc == 6) {  // DATABASE COUNT PREFIX
            bench::RawCheckpointWriter writer(argv[3], true, busy_timeout_ms);
            const long count = std::stol(argv[4]);
            say("ready");
            wait_for_go();
            StageName name;
            for (long i = 0; i < count; ++i) writer.save(name(argv[5], i));
            say("done " + std::to_string(count));
            return 0;
        }
        if (mode == "raw-open-check" && argc == 6) {  // DATABASE STAGE PERSIST
            return raw_open_check(argv[3], argv[4], std::string(argv[5]) == "1");
        }
        if (mode == "raw-dump" && argc == 4) return raw_dump(argv[3]);
        std::fprintf(stderr, "checkpoint_bench: unknown worker invocation '%s'\n", mode.c_str());
        return 2;
    } catch (const std::exception& e) {
        std::string text = e.what();
        for (char& c : text) {
            if (c == '\n') c = ' ';
        }
        say("error " + mode + ": " + text);
        std::fprintf(stderr, "checkpoint_bench worker %s: %s\n", mode.c_str(), e.what());
        return 1;
    }
}
}  // namespace bench
