#include "postgres/reconnect_policy.hpp"

#include <algorithm>
#include <string>
#include <string_view>
#include <thread>

#include <pqxx/pqxx>

namespace checkpoint::detail {

namespace {

bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

// A connection failure that another attempt cannot cure: the login, the database, the URI.
bool is_permanent_connect_failure(std::string_view text) {
    return contains(text, "authentication failed") || contains(text, "no password supplied") ||
           contains(text, "no pg_hba.conf entry") || contains(text, "pg_hba.conf rejects") ||
           (contains(text, "role \"") && contains(text, "does not exist")) ||
           (contains(text, "database \"") && contains(text, "does not exist")) ||
           (contains(text, "invalid") &&
            (contains(text, " value") || contains(text, "connection option")));
}

// SQLSTATEs that say the session or the server went away, or that the server is not (or no
// longer) a primary: nothing of the transaction committed.
bool is_connection_sqlstate(const std::string& state) {
    return state.rfind("08", 0) == 0  // connection exception
           || state == "57P01"        // admin_shutdown (also pg_terminate_backend)
           || state == "57P02"        // crash_shutdown
           || state == "57P03"        // cannot_connect_now (starting up, recovering)
           || state == "25006";       // read_only_sql_transaction: a (new) hot standby
}

}  // namespace

FailureKind classify_failure(std::exception_ptr failure) noexcept {
    try {
        std::rethrow_exception(failure);
    } catch (const pqxx::in_doubt_error&) {
        return FailureKind::OutcomeUnknown;
    } catch (const pqxx::statement_completion_unknown&) {
        return FailureKind::OutcomeUnknown;
    } catch (const pqxx::broken_connection& e) {
        return is_permanent_connect_failure(e.what()) ? FailureKind::Other
                                                      : FailureKind::ConnectionLost;
    } catch (const pqxx::sql_error& e) {
        return is_connection_sqlstate(e.sqlstate()) ? FailureKind::ConnectionLost
                                                    : FailureKind::Other;
    } catch (...) {
        return FailureKind::Other;
    }
}

bool ReconnectDeadline::wait_before_retry() {
    const auto now = std::chrono::steady_clock::now();
    if (!started_) {
        started_ = true;
        start_ = now;
    }
    const auto deadline = start_ + timeout_;
    if (now >= deadline) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    std::this_thread::sleep_for(std::min(step_, left));
    step_ = std::min(step_ * 2, std::chrono::milliseconds(500));
    ++attempts_;
    return true;
}

}  // namespace checkpoint::detail
