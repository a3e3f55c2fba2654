// checkpoint_bench — 8 threads sharing one manager against 1 thread.
#include "scenario.hpp"

#include <atomic>
#include <exception>
#include <latch>
#include <thread>

namespace bench {

namespace {

void run_threads(Context& ctx) {
    const Sizes& z = ctx.sizes;
    note("threads: durable saves from 1 thread and from 8 threads sharing one manager");
    CheckpointManager shared(ctx.fresh("threads"), options(Durability::Full));
    std::atomic<long> next{0};
    auto save_next = [&] {
        StageName name;
        shared.save_checkpoint(name("stage_", next.fetch_add(1)));
    };
    auto single = [&] {
        const auto started = Clock::now();
        for (int i = 0; i < z.single_thread_saves; ++i) save_next();
        return z.single_thread_saves / bench::seconds_since(started);
    };
    auto many = [&] {
        std::latch ready(thread_count), go(1);
        std::vector<std::exception_ptr> failures(thread_count);
        std::vector<std::thread> threads;
        for (int t = 0; t < thread_count; ++t) {
            threads.emplace_back([&, t] {
                ready.count_down();
                go.wait();
                try {
                    for (int i = 0; i < z.saves_per_thread; ++i) save_next();
                } catch (...) {
                    failures[t] = std::current_exception();
                }
            });
        }
        ready.wait();
        const auto started = Clock::now();
        go.count_down();
        for (auto& thread : threads) thread.join();
        const double seconds = bench::seconds_since(started);
        for (const auto& failure : failures) {
            if (failure) std::rethrow_exception(failure);
        }
        return thread_count * z.saves_per_thread / seconds;
    };
    const auto samples = bench::interleave(z.repetitions, {single, many}, [&] { ctx.settle(); });
    expect_count("ours (8 threads): completed stages",
                 query_int(shared.database_path(), sql_current_completed), next.load());
    Row& row = ctx.row("threads");
    const double one = bench::median(samples[0]);
    const double eight = bench::median(samples[1]);
    const double ratio = bench::paired_ratio(samples[1], samples[0]);
    row.operation = "durable saves, 8 threads sharing one manager vs 1 thread";
    row.ours = bench::format_rate(eight, "saves/s");
    row.baseline = bench::format_rate(one, "saves/s");
    row.ratio = bench::format_ratio(ratio);
    row.goal = "≥ 4×";
    row.met = ratio >= 4;
}

const bool registered =
    register_scenario({"threads",
                       30,
                       {{"threads", "durable saves, 8 threads sharing one manager vs 1 thread"}},
                       run_threads});

}  // namespace

}  // namespace bench
