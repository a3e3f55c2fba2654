#include <checkpoint/records.hpp>

#include <array>
#include <utility>

namespace checkpoint {

namespace {
constexpr std::array<std::pair<Status, std::string_view>, 5> status_names{{
    {Status::Started, "started"},
    {Status::Completed, "completed"},
    {Status::Failed, "failed"},
    {Status::Cleared, "cleared"},
    {Status::Incomplete, "incomplete"},
}};
}  // namespace

std::string_view to_string(Status status) noexcept {
    for (const auto& [value, name] : status_names) {
        if (value == status) return name;
    }
    return "unknown";
}

std::optional<Status> status_from_string(std::string_view text) noexcept {
    for (const auto& [value, name] : status_names) {
        if (name == text) return value;
    }
    return std::nullopt;
}

std::string_view to_string(RunOutcome outcome) noexcept {
    switch (outcome) {
        case RunOutcome::Running:
            return "running";
        case RunOutcome::Finished:
            return "finished";
        case RunOutcome::Failed:
            return "failed";
        case RunOutcome::Died:
            return "died";
    }
    return "unknown";
}

}  // namespace checkpoint
