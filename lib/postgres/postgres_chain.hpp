// The history chain on PostgreSQL (lib/history_chain.hpp has the rules). Every write
// transaction takes the one history_chain row FOR UPDATE (lock_pg_chain) before it draws
// an id, so ids are drawn and the chain extended in commit order, across pipelines.
#pragma once

#include "crypto/key_check.hpp"
#include "history_chain.hpp"

#include <functional>
#include <optional>
#include <string>

#include <pqxx/pqxx>

namespace checkpoint::detail {

// Locks the chain's head until the transaction ends; returns the recorded key's id ("" for
// none), which the caller compares with its own.
std::string lock_pg_chain(pqxx::transaction_base& tx);

// Inside a write transaction that called lock_pg_chain: hashes every row after the head,
// which must all be of run `run_id` ("": any, for a copy); returns the new head.
ChainHead extend_pg_chain(pqxx::transaction_base& tx, const SecretKey* key,
                          const std::string& run_id);

ChainState read_pg_chain_state(pqxx::transaction_base& tx);

// Every row with id > after_id, in id order, read in pages.
void for_each_pg_chain_row(pqxx::transaction_base& tx, std::int64_t after_id,
                           const std::function<void(const ChainRow&)>& visit);

// Inside the prune's transaction (after lock_pg_chain), before the rows in prune_ids go.
void anchor_pg_chain_for_prune(pqxx::transaction_base& tx, const SecretKey* key);

// The recorded key, if any.
std::optional<RecordedKey> read_pg_recorded_key(pqxx::transaction_base& tx);

}  // namespace checkpoint::detail
