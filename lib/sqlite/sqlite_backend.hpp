// The SQLite backend: <directory>/<database_file>, in WAL mode, with outputs too large for
// the database in files beside it (output_files.hpp). This directory and migrations/sqlite/
// hold all of its SQL.
#pragma once

#include "backend.hpp"

#include <memory>

namespace checkpoint::detail {

class SqliteBackend final : public Backend {
public:
    // Opens (and, unless read-only, creates and migrates) <directory>/<database_file>.
    // Throws Error as documented on the CheckpointManager constructor.
    SqliteBackend(const BackendConfig& config, RunIdentity run);
    ~SqliteBackend() override;
    SqliteBackend(const SqliteBackend&) = delete;
    SqliteBackend& operator=(const SqliteBackend&) = delete;

    const std::string& location() const noexcept override;
    const std::string& description() const noexcept override;
    const std::filesystem::path& path() const noexcept override;
    int schema_version() const noexcept override;
    std::optional<int> migrated_from() const noexcept override;
    const std::filesystem::path& outputs_directory() const noexcept override;

    void prepare_output(Write& write) const override;
    void write_batch(const std::vector<Write*>& writes) override;
    void close_run(bool failed) override;
    PruneResult prune(const PruneOptions& options) override;

    LeaseClaim claim_lease(const std::string& stage, std::chrono::milliseconds ttl) override;
    bool renew_lease(const std::string& stage, std::int64_t token,
                     std::chrono::milliseconds ttl) override;
    void release_lease(const std::string& stage, std::int64_t token) override;
    std::vector<StageLease> leases() override;

    HeadState head_state(const std::string& stage, bool with_fingerprint) override;
    std::optional<OutputLocation> output_of(const std::string& stage,
                                            std::optional<std::int64_t> version) override;
    std::string read_output_file(const StoredOutput& output) const override;
    std::optional<Checkpoint> current(const std::string& stage) override;
    std::vector<Checkpoint> current_all() override;
    void for_each_history(const HistoryFilter& filter,
                          const std::function<void(const Checkpoint&)>& visit) override;
    std::vector<Run> runs() override;
    std::vector<std::string> pipelines() override;
    std::vector<std::string> verify() override;
    void backup(const std::filesystem::path& destination) override;

    ChainState chain_state() override;
    std::vector<std::string> verify_chain(const std::optional<ChainHead>& expect) override;
    const SecretKey* chain_key() const noexcept override;
    bool key_missing() const noexcept override;
    void rekey(std::shared_ptr<const DatabaseKey> new_key) override;
    void finish_rekey() override;

    void export_history(
        const std::function<void(const RawRun&)>& run,
        const std::function<void(const RawRow&, const std::optional<std::string>&)>& row) override;
    std::unique_ptr<HistoryImport> begin_import() override;

    // Defined in sqlite_backend_impl.hpp, for the files that implement the backend.
    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace checkpoint::detail
