// Two real PostgreSQL servers in streaming replication for one test (tools/pg_cluster.sh):
// node "a" starts as the primary, node "b" as its synchronous standby, on private ports.
// Header-only: it needs CHECKPOINT_SOURCE_DIR, which tests/CMakeLists.txt defines for the
// test programs. Every command that fails fails the test with the script's output.
#pragma once

#include "child_process.hpp"

#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

namespace checkpoint::test {

inline const std::string& pg_cluster_script() {
    static const std::string script = std::string(CHECKPOINT_SOURCE_DIR) + "/tools/pg_cluster.sh";
    return script;
}

// Started by the constructor (a few seconds), stopped and deleted by the destructor.
class PgCluster {
public:
    // `async`: asynchronous replication (no synchronous_standby_names).
    explicit PgCluster(bool async = false) {
        const CommandResult result = run_command(
            {"bash", "-c",
             "eval \"$(bash \"$0\" start $1)\" && printf '%s\\n' \"$CHECKPOINT_HA_DIR\" "
             "\"$CHECKPOINT_HA_URL\" \"$CHECKPOINT_HA_PORT_A\" \"$CHECKPOINT_HA_PORT_B\"",
             pg_cluster_script(), async ? "--async" : ""});
        INFO("pg_cluster.sh start: " << result.err);
        REQUIRE(result.exit_code == 0);
        std::istringstream lines(result.out);
        std::getline(lines, dir_);
        std::getline(lines, url_);
        std::getline(lines, port_a_);
        std::getline(lines, port_b_);
        REQUIRE(!dir_.empty());
        REQUIRE(url_.rfind("postgresql://", 0) == 0);
        REQUIRE(!port_b_.empty());
    }
    ~PgCluster() { run_command({"bash", pg_cluster_script(), "stop", dir_}); }
    PgCluster(const PgCluster&) = delete;
    PgCluster& operator=(const PgCluster&) = delete;

    // postgresql://postgres@127.0.0.1:PA,127.0.0.1:PB/postgres?target_session_attrs=
    // read-write&connect_timeout=2
    const std::string& url() const { return url_; }
    // The nodes' TCP ports.
    const std::string& port(const std::string& node) const {
        return node == "a" ? port_a_ : port_b_;
    }
    // "host=127.0.0.1 port=P user=postgres dbname=postgres": one node, for pqxx.
    std::string node_conninfo(const std::string& node) const {
        return "host=127.0.0.1 port=" + port(node) + " user=postgres dbname=postgres";
    }
    // The node that is the primary now ("a" or "b").
    std::string primary() const {
        std::string node = run({"primary", dir_});
        while (!node.empty() && node.back() == '\n') node.pop_back();
        return node;
    }
    // `command` (kill, crash, promote, restart, rejoin) on `node`: see tools/pg_cluster.sh.
    void run(const std::string& command, const std::string& node) const {
        run({command, dir_, node});
    }

private:
    static std::string run(const std::vector<std::string>& args) {
        std::vector<std::string> argv{"bash", pg_cluster_script()};
        argv.insert(argv.end(), args.begin(), args.end());
        const CommandResult result = run_command(argv);
        INFO("pg_cluster.sh " << args.front() << ": " << result.err);
        REQUIRE(result.exit_code == 0);
        return result.out;
    }

    std::string dir_;
    std::string url_;
    std::string port_a_;
    std::string port_b_;
};

}  // namespace checkpoint::test
