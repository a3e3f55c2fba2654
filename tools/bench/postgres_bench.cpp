// checkpoint_pg_bench — the library on PostgreSQL against raw libpq, on one server, in one
// run (issue 9's goals: durable save <= 1.2x a raw INSERT + COMMIT of an equivalent row;
// has_checkpoint <= 1.5x a raw prepared SELECT; 8 processes >= 3x one process's rate; and,
// without a goal, a Durability::Normal save against the raw INSERT without the fsync).
//
//   checkpoint_pg_bench --url postgresql://postgres@/postgres?host=/socket/dir&port=5432
//                       [--quick] [--markdown FILE]
//
// --url names a database on the server where the benchmark may CREATE and DROP databases
// of its own (bench_<random>); give the Unix socket (host=/dir) to measure without TCP.
// Each measurement alternates ours and the baseline (bench::interleave) so that the
// server's and the disk's noise hits both alike; ratios are medians of paired ratios.
// Errors and lost rows fail the run (exit 1); timings never do. --quick: small counts, for
// CTest.
#include "harness.hpp"

#include <checkpoint/checkpoint_manager.hpp>

#include <postgresql/libpq-fe.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

using bench::Failure;

// One raw libpq connection.
class Raw {
public:
    explicit Raw(const std::string& url) : conn_(PQconnectdb(url.c_str())) {
        if (PQstatus(conn_) != CONNECTION_OK)
            throw Failure(std::string("raw libpq connection failed: ") + PQerrorMessage(conn_));
    }
    ~Raw() { PQfinish(conn_); }
    Raw(const Raw&) = delete;
    Raw& operator=(const Raw&) = delete;

    void exec(const std::string& sql) {
        std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(conn_, sql.c_str()), PQclear);
        const auto status = PQresultStatus(result.get());
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
            throw Failure(sql + ": " + PQerrorMessage(conn_));
    }
    void prepare(const char* name, const char* sql, int params) {
        std::unique_ptr<PGresult, decltype(&PQclear)> result(
            PQprepare(conn_, name, sql, params, nullptr), PQclear);
        if (PQresultStatus(result.get()) != PGRES_COMMAND_OK)
            throw Failure(std::string("PQprepare: ") + PQerrorMessage(conn_));
    }
    // Runs prepared `name`; returns the number of rows.
    int run(const char* name, const std::vector<std::string>& params) {
        std::vector<const char*> values;
        for (const auto& value : params) values.push_back(value.c_str());
        std::unique_ptr<PGresult, decltype(&PQclear)> result(
            PQexecPrepared(conn_, name, static_cast<int>(values.size()), values.data(), nullptr,
                           nullptr, 0),
            PQclear);
        const auto status = PQresultStatus(result.get());
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
            throw Failure(std::string("PQexecPrepared: ") + PQerrorMessage(conn_));
        return PQntuples(result.get());
    }

private:
    PGconn* conn_;
};

// A database of the benchmark's own, dropped at the end.
class BenchDatabase {
public:
    BenchDatabase(const std::string& admin_url, const std::string& name)
        : admin_url_(admin_url), name_(name) {
        Raw(admin_url_).exec("CREATE DATABASE " + name_);
    }
    ~BenchDatabase() {
        try {
            Raw(admin_url_).exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
        } catch (const std::exception& e) {
            std::cerr << "checkpoint_pg_bench: " << e.what() << "\n";
        }
    }
    // The admin URL with its database replaced by ours (the path of the URI).
    std::string url() const {
        const auto scheme = admin_url_.find("://");
        const auto slash = admin_url_.find('/', scheme + 3);
        const auto query = admin_url_.find('?', scheme + 3);
        if (slash == std::string::npos || (query != std::string::npos && slash > query)) {
            return admin_url_.substr(0, query) + "/" + name_ +
                   (query == std::string::npos ? "" : admin_url_.substr(query));
        }
        const auto end = query == std::string::npos ? admin_url_.size() : query;
        return admin_url_.substr(0, slash + 1) + name_ + admin_url_.substr(end);
    }

private:
    std::string admin_url_;
    std::string name_;
};

std::string unique_name() {
    std::random_device device;
    std::string name = "bench_";
    for (int i = 0; i < 12; ++i) name += "0123456789abcdef"[device() % 16];
    return name;
}

// The raw baseline's table: the columns of an equivalent row.
constexpr const char* raw_schema =
    "CREATE TABLE raw_checkpoints (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    "pipeline text NOT NULL, stage text, status text NOT NULL, version bigint NOT NULL, "
    "timestamp text NOT NULL, run_id text NOT NULL); "
    "CREATE TABLE raw_heads (pipeline text, stage text, version bigint, "
    "PRIMARY KEY (pipeline, stage))";

struct Settings {
    std::string url;
    bool quick = false;
    std::string markdown;
};

// A logger with no sink: the library's log lines would only slow the measurement.
std::shared_ptr<spdlog::logger> silent_logger() {
    return std::make_shared<spdlog::logger>("checkpoint_pg_bench");
}

// Worker mode: `--worker URL PREFIX COUNT`: COUNT durable saves of stages PREFIX-i.
int worker(const std::string& url, const std::string& prefix, int count) {
    checkpoint::Options options;
    options.pipeline = "bench";
    options.logger = silent_logger();
    checkpoint::CheckpointManager manager(url, options);
    for (int i = 0; i < count; ++i) manager.save_checkpoint(prefix + "-" + std::to_string(i));
    return 0;
}

double processes_rate(const std::string& url, int processes, int saves_each, int round) {
    std::vector<pid_t> children;
    const auto devnull = bench::open_dev_null(O_WRONLY);
    const auto started = bench::Clock::now();
    for (int p = 0; p < processes; ++p) {
        children.push_back(bench::spawn(
            {bench::self_executable(), "--worker", url,
             "r" + std::to_string(round) + "p" + std::to_string(p), std::to_string(saves_each)},
            -1, devnull.get()));
    }
    for (const pid_t child : children) {
        const auto outcome = bench::wait_for(child, started);
        if (outcome.exit_code != 0)
            throw Failure("a worker process failed: " + bench::describe(outcome));
    }
    return processes * saves_each / bench::seconds_since(started);
}

int run(const Settings& settings) {
    const int repetitions = settings.quick ? 3 : 15;
    const int saves = settings.quick ? 50 : 400;
    const int lookups = settings.quick ? 200 : 5000;
    BenchDatabase database(settings.url, unique_name());
    const std::string url = database.url();
    std::vector<bench::Row> rows;

    checkpoint::Options options;
    options.pipeline = "bench";
    options.logger = silent_logger();
    checkpoint::CheckpointManager ours(url, options);
    Raw raw(url);
    raw.exec(raw_schema);
    raw.prepare("save",
                "INSERT INTO raw_checkpoints (pipeline, stage, status, version, timestamp, "
                "run_id) VALUES ($1, $2, 'completed', $3, $4, $5)",
                5);
    raw.prepare("lookup", "SELECT version FROM raw_heads WHERE pipeline = $1 AND stage = $2", 2);
    raw.exec("INSERT INTO raw_heads VALUES ('bench', 'present', 1)");
    ours.save_checkpoint("present");

    // 1. A durable save (synchronous_commit = on: the server's default).
    std::int64_t version = 0;
    const auto save_samples = bench::interleave(
        repetitions, {[&] {
                          const auto start = bench::Clock::now();
                          for (int i = 0; i < saves; ++i) ours.save_checkpoint("stage");
                          return bench::seconds_since(start) / saves;
                      },
                      [&] {
                          const auto start = bench::Clock::now();
                          for (int i = 0; i < saves; ++i) {
                              raw.run("save", {"bench", "stage", std::to_string(++version),
                                               "2026-11-30T00:00:00.000Z", ours.run_id()});
                          }
                          return bench::seconds_since(start) / saves;
                      }});
    const auto latest = ours.latest("stage");
    if (!latest || latest->version != static_cast<std::int64_t>(repetitions) * saves)
        throw Failure("saves were lost: the stage's version is not the number of saves");
    const double save_ratio = bench::paired_ratio(save_samples[0], save_samples[1]);
    rows.push_back(
        {"durable save (save_checkpoint)",
         bench::format_duration(bench::median(save_samples[0])),
         bench::format_duration(bench::median(save_samples[1])) + " raw libpq INSERT + COMMIT",
         bench::format_ratio(save_ratio),
         "<= 1.20×",
         save_ratio <= 1.2,
         {}});

    // 1b. The same with Durability::Normal (synchronous_commit = off on both sides): the
    // save without the fsync, so what it costs beyond the raw row shows (issue 12's chain
    // cost is stated against this save).
    checkpoint::Options normal_options = options;
    normal_options.durability = checkpoint::Durability::Normal;
    checkpoint::CheckpointManager normal(url, normal_options);
    Raw raw_normal(url);
    raw_normal.exec("SET synchronous_commit TO off");
    raw_normal.prepare("save",
                       "INSERT INTO raw_checkpoints (pipeline, stage, status, version, "
                       "timestamp, run_id) VALUES ($1, $2, 'completed', $3, $4, $5)",
                       5);
    std::int64_t normal_version = 0;
    const auto normal_samples = bench::interleave(
        repetitions, {[&] {
                          const auto start = bench::Clock::now();
                          for (int i = 0; i < saves; ++i) normal.save_checkpoint("normal");
                          return bench::seconds_since(start) / saves;
                      },
                      [&] {
                          const auto start = bench::Clock::now();
                          for (int i = 0; i < saves; ++i) {
                              raw_normal.run("save",
                                             {"bench", "normal", std::to_string(++normal_version),
                                              "2026-11-30T00:00:00.000Z", normal.run_id()});
                          }
                          return bench::seconds_since(start) / saves;
                      }});
    const auto normal_latest = normal.latest("normal");
    if (!normal_latest || normal_latest->version != static_cast<std::int64_t>(repetitions) * saves)
        throw Failure("Normal saves were lost: the stage's version is not the number of saves");
    const double normal_ratio = bench::paired_ratio(normal_samples[0], normal_samples[1]);
    rows.push_back({"Normal save (synchronous_commit off)",
                    bench::format_duration(bench::median(normal_samples[0])),
                    bench::format_duration(bench::median(normal_samples[1])) +
                        " raw libpq INSERT, synchronous_commit off",
                    bench::format_ratio(normal_ratio),
                    "",
                    std::nullopt,
                    {}});

    // 2. has_checkpoint of a completed stage.
    const auto lookup_samples =
        bench::interleave(repetitions, {[&] {
                                            const auto start = bench::Clock::now();
                                            for (int i = 0; i < lookups; ++i)
                                                if (!ours.has_checkpoint("present"))
                                                    throw Failure("has_checkpoint: false");
                                            return bench::seconds_since(start) / lookups;
                                        },
                                        [&] {
                                            const auto start = bench::Clock::now();
                                            for (int i = 0; i < lookups; ++i)
                                                if (raw.run("lookup", {"bench", "present"}) != 1)
                                                    throw Failure("raw: no row");
                                            return bench::seconds_since(start) / lookups;
                                        }});
    const double lookup_ratio = bench::paired_ratio(lookup_samples[0], lookup_samples[1]);
    rows.push_back(
        {"has_checkpoint (hit)",
         bench::format_duration(bench::median(lookup_samples[0])),
         bench::format_duration(bench::median(lookup_samples[1])) + " raw prepared SELECT",
         bench::format_ratio(lookup_ratio),
         "<= 1.50×",
         lookup_ratio <= 1.5,
         {}});

    // 3. 8 processes saving stages of one pipeline at once, against one process.
    const int each = settings.quick ? 20 : 200;
    int round = 0;
    const auto process_samples = bench::interleave(
        settings.quick ? 1 : 5, {[&] { return processes_rate(url, 8, each, ++round); },
                                 [&] { return processes_rate(url, 1, each * 2, ++round); }});
    const double scale = bench::paired_ratio(process_samples[0], process_samples[1]);
    rows.push_back(
        {"8 processes, durable saves",
         bench::format_rate(bench::median(process_samples[0]), "saves/s"),
         bench::format_rate(bench::median(process_samples[1]), "saves/s") + " one process",
         bench::format_ratio(scale),
         ">= 3.00×",
         scale >= 3.0,
         {}});

    const std::string table = bench::render_table(rows);
    std::cout << table;
    if (!settings.markdown.empty()) {
        std::ofstream md(settings.markdown);
        md << table;
        if (!md) throw Failure("cannot write " + settings.markdown);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc == 5 && std::string(argv[1]) == "--worker")
            return worker(argv[2], argv[3], std::stoi(argv[4]));
        Settings settings;
        for (int i = 1; i < argc; ++i) {
            const std::string arg = argv[i];
            if (arg == "--quick") {
                settings.quick = true;
            } else if (arg == "--url" && i + 1 < argc) {
                settings.url = argv[++i];
            } else if (arg == "--markdown" && i + 1 < argc) {
                settings.markdown = argv[++i];
            } else {
                std::cerr << "usage: checkpoint_pg_bench --url URL [--quick] [--markdown FILE]\n";
                return 2;
            }
        }
        if (settings.url.empty()) {
            std::cerr << "checkpoint_pg_bench: give --url (a database on the server where the "
                         "benchmark may create its own); see tools/pg_server.sh\n";
            return 2;
        }
        return run(settings);
    } catch (const std::exception& e) {
        std::cerr << "checkpoint_pg_bench: " << e.what() << "\n";
        return 1;
    }
}
