// The bridge from a Graph's parameters to the checkpoint mapping, kept apart so that the rest of
// the SafeTensors code does not depend on the graph IR.
#include "meganeura/graph.h"
#include "meganeura/safetensors.h"

namespace meganeura {

std::vector<ParameterSpec> parameter_specs(const Graph& graph) {
  std::vector<ParameterSpec> specs;
  for (int32_t id : graph.parameters()) {
    const Node& node = graph.node(id);
    specs.push_back({node.name, node.shape});
  }
  return specs;
}

std::map<std::string, std::vector<float>> SafeTensorsModel::load(const Graph& graph, const WeightMapping& mapping) const {
  return load(parameter_specs(graph), mapping);
}

}  // namespace meganeura
