#include "dashboard_server.hpp"

#include "dashboard_json.hpp"
#include "dashboard_metrics.hpp"
#include "dashboard_model.hpp"
#include "dashboard_pages.hpp"
#include "database.hpp"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <netdb.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

namespace checkpointctl {

namespace {

using checkpoint::CheckpointManager;
using namespace checkpointctl::dashboard;

// An answer other than 200, with its reason.
struct HttpError {
    int status;
    std::string code;
    std::string message;
};

int http_status_for(checkpoint::ErrorCode code) {
    switch (code) {
        case checkpoint::ErrorCode::InvalidArgument:
            return 400;
        case checkpoint::ErrorCode::Busy:
            return 503;
        default:
            return 500;
    }
}

// The database, and one read-only manager per pipeline that exists in it (opened on first
// use; a name the database does not hold opens nothing).
class Dashboard {
public:
    explicit Dashboard(const Settings& settings)
        : settings_(settings), root_(open_database(settings, true)) {}

    std::vector<std::string> pipelines() const { return root_.pipelines(); }
    const std::string& location() const { return root_.location(); }

    // The manager of `pipeline`; HttpError 404 when the database has no such pipeline.
    const CheckpointManager& manager(const std::string& pipeline) {
        std::lock_guard lock(mutex_);
        if (const auto found = managers_.find(pipeline); found != managers_.end())
            return *found->second;
        const auto names = root_.pipelines();
        if (!std::binary_search(names.begin(), names.end(), pipeline)) {
            throw HttpError{404, "not_found", "no pipeline '" + pipeline + "' in " + location()};
        }
        auto manager = std::make_unique<CheckpointManager>(open_pipeline(settings_, pipeline));
        return *managers_.emplace(pipeline, std::move(manager)).first->second;
    }

    std::vector<PipelineSummary> summaries() {
        std::vector<PipelineSummary> result;
        for (const auto& name : pipelines()) result.push_back(summarize(manager(name)));
        return result;
    }

private:
    const Settings settings_;
    const CheckpointManager root_;
    std::mutex mutex_;
    std::map<std::string, std::unique_ptr<CheckpointManager>> managers_;
};

std::string required(const httplib::Request& request, const char* name) {
    if (!request.has_param(name) || request.get_param_value(name).empty())
        throw HttpError{400, "invalid_argument", std::string("missing parameter '") + name + "'"};
    return request.get_param_value(name);
}

std::optional<std::string> optional_param(const httplib::Request& request, const char* name) {
    if (!request.has_param(name) || request.get_param_value(name).empty()) return std::nullopt;
    return request.get_param_value(name);
}

std::optional<std::int64_t> integer_param(const httplib::Request& request, const char* name,
                                          std::int64_t min, std::int64_t max) {
    const auto text = optional_param(request, name);
    if (!text) return std::nullopt;
    std::int64_t value = 0;
    bool valid = text->size() <= 18;
    for (const char c : *text) {
        if (c < '0' || c > '9') valid = false;
        if (valid) value = value * 10 + (c - '0');
    }
    if (!valid || value < min || value > max) {
        throw HttpError{400, "invalid_argument",
                        std::string("parameter '") + name + "' must be a whole number from " +
                            std::to_string(min) + " to " + std::to_string(max)};
    }
    return value;
}

HistoryQuery history_query(const httplib::Request& request) {
    HistoryQuery query;
    query.stage = optional_param(request, "stage");
    query.run_id = optional_param(request, "run");
    if (const auto status = optional_param(request, "status")) {
        query.status = checkpoint::status_from_string(*status);
        if (!query.status) {
            throw HttpError{400, "invalid_argument",
                            "unknown status '" + *status +
                                "': give completed, started, failed, incomplete or cleared"};
        }
    }
    query.before_id = integer_param(request, "before", 1, INT64_MAX / 2);
    query.limit = integer_param(request, "limit", 1, max_history_limit).value_or(50);
    return query;
}

void secure(httplib::Response& response) {
    response.set_header("X-Content-Type-Options", "nosniff");
    response.set_header("Referrer-Policy", "no-referrer");
    response.set_header("Cache-Control", "no-store");
}

void send_json(httplib::Response& response, int status, const Json& body) {
    response.status = status;
    secure(response);
    response.set_content(json_text(body) + "\n", "application/json; charset=utf-8");
}

void send_html(httplib::Response& response, int status, const std::string& html) {
    response.status = status;
    secure(response);
    response.set_header("Content-Security-Policy", page_security_policy);
    response.set_content(html, "text/html; charset=utf-8");
}

const char* reason_phrase(int status) {
    switch (status) {
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 503:
            return "Service Unavailable";
        default:
            return "Internal Server Error";
    }
}

void log_failure(const httplib::Request& request, int status, const std::string& message) {
    if (status < 500) return;  // the client's mistake: its answer says why
    std::cerr << "checkpointctl: " << request.method << " " << request.path << ": " << status
              << ": " << message << "\n";
}

// Runs `answer` and turns every failure into an answer: error JSON for the API, an error
// page for the pages. Never lets an exception reach the server.
template <typename Answer>
httplib::Server::Handler guarded(bool json, Answer answer) {
    return [json, answer](const httplib::Request& request, httplib::Response& response) {
        int status = 500;
        std::string code = "internal";
        std::string message;
        try {
            answer(request, response);
            return;
        } catch (const HttpError& e) {
            status = e.status;
            code = e.code;
            message = e.message;
        } catch (const checkpoint::Error& e) {
            status = http_status_for(e.code());
            code = std::string(to_string(e.code()));
            message = e.what();
        } catch (const std::exception& e) {
            message = e.what();
        }
        log_failure(request, status, message);
        if (json) {
            send_json(response, status, error_json(code, message));
        } else {
            send_html(response, status, message_page_html(status, reason_phrase(status), message));
        }
    };
}

void add_routes(httplib::Server& server, Dashboard& dashboard) {
    // ---- Pages: shells that dashboard.js fills; unknown pipelines and runs are 404s. ----
    server.Get("/", guarded(false, [](const httplib::Request&, httplib::Response& response) {
                   send_html(response, 200, page_html("pipelines", "checkpoint · pipelines"));
               }));
    server.Get("/pipeline", guarded(false, [&dashboard](const httplib::Request& request,
                                                        httplib::Response& response) {
                   const auto pipeline = required(request, "pipeline");
                   dashboard.manager(pipeline);
                   send_html(response, 200, page_html("pipeline", "checkpoint · " + pipeline));
               }));
    server.Get("/run", guarded(false, [&dashboard](const httplib::Request& request,
                                                   httplib::Response& response) {
                   const auto pipeline = required(request, "pipeline");
                   const auto run = required(request, "run");
                   const auto runs = dashboard.manager(pipeline).runs();
                   if (std::none_of(runs.begin(), runs.end(),
                                    [&](const checkpoint::Run& r) { return r.run_id == run; }))
                       throw HttpError{404, "not_found",
                                       "no run '" + run + "' in pipeline '" + pipeline + "'"};
                   send_html(response, 200, page_html("run", "checkpoint · run " + run));
               }));
    server.Get("/history", guarded(false, [&dashboard](const httplib::Request& request,
                                                       httplib::Response& response) {
                   const auto pipeline = required(request, "pipeline");
                   dashboard.manager(pipeline);
                   history_query(request);  // a bad filter is a 400 page, not a broken one
                   send_html(response, 200,
                             page_html("history", "checkpoint · " + pipeline + " · history"));
               }));
    struct Asset {
        const char* name;
        const char* type;
    };
    for (const Asset& file : {Asset{"dashboard.css", "text/css; charset=utf-8"},
                              Asset{"dashboard.js", "text/javascript; charset=utf-8"}}) {
        server.Get(std::string("/assets/") + file.name,
                   guarded(false, [file](const httplib::Request&, httplib::Response& response) {
                       secure(response);
                       response.set_header("Cache-Control", "no-cache");
                       const auto text = asset(file.name);
                       response.set_content(text.data(), text.size(), file.type);
                   }));
    }

    // ---- The JSON API ----
    server.Get("/api/pipelines",
               guarded(true, [&dashboard](const httplib::Request&, httplib::Response& response) {
                   send_json(response, 200, pipelines_json(dashboard.summaries()));
               }));
    server.Get("/api/stages", guarded(true, [&dashboard](const httplib::Request& request,
                                                         httplib::Response& response) {
                   const auto pipeline = required(request, "pipeline");
                   send_json(response, 200,
                             stages_json(pipeline, stage_views(dashboard.manager(pipeline))));
               }));
    server.Get(
        "/api/runs",
        guarded(true, [&dashboard](const httplib::Request& request, httplib::Response& response) {
            const auto pipeline = required(request, "pipeline");
            send_json(response, 200, runs_json(pipeline, dashboard.manager(pipeline).runs()));
        }));
    server.Get("/api/history", guarded(true, [&dashboard](const httplib::Request& request,
                                                          httplib::Response& response) {
                   const auto pipeline = required(request, "pipeline");
                   const auto& manager = dashboard.manager(pipeline);
                   send_json(response, 200,
                             history_json(pipeline, history_page(manager, history_query(request))));
               }));
    server.Get("/api/run", guarded(true, [&dashboard](const httplib::Request& request,
                                                      httplib::Response& response) {
                   const auto pipeline = required(request, "pipeline");
                   const auto run = required(request, "run");
                   const auto timeline = run_timeline(dashboard.manager(pipeline), run, 50);
                   if (!timeline)
                       throw HttpError{404, "not_found",
                                       "no run '" + run + "' in pipeline '" + pipeline + "'"};
                   send_json(response, 200, run_json(pipeline, *timeline));
               }));
    server.Get("/metrics",
               guarded(true, [&dashboard](const httplib::Request&, httplib::Response& response) {
                   secure(response);
                   response.set_content(metrics_text(dashboard.summaries()),
                                        "text/plain; version=0.0.4; charset=utf-8");
               }));

    // ---- Anything else ----
    const auto not_found = [](const httplib::Request& request, httplib::Response&) {
        throw HttpError{404, "not_found", "no such page: " + request.path};
    };
    server.Get("/api/.*", guarded(true, not_found));
    server.Get(".*", guarded(false, not_found));
}

// Why binding `host`:`port` fails, in the operating system's words (for the error message:
// the HTTP library only says that it failed).
std::string bind_failure(const ListenAddress& address) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    const int resolved =
        getaddrinfo(address.host.c_str(), std::to_string(address.port).c_str(), &hints, &found);
    if (resolved != 0) return std::string("cannot resolve the host: ") + gai_strerror(resolved);
    std::string reason = "cannot bind";
    for (addrinfo* entry = found; entry; entry = entry->ai_next) {
        const int sock = ::socket(entry->ai_family, entry->ai_socktype, entry->ai_protocol);
        if (sock < 0) continue;
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        if (::bind(sock, entry->ai_addr, entry->ai_addrlen) != 0) {
            reason = std::strerror(errno);
            if (errno == EADDRINUSE) reason += " (another program listens there)";
        }
        ::close(sock);
    }
    freeaddrinfo(found);
    return reason;
}

std::string url_of(const ListenAddress& address, int port) {
    const bool ipv6 = address.host.find(':') != std::string::npos;
    return "http://" + (ipv6 ? "[" + address.host + "]" : address.host) + ":" +
           std::to_string(port) + "/";
}

bool is_loopback(const std::string& host) {
    return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

}  // namespace

int run_serve(const Settings& settings) {
    const auto address = parse_listen_address(settings.listen);
    if (!address) {
        std::cerr << "checkpointctl: --listen '" << settings.listen << "' is not HOST:PORT\n";
        return exit_usage;
    }
    Dashboard dashboard(settings);  // throws as every read command does (missing database...)

    // SIGINT and SIGTERM stop the server: blocked here (and so in every thread started from
    // now on), and awaited by one thread.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    httplib::Server server;
    // Only SO_REUSEADDR: the library's default SO_REUSEPORT would let a second server share
    // a port that is in use instead of failing.
    server.set_socket_options([](socket_t sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    server.new_task_queue = [] { return new httplib::ThreadPool(8); };
    server.set_keep_alive_timeout(2);
    // Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
    // and the client's delayed ACK hold every answer back by 40 ms.
    server.set_tcp_nodelay(true);
    server.set_payload_max_length(64 * 1024);
    add_routes(server, dashboard);

    int port = address->port;
    const bool bound = port == 0 ? (port = server.bind_to_any_port(address->host)) > 0
                                 : server.bind_to_port(address->host, port);
    if (!bound) {
        std::cerr << "checkpointctl: cannot listen on " << settings.listen << ": "
                  << bind_failure(*address) << ". Choose another address with --listen HOST:PORT\n";
        return exit_listen;
    }
    if (!is_loopback(address->host)) {
        std::cerr << "checkpointctl: listening on " << address->host
                  << ", not only on this machine: whoever can reach it can read the dashboard "
                     "(there is no authentication)\n";
    }
    std::cout << "serving " << url_of(*address, port) << " (" << dashboard.location()
              << ", read-only; Ctrl-C stops)" << std::endl;

    std::atomic<bool> signalled{false};
    std::thread stopper([&server, &signalled, stop_signals] {
        int signal = 0;
        sigwait(&stop_signals, &signal);
        signalled = true;
        server.stop();
    });
    const bool listened = server.listen_after_bind();
    if (!signalled) {
        // The server ended by itself: wake the stopper (the signal is blocked, so it goes to
        // its sigwait, never to a handler).
        pthread_kill(stopper.native_handle(), SIGTERM);
    }
    stopper.join();
    if (!listened && !signalled) {
        std::cerr << "checkpointctl: the server stopped accepting connections\n";
        return exit_error;
    }
    return exit_ok;
}

}  // namespace checkpointctl
