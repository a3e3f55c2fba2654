// checkpoint_bench scenario "output_crossover": from which size a stored output is cheaper
// as a file than inline in the database (Options::max_inline_output's default comes from
// it; README "Performance"). Each size is saved and loaded back (Durability::Full, default
// options otherwise) with the output forced inline and forced into a file, interleaved.
#pragma once

#include "harness.hpp"

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace bench {

struct CrossoverPoint {
    std::size_t bytes = 0;
    double inline_seconds = 0;  // median of save + load_output, inline (in the database)
    double file_seconds = 0;    // the same, as a file
    double ratio = 0;           // paired median of file / inline: below 1, the file wins
};

// Measures every size of `sizes` (`repetitions` interleaved pairs, each a fresh stage: a
// save and a load_output) in fresh directories under `root`; `settle` runs (untimed) after
// every variant. Throws Failure when a loaded output differs from the saved one.
std::vector<CrossoverPoint> measure_output_crossover(const std::filesystem::path& root,
                                                     const std::vector<std::size_t>& sizes,
                                                     int repetitions,
                                                     const std::function<void()>& settle = {});

// The smallest size of `points` from which on the file wins (ratio < 1) at every larger
// size measured; 0 when it never does.
std::size_t crossover_bytes(const std::vector<CrossoverPoint>& points);

// One table row per size ("save + load of a 64 KiB output: file vs inline").
std::vector<Row> crossover_rows(const std::vector<CrossoverPoint>& points);

}  // namespace bench
