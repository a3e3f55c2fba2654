/* checkpoint_bench_raw_open: the baseline of the "new process" row, a plain C program that
 * links SQLite alone and does what the library's open + one has_checkpoint does at the least:
 * open the database, set the busy timeout, one prepared point lookup, close.
 *
 *   checkpoint_bench_raw_open DATABASE STAGE PERSIST_WAL(0|1)
 *
 * Exit status: 0 when the stage is completed, 3 when not, 1 on an error. */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: checkpoint_bench_raw_open DATABASE STAGE PERSIST_WAL\n");
        return 1;
    }
    sqlite3* db = NULL;
    if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        fprintf(stderr, "raw-open-check: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    sqlite3_busy_timeout(db, 30000); /* the library's default Options::busy_timeout */
    if (strcmp(argv[3], "1") == 0) {
        int persist = 1;
        sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    }
    sqlite3_stmt* lookup = NULL;
    int result = sqlite3_prepare_v2(db,
                                    "SELECT 1 FROM stage_heads WHERE pipeline = 'default' AND "
                                    "stage = ?1 AND status = 'completed'",
                                    -1, &lookup, NULL);
    if (result == SQLITE_OK) {
        sqlite3_bind_text(lookup, 1, argv[2], -1, SQLITE_STATIC);
        result = sqlite3_step(lookup);
    }
    if (result != SQLITE_ROW && result != SQLITE_DONE)
        fprintf(stderr, "raw-open-check: %s\n", sqlite3_errmsg(db));
    sqlite3_finalize(lookup);
    sqlite3_close(db);
    return result == SQLITE_ROW ? 0 : (result == SQLITE_DONE ? 3 : 1);
}
