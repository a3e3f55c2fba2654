#include "staleness.hpp"

#include <checkpoint/error.hpp>

namespace checkpoint::detail {

namespace {

std::string quoted(const std::string& stage) {
    return "'" + stage + "'";
}

}  // namespace

std::string StalenessCheck::reason(const RowFacts& row) {
    if (const auto found = checked_.find(row.id); found != checked_.end()) return found->second;
    std::string reason = uncached_reason(row);
    checked_[row.id] = reason;
    return reason;
}

std::string StalenessCheck::uncached_reason(const RowFacts& row) {
    if (row.output && !row.output->in_database) {
        const auto size = facts_.output_file_size(row.output->sha256);
        const std::string file = facts_.output_file_name(row.output->sha256);
        if (!size) return "its output file " + file + " is missing";
        if (*size != static_cast<std::uint64_t>(row.output->size)) {
            return "its output file " + file + " holds " + std::to_string(*size) +
                   " bytes instead of " + std::to_string(row.output->size);
        }
    }
    if (row.input_count == 0) return {};
    std::vector<const InputFacts*> unchanged;  // inputs still at the version used
    const std::vector<InputFacts> inputs = facts_.input_facts(row.id);
    for (const InputFacts& input : inputs) {
        if (!input.head) return "its input " + quoted(input.stage) + " has no history any more";
        if (input.head->id < input.cleared_id) {
            return "its input " + quoted(input.stage) + " was cleared (pipeline-wide clear)";
        }
        if (input.head->id != input.used_id) {
            if (input.head->status == Status::Completed) {
                return "its input " + quoted(input.stage) + " was saved again (version " +
                       std::to_string(input.head->version) + "; this checkpoint used version " +
                       std::to_string(input.used_version) + ")";
            }
            return "its input " + quoted(input.stage) + " was " +
                   (input.head->status == Status::Cleared
                        ? std::string("cleared")
                        : "recorded as " + std::string(to_string(input.head->status))) +
                   " after version " + std::to_string(input.used_version);
        }
        unchanged.push_back(&input);
    }
    for (const InputFacts* input : unchanged) {
        const std::string reason = this->reason(facts_.row_facts(input->used_id));
        if (!reason.empty()) return "its input " + quoted(input->stage) + " is stale: " + reason;
    }
    return {};
}

void StalenessCheck::mark(Checkpoint& checkpoint) {
    if (checkpoint.status != Status::Completed) return;
    const auto input_count = static_cast<std::int64_t>(checkpoint.inputs.size());
    if (!has_staleness_checks(checkpoint.output, input_count)) return;
    RowFacts row;
    row.id = checkpoint.id;
    row.output = checkpoint.output;
    row.input_count = input_count;
    checkpoint.stale_reason = reason(row);
    checkpoint.stale = !checkpoint.stale_reason.empty();
}

void require_usable_input(const std::string& stage, const std::string& input, bool completed,
                          const std::string& stale_reason) {
    if (completed && stale_reason.empty()) return;
    throw Error(ErrorCode::InvalidArgument,
                "saving stage '" + stage + "': its input '" + input + "' " +
                    (completed ? "is not up to date (" + stale_reason + "); run it again first"
                               : "has no completed checkpoint; run and save it first") +
                    ". Nothing was written");
}

}  // namespace checkpoint::detail
