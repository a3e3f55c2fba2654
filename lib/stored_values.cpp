#include "stored_values.hpp"

#include <checkpoint/error.hpp>

namespace checkpoint::detail {

Status parse_status(const std::string& text, const std::string& description) {
    if (auto status = status_from_string(text)) return *status;
    throw Error(ErrorCode::Corrupt, description + ": holds an unknown status '" + text +
                                        "'. Run `checkpointctl verify` on it");
}

RunOutcome parse_outcome(const std::string& text, const std::string& description) {
    for (RunOutcome outcome :
         {RunOutcome::Running, RunOutcome::Finished, RunOutcome::Failed, RunOutcome::Died}) {
        if (to_string(outcome) == text) return outcome;
    }
    throw Error(ErrorCode::Corrupt, description + ": holds an unknown run outcome '" + text +
                                        "'. Run `checkpointctl verify` on it");
}

nlohmann::json parse_json_object(const std::string& text, const char* what,
                                 const std::string& description) {
    nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
    if (value.is_discarded() || !value.is_object()) {
        throw Error(ErrorCode::Corrupt, description + ": holds " + what +
                                            " that is not a JSON object. Run `checkpointctl "
                                            "verify` on it");
    }
    return value;
}

// The inputs column of the views: [{"stage": ..., "version": ..., "id": ...}, ...].
std::vector<InputVersion> parse_inputs(const std::string& text, const std::string& description) {
    const nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
    std::vector<InputVersion> inputs;
    const auto corrupt = [&description] {
        return Error(ErrorCode::Corrupt, description +
                                             ": holds a malformed list of inputs. Run "
                                             "`checkpointctl verify` on it");
    };
    if (!value.is_array()) throw corrupt();
    for (const nlohmann::json& item : value) {
        if (!item.is_object() || !item.contains("stage") || !item["stage"].is_string() ||
            !item.contains("version") || !item["version"].is_number_integer() ||
            !item.contains("id") || !item["id"].is_number_integer()) {
            throw corrupt();
        }
        inputs.push_back({item["stage"].get<std::string>(), item["version"].get<std::int64_t>(),
                          item["id"].get<std::int64_t>()});
    }
    return inputs;
}

}  // namespace checkpoint::detail
