// See head_cache.hpp.
#include "sqlite/head_cache.hpp"

#include <sqlite3.h>

namespace checkpoint::detail {

ChangeWatch::ChangeWatch(SQLite::Database& db)
    : db_(db), data_version_(db, "PRAGMA data_version") {}

bool ChangeWatch::in_transaction() const {
    return sqlite3_get_autocommit(db_.getHandle()) == 0;
}

bool ChangeWatch::changed() {
    // Our own rows first: a change after the data_version read below is then seen next time.
    const std::int64_t own = sqlite3_total_changes64(db_.getHandle());
    data_version_.reset();
    data_version_.executeStep();
    const std::int64_t version = data_version_.getColumn(0).getInt64();
    data_version_.reset();
    const bool changed = !version_ || *version_ != version || own_changes_ != own;
    version_ = version;
    own_changes_ = own;
    return changed;
}

}  // namespace checkpoint::detail
