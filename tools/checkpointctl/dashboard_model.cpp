#include "dashboard_model.hpp"

#include "record_fields.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>

namespace checkpointctl::dashboard {

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool completed_or_failed(checkpoint::Status status) {
    return status == checkpoint::Status::Completed || status == checkpoint::Status::Failed;
}

}  // namespace

std::optional<std::int64_t> epoch_ms(std::string_view text) {
    // YYYY-MM-DDTHH:MM:SS[.mmm][Z]
    const auto digits = [&](std::size_t at, std::size_t count) -> std::optional<int> {
        if (at + count > text.size()) return std::nullopt;
        int value = 0;
        for (std::size_t i = at; i < at + count; ++i) {
            if (text[i] < '0' || text[i] > '9') return std::nullopt;
            value = value * 10 + (text[i] - '0');
        }
        return value;
    };
    if (text.size() < 19 || text[4] != '-' || text[7] != '-' || text[10] != 'T' ||
        text[13] != ':' || text[16] != ':')
        return std::nullopt;
    const auto year = digits(0, 4), month = digits(5, 2), day = digits(8, 2);
    const auto hour = digits(11, 2), minute = digits(14, 2), second = digits(17, 2);
    if (!year || !month || !day || !hour || !minute || !second || *month < 1 || *month > 12 ||
        *day < 1 || *day > 31 || *hour > 23 || *minute > 59 || *second > 60)
        return std::nullopt;
    int millis = 0;
    std::size_t rest = 19;
    if (rest < text.size() && text[rest] == '.') {
        const auto fraction = digits(rest + 1, 3);
        if (!fraction) return std::nullopt;
        millis = *fraction;
        rest += 4;
    }
    if (rest < text.size() && text[rest] == 'Z') ++rest;
    if (rest != text.size()) return std::nullopt;
    const std::int64_t days =
        days_from_civil(*year, static_cast<unsigned>(*month), static_cast<unsigned>(*day));
    return ((days * 24 + *hour) * 60 + *minute) * 60'000 + *second * 1000 + millis;
}

std::string timestamp_of(std::int64_t ms) {
    const std::time_t seconds = static_cast<std::time_t>(ms / 1000 - (ms % 1000 < 0));
    const int millis = static_cast<int>(((ms % 1000) + 1000) % 1000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[64];
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
    return text;
}

std::string now_timestamp() {
    return timestamp_of(now_ms());
}

std::vector<StageView> stage_views(const checkpoint::CheckpointManager& manager) {
    std::vector<StageView> views;
    for (auto& state : manager.stages()) {
        StageView view{std::move(state), std::nullopt};
        if (completed_or_failed(view.state.status)) {
            if (view.state.duration) view.last_duration_ms = view.state.duration->count();
        } else {
            // Its newest completed or failed row, among its last rows (a bounded read).
            checkpoint::HistoryFilter filter;
            filter.stage = view.state.stage;
            filter.newest_first = true;
            filter.limit = 64;
            bool found = false;
            manager.for_each_history(filter, [&](const checkpoint::Checkpoint& row) {
                if (found || row.stage.empty() || !completed_or_failed(row.status)) return;
                found = true;
                if (row.duration) view.last_duration_ms = row.duration->count();
            });
        }
        views.push_back(std::move(view));
    }
    return views;
}

std::optional<std::string> last_completed_at(const checkpoint::CheckpointManager& manager) {
    checkpoint::HistoryFilter filter;
    filter.status = checkpoint::Status::Completed;
    filter.newest_first = true;
    filter.limit = 1;
    std::optional<std::string> last;
    manager.for_each_history(filter,
                             [&](const checkpoint::Checkpoint& row) { last = row.timestamp; });
    return last;
}

PipelineSummary summarize(const checkpoint::CheckpointManager& manager) {
    PipelineSummary summary;
    summary.pipeline = manager.pipeline();
    summary.stages = stage_views(manager);
    summary.stage_count = static_cast<std::int64_t>(summary.stages.size());
    for (const auto& view : summary.stages) ++summary.stages_by_status[reported_status(view.state)];
    auto runs = manager.runs();
    for (const auto& run : runs) ++summary.runs_by_outcome[std::string(to_string(run.outcome))];
    if (!runs.empty()) summary.last_run = std::move(runs.back());
    summary.last_completed_at = last_completed_at(manager);
    return summary;
}

std::optional<Timeline> run_timeline(const checkpoint::CheckpointManager& manager,
                                     const std::string& run_id, std::size_t keep_rows) {
    Timeline timeline;
    {
        auto runs = manager.runs();
        const auto found = std::find_if(
            runs.begin(), runs.end(), [&](const checkpoint::Run& r) { return r.run_id == run_id; });
        if (found == runs.end()) return std::nullopt;
        timeline.run = std::move(*found);
    }
    const std::int64_t origin = epoch_ms(timeline.run.started_at).value_or(0);
    const std::int64_t now = now_ms();

    struct Lane {
        TimelineBar bar;
        std::int64_t start = 0, end = 0;  // epoch ms
        bool open = false;                // started, not yet completed or failed
    };
    std::vector<Lane> lanes;
    std::map<std::string, std::size_t> lane_of;
    std::deque<checkpoint::Checkpoint> recent;
    std::int64_t last_row = origin;

    checkpoint::HistoryFilter filter;
    filter.run_id = run_id;
    manager.for_each_history(filter, [&](const checkpoint::Checkpoint& row) {
        ++timeline.rows;
        const std::int64_t at = epoch_ms(row.timestamp).value_or(last_row);
        last_row = std::max(last_row, at);
        if (keep_rows > 0) {
            recent.push_back(row);
            if (recent.size() > keep_rows) recent.pop_front();
        }
        if (row.status == checkpoint::Status::Failed && timeline.failures.size() < max_failures)
            timeline.failures.push_back(row);
        if (row.stage.empty() || row.status == checkpoint::Status::Cleared) return;
        auto [it, added] = lane_of.try_emplace(row.stage, lanes.size());
        if (added) {
            lanes.emplace_back();
            lanes.back().bar.stage = row.stage;
        }
        Lane& lane = lanes[it->second];
        TimelineBar& bar = lane.bar;
        if (row.status == checkpoint::Status::Started ||
            row.status == checkpoint::Status::Incomplete) {
            ++bar.attempts;
            lane.open = true;
            lane.start = lane.end = at;
            bar.status = std::string(to_string(row.status));
            bar.duration_ms.reset();
            bar.message.clear();
            return;
        }
        // Completed or Failed: ends the open attempt, or is an attempt of its own.
        if (!lane.open) {
            ++bar.attempts;
            lane.start = at - (row.duration ? row.duration->count() : 0);
        }
        lane.open = false;
        lane.end = at;
        bar.status = std::string(to_string(row.status));
        bar.duration_ms =
            row.duration ? std::optional<std::int64_t>(row.duration->count()) : std::nullopt;
        bar.message = row.message;
    });

    const bool running = timeline.run.outcome == checkpoint::RunOutcome::Running;
    std::int64_t end = running ? std::max(now, last_row) : last_row;
    if (timeline.run.ended_at) end = std::max(end, epoch_ms(*timeline.run.ended_at).value_or(end));
    for (Lane& lane : lanes) {
        if (lane.open) {
            // Still running: up to now. Incomplete (its process is gone): up to the run's end.
            lane.end = lane.bar.status == "started" ? std::max(now, lane.start) : end;
            lane.bar.duration_ms = lane.end - lane.start;
        }
        end = std::max(end, lane.end);
    }
    timeline.length_ms = std::max<std::int64_t>(0, end - origin);
    for (Lane& lane : lanes) {
        lane.bar.start_ms = std::clamp<std::int64_t>(lane.start - origin, 0, timeline.length_ms);
        lane.bar.end_ms =
            std::clamp<std::int64_t>(lane.end - origin, lane.bar.start_ms, timeline.length_ms);
        lane.bar.start = timestamp_of(lane.start);
        lane.bar.end = timestamp_of(lane.end);
        timeline.bars.push_back(std::move(lane.bar));
    }
    timeline.recent.assign(std::make_move_iterator(recent.begin()),
                           std::make_move_iterator(recent.end()));
    return timeline;
}

HistoryPage history_page(const checkpoint::CheckpointManager& manager, const HistoryQuery& query) {
    checkpoint::HistoryFilter filter;
    filter.stage = query.stage;
    filter.status = query.status;
    filter.run_id = query.run_id;
    filter.before_id = query.before_id;
    filter.newest_first = true;
    filter.limit = query.limit;
    HistoryPage page;
    manager.for_each_history(filter,
                             [&](const checkpoint::Checkpoint& row) { page.rows.push_back(row); });
    if (!page.rows.empty() && static_cast<std::int64_t>(page.rows.size()) == query.limit)
        page.next_before = page.rows.back().id;
    return page;
}

}  // namespace checkpointctl::dashboard
