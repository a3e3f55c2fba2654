// Uses the installed checkpoint package: saves a stage in a fresh temporary directory,
// reads it back from a second manager, and prints OK. Needs only the public headers, C++17.
#include <checkpoint/checkpoint_manager.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include <unistd.h>

namespace {

int failed(const std::string& what) {
    std::cerr << "consumer: FAIL: " << what << "\n";
    return 1;
}

}  // namespace

int main() {
    std::string pattern = std::filesystem::temp_directory_path() / "checkpoint-consumer-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return failed("mkdtemp " + pattern);
    const std::filesystem::path dir = pattern;
    int status = 0;
    try {
        {
            checkpoint::CheckpointManager manager(dir / "checkpoints");
            if (manager.has_checkpoint("extract")) status = failed("a new database has 'extract'");
            manager.save_checkpoint("extract");
            if (!manager.has_checkpoint("extract")) status = failed("'extract' was not saved");
        }
        checkpoint::Options options;
        options.read_only = true;
        const checkpoint::CheckpointManager reader(dir / "checkpoints", options);
        if (!reader.has_checkpoint("extract")) status = failed("a second manager misses 'extract'");
        if (reader.has_checkpoint("load")) status = failed("'load' was never saved");
        const auto runs = reader.runs();
        if (runs.size() != 1 || runs[0].outcome != checkpoint::RunOutcome::Finished)
            status = failed("expected one finished run");
    } catch (const checkpoint::Error& e) {
        status = failed(std::string("checkpoint::Error: ") + e.what());
    }
    std::filesystem::remove_all(dir);
    if (status == 0) std::cout << "OK\n";
    return status;
}
