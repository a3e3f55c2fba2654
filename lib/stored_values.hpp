// The stored forms of statuses, run outcomes, metadata and input lists, read back: the
// same for every backend. Anything else throws Error(Corrupt) naming the database
// (`description`) and saying to run `checkpointctl verify`.
#pragma once

#include <checkpoint/records.hpp>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace checkpoint::detail {

// "started", "completed", "failed", "cleared" (and "incomplete", which views derive).
Status parse_status(const std::string& text, const std::string& description);
// "running", "finished", "failed", "died".
RunOutcome parse_outcome(const std::string& text, const std::string& description);
// A JSON object (`what` names it in the message: "metadata").
nlohmann::json parse_json_object(const std::string& text, const char* what,
                                 const std::string& description);
// [{"stage": ..., "version": ..., "id": ...}, ...], the inputs column of the views.
std::vector<InputVersion> parse_inputs(const std::string& text, const std::string& description);

}  // namespace checkpoint::detail
