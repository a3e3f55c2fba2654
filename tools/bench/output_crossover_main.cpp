// checkpoint_output_crossover [--dir DIR] [--repetitions N] [SIZE_KIB...]: the
// output_crossover scenario on its own (tools/bench/output_crossover.hpp), until
// checkpoint_bench runs it. Prints the table and the crossover; exit 1 on a benchmark error.
#include "output_crossover.hpp"

#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

int main(int argc, char** argv) {
    std::filesystem::path parent = ".";
    int repetitions = 15;
    std::vector<std::size_t> sizes;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--dir" && i + 1 < argc) {
            parent = argv[++i];
        } else if (arg == "--repetitions" && i + 1 < argc) {
            repetitions = std::atoi(argv[++i]);
        } else {
            sizes.push_back(static_cast<std::size_t>(std::stoul(arg)) * 1024);
        }
    }
    if (sizes.empty())
        sizes = {16 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 4 << 20};
    const std::filesystem::path root =
        parent / ("checkpoint-crossover-" + std::to_string(::getpid()));
    try {
        std::filesystem::create_directories(root);
        const auto points = bench::measure_output_crossover(root, sizes, repetitions,
                                                            [&] { bench::sync_filesystem(root); });
        std::fputs(bench::render_table(bench::crossover_rows(points)).c_str(), stdout);
        std::printf("files win from %zu bytes (0: never, among the sizes measured)\n",
                    bench::crossover_bytes(points));
        std::filesystem::remove_all(root);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "checkpoint_output_crossover: %s\n", e.what());
        std::filesystem::remove_all(root);
        return 1;
    }
    return 0;
}
