// The scale of the slow tests: CHECKPOINT_TEST_SCALE, a percentage of their full iteration
// counts (kills, mutations, power cuts, saves). Unset, they run in full (100): the counts
// the README's reliability table promises. tools/test.sh lowers it for the sanitizer runs,
// where every iteration costs several times more, so that CI stays well under 30 minutes;
// more than 100 runs longer (CHECKPOINT_TEST_SCALE=1000: ten times the full counts).
//
// Every scaled count is at least its minimum (never 0 iterations: a scaled-down test still
// tests), and each slow test prints the scale and the counts it ran with. A value that is
// not a whole number from 1 to 100000 stops the test program (a typo must not silently
// turn a test into a shorter one).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <vector>

namespace checkpoint::test {

// CHECKPOINT_TEST_SCALE, read once: the percentage of the full counts (default 100).
inline int test_scale_percent() {
    static const int percent = [] {
        const char* text = std::getenv("CHECKPOINT_TEST_SCALE");
        if (text == nullptr || *text == '\0') return 100;
        char* end = nullptr;
        const long value = std::strtol(text, &end, 10);
        if (*end != '\0' || value < 1 || value > 100'000) {
            std::cerr << "CHECKPOINT_TEST_SCALE=" << text
                      << ": expected a percentage of the full test counts, from 1 to 100000\n";
            std::exit(2);
        }
        return static_cast<int>(value);
    }();
    return percent;
}

// `full` scaled by CHECKPOINT_TEST_SCALE, rounded up, and at least `minimum` (at least 1).
inline int scaled(int full, int minimum = 1) {
    const std::int64_t value = (static_cast<std::int64_t>(full) * test_scale_percent() + 99) / 100;
    return static_cast<int>(std::max<std::int64_t>({value, minimum, 1}));
}

// The indexes, out of 0 .. count - 1, that a test runs at this scale: all of them at 100%
// or more; otherwise count scaled (at least `minimum`, at most count), evenly spread from a
// random start drawn from `rng` (a systematic sample: in a list ordered by kind, every kind
// with more entries than the sampling step is represented, and another start next time
// covers others).
template <class Rng>
std::vector<std::size_t> scaled_sample(std::size_t count, int minimum, Rng& rng) {
    std::vector<std::size_t> indexes;
    const auto kept = std::min<std::size_t>(
        count, static_cast<std::size_t>(scaled(static_cast<int>(count), minimum)));
    if (kept == 0) return indexes;
    if (kept == count || test_scale_percent() >= 100) {
        for (std::size_t i = 0; i < count; ++i) indexes.push_back(i);
        return indexes;
    }
    const double step = static_cast<double>(count) / static_cast<double>(kept);
    const double start = std::uniform_real_distribution<double>(0.0, step)(rng);
    for (std::size_t k = 0; k < kept; ++k) {
        const auto index = static_cast<std::size_t>(start + static_cast<double>(k) * step);
        indexes.push_back(std::min(index, count - 1));
    }
    return indexes;
}

// Prints "<test>: CHECKPOINT_TEST_SCALE=<percent>%: <what>" (one line), so that a log says
// at which scale a test ran.
inline void announce_scale(const std::string& test, const std::string& what) {
    std::cout << test << ": CHECKPOINT_TEST_SCALE=" << test_scale_percent() << "%"
              << (test_scale_percent() == 100 ? " (full counts)" : "") << ": " << what << std::endl;
}

}  // namespace checkpoint::test
