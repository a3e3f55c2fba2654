#include "html_report.hpp"

#include "dashboard_json.hpp"
#include "dashboard_model.hpp"
#include "dashboard_pages.hpp"
#include "database.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <unistd.h>

namespace checkpointctl {

namespace {

using namespace checkpointctl::dashboard;

// The rows of the run that the report lists (its last ones); the timeline and the
// failures always cover all of them.
constexpr std::size_t report_rows = 5000;

bool write_file(const std::filesystem::path& file, const std::string& text) {
    const std::filesystem::path temporary =
        file.string() + ".tmp-" + std::to_string(static_cast<long>(::getpid()));
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        out << text;
        out.close();
        if (!out) {
            std::error_code ignored;
            std::filesystem::remove(temporary, ignored);
            return false;
        }
    }
    std::error_code error;
    std::filesystem::rename(temporary, file, error);
    if (error) std::filesystem::remove(temporary, error);
    return !error;
}

}  // namespace

int run_report(const Settings& settings) {
    const auto manager = open_database(settings, true);
    const auto pipelines = manager.pipelines();
    if (std::find(pipelines.begin(), pipelines.end(), settings.pipeline) == pipelines.end()) {
        std::cerr << "checkpointctl: no pipeline '" << settings.pipeline << "' in "
                  << manager.location() << ": nothing to report. Check --pipeline\n";
        return exit_error;
    }
    const auto runs = manager.runs();
    std::string run_id = settings.run;
    if (run_id.empty() && !runs.empty()) run_id = runs.back().run_id;

    Json data = {
        {"pipeline", settings.pipeline},
        {"database", manager.database_path().empty() ? manager.location()
                                                     : manager.database_path().filename().string()},
        {"generated_at", now_timestamp()},
        {"stages", stages_json(settings.pipeline, stage_views(manager)).at("stages")},
        {"runs", runs_json(settings.pipeline, runs).at("runs")},
        {"run", nullptr},
    };
    if (!run_id.empty()) {
        const auto timeline = run_timeline(manager, run_id, report_rows);
        if (!timeline) {
            std::cerr << "checkpointctl: no run '" << run_id << "' in pipeline '"
                      << settings.pipeline << "'. Check --run (checkpointctl runs lists them)\n";
            return exit_error;
        }
        data["run"] = run_json(settings.pipeline, *timeline);
    }
    const std::string title = "checkpoint report · " + settings.pipeline +
                              (run_id.empty() ? std::string() : " · run " + run_id);
    if (!write_file(settings.html_file, report_html(title, script_safe_json_text(data)))) {
        std::cerr << "checkpointctl: cannot write " << settings.html_file
                  << ": check that its directory exists and is writable\n";
        return exit_error;
    }
    std::cout << "wrote " << settings.html_file << " (pipeline '" << settings.pipeline << "'"
              << (run_id.empty() ? std::string(", no run") : ", run " + run_id) << ")\n";
    return exit_ok;
}

}  // namespace checkpointctl
