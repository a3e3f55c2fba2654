// checkpoint — retention: deleting old history rows and the outputs only they referenced.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace checkpoint {

// Which history rows CheckpointManager::prune() deletes. A row is deleted when it passes
// every rule that is set; with no rule set, prune() deletes no row and only removes
// orphaned output files.
//
// Never deleted, whatever the rules: the last row of each stage (its current state, so
// the current completed version of every stage, with its output), the pipeline's last
// pipeline-wide clear, and every row of a run that is still running.
struct PruneOptions {
    // Only rows older than this (by their timestamp). Default: unset (any age).
    std::optional<std::chrono::seconds> older_than;

    // Keep the newest `keep_last` completed versions of each stage, with every row of the
    // stage written after the oldest of them; only rows of a stage written before its
    // keep_last-th newest completed version are deleted (a stage with fewer completed
    // versions loses nothing). At least 1. Default: unset (no limit).
    std::optional<std::int64_t> keep_last;

    // Output files (named by a SHA-256, or temporary "*.tmp" files; other files in the
    // outputs directory are never touched) that no history row references (left by a process killed
    // between writing an output and committing its row, or by a pruned row) are deleted once they
    // are older than this. Default: 1 hour, so that a save in flight keeps its file.
    std::chrono::seconds orphan_grace{3600};
};

// What a prune() deleted.
struct PruneResult {
    std::int64_t rows_deleted = 0;   // history rows
    std::int64_t runs_deleted = 0;   // runs left without any history row (ended runs only)
    std::int64_t files_deleted = 0;  // output files (referenced only by pruned rows, or orphaned)
    std::int64_t bytes_freed =
        0;  // their total size, plus the stored outputs deleted from the database
};

}  // namespace checkpoint
