// The example DAG of tools/parallel_pipeline (and of the lease tests): stages in layers,
// each stage consuming one to three stages of the layer before it (fan-in), each stage
// consumed by several of the next layer (fan-out). Deterministic for a given shape.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace parallel_pipeline {

struct Dag {
    std::vector<std::string> stages;               // in topological order
    std::vector<std::vector<std::string>> inputs;  // inputs[i]: what stages[i] consumes
};

// `count` stages in layers of `width` ("L03-S05": layer 3, stage 5). The first layer has no
// inputs; the last stage of all (a final fan-in) consumes every stage of the layer before.
inline Dag make_dag(int count, int width) {
    Dag dag;
    std::mt19937 rng(20261130);
    width = std::max(1, width);
    std::vector<int> previous;  // indexes of the previous layer
    for (int start = 0, layer = 0; start < count; start += width, ++layer) {
        std::vector<int> current;
        const int end = std::min(count, start + width);
        for (int i = start; i < end; ++i) {
            char name[32];
            std::snprintf(name, sizeof name, "L%02d-S%02d", layer, i - start);
            dag.stages.emplace_back(name);
            std::set<std::string> inputs;
            const bool final_stage = i == count - 1 && layer > 0 && end - start == 1;
            if (final_stage) {
                for (int p : previous) inputs.insert(dag.stages[p]);
            } else if (!previous.empty()) {
                const int fan_in = 1 + static_cast<int>(rng() % 3);
                for (int k = 0; k < fan_in; ++k)
                    inputs.insert(dag.stages[previous[rng() % previous.size()]]);
            }
            dag.inputs.emplace_back(inputs.begin(), inputs.end());
            current.push_back(i);
        }
        previous = current;
    }
    return dag;
}

}  // namespace parallel_pipeline
