// A real child process for concurrency and crash tests.
//
//   checkpoint_test_worker save DIR PREFIX COUNT [normal]
//       saves PREFIX-0 ... PREFIX-(COUNT-1); after each save returns, prints "ack N" and
//       flushes, so the parent knows which saves were acknowledged. Exits 0; on an error
//       prints "error: ..." on stderr and exits 1.
#include <checkpoint/checkpoint_manager.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
    try {
        const std::string command = argc > 1 ? argv[1] : "";
        if (command == "save" && argc >= 5) {
            checkpoint::Options options;
            if (argc >= 6 && std::string(argv[5]) == "normal")
                options.durability = checkpoint::Durability::Normal;
            checkpoint::CheckpointManager manager(argv[2], options);
            const std::string prefix = argv[3];
            const long count = std::strtol(argv[4], nullptr, 10);
            for (long i = 0; i < count; ++i) {
                manager.save_checkpoint(prefix + "-" + std::to_string(i));
                std::printf("ack %ld\n", i);
                std::fflush(stdout);
            }
            return 0;
        }
        std::cerr << "usage: checkpoint_test_worker save DIR PREFIX COUNT [normal]\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
