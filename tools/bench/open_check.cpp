// checkpoint_bench_open: "ours" in the new-process row, as a user's program would be: it
// links the library alone, opens the directory with the default Options, checks one stage
// and exits.
//
//   checkpoint_bench_open DIR STAGE
//
// Exit status: 0 when the stage is completed, 3 when not, 1 on an error.
#include <checkpoint/checkpoint_manager.hpp>

#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: checkpoint_bench_open DIR STAGE\n");
        return 1;
    }
    try {
        checkpoint::CheckpointManager manager(argv[1]);
        return manager.has_checkpoint(argv[2]) ? 0 : 3;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "checkpoint_bench_open: %s\n", e.what());
        return 1;
    }
}
