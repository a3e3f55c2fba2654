// One worker of tools/parallel_pipeline (and of the lease tests): claims a stage whose
// inputs are completed, runs it, saves it with its inputs, and repeats until every stage
// of the DAG is completed. Any number of such workers, in any processes on any hosts that
// share the database, run every stage once between them.
#pragma once

#include "dag.hpp"

#include <checkpoint/checkpoint_manager.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace parallel_pipeline {

struct WorkerHooks {
    // The stage's work, run while the lease is held (between begin_stage and the save).
    std::function<void(const std::string& stage, const checkpoint::Lease& lease)> work;
};

// Runs stages until the whole DAG is completed; returns how many this worker ran.
// Throws checkpoint::Error as the manager does, except LeaseLost on begin or save (the
// claim lapsed and the stage was taken over: another worker runs it; this one goes on) and
// Busy on a claim (another worker holds the stage: this one picks another).
inline int run_worker(checkpoint::CheckpointManager& manager, const Dag& dag,
                      const checkpoint::LeaseOptions& lease_options, const WorkerHooks& hooks) {
    std::mt19937 rng(std::random_device{}());
    checkpoint::LeaseOptions try_once = lease_options;
    try_once.wait = std::chrono::milliseconds(0);
    int ran = 0;
    int idle_rounds = 0;
    // Stages seen completed (nothing here clears a stage, so they stay completed): only the
    // frontier — stages whose inputs are all completed — is asked again each round.
    std::set<std::string> completed;
    for (;;) {
        std::vector<std::size_t> frontier;
        bool all_done = true;
        for (std::size_t i = 0; i < dag.stages.size(); ++i) {
            if (completed.count(dag.stages[i])) continue;
            bool inputs_done = true;
            for (const std::string& input : dag.inputs[i])
                inputs_done = inputs_done && completed.count(input) > 0;
            if (inputs_done && manager.has_checkpoint(dag.stages[i])) {
                completed.insert(dag.stages[i]);
                continue;
            }
            all_done = false;
            if (inputs_done) frontier.push_back(i);
        }
        std::set<std::string> held;
        if (!frontier.empty())
            for (const checkpoint::StageLease& lease : manager.leases())
                if (lease.live) held.insert(lease.stage);
        std::vector<std::size_t> ready;  // not held by a live claim
        for (std::size_t i : frontier)
            if (!held.count(dag.stages[i])) ready.push_back(i);
        if (all_done) return ran;
        std::shuffle(ready.begin(), ready.end(), rng);
        bool progressed = false;
        for (std::size_t index : ready) {
            const std::string& stage = dag.stages[index];
            std::optional<checkpoint::Lease> lease;
            try {
                lease = manager.claim_stage(stage, try_once);
            } catch (const checkpoint::Error& e) {
                if (e.code() == checkpoint::ErrorCode::Busy) continue;  // taken meanwhile
                throw;
            }
            if (!lease) continue;  // completed meanwhile
            checkpoint::SaveOptions save;
            save.inputs = dag.inputs[index];
            try {
                manager.begin_stage(stage);
                if (hooks.work) hooks.work(stage, *lease);
                manager.save_checkpoint(stage, save);
                completed.insert(stage);
                ++ran;
            } catch (const checkpoint::Error& e) {
                // The claim lapsed (this worker was too slow to renew it: a pause longer
                // than the ttl) and another worker has the stage now: leave it to them.
                if (e.code() != checkpoint::ErrorCode::LeaseLost) throw;
            }
            progressed = true;
            break;  // look at the DAG again: this stage may have made others ready
        }
        if (progressed) {
            idle_rounds = 0;
            continue;
        }
        // Nothing to claim now: the ready stages are held by others (who may finish, or
        // die and let their claims lapse) or blocked by their inputs. Poll with back-off.
        const int pause_ms = std::min(20, 2 << std::min(idle_rounds++, 4));
        std::this_thread::sleep_for(
            std::chrono::milliseconds(pause_ms / 2 + rng() % (pause_ms / 2 + 1)));
    }
}

}  // namespace parallel_pipeline
