// The text form of a graph: one line per node, for debugging and for tests that read structure.
#include <algorithm>
#include <sstream>

#include "meganeura/graph.h"

namespace meganeura {

std::string Graph::dump() const {
  std::ostringstream out;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    out << '%' << i << " = " << op_name(n.op) << '(';
    for (size_t j = 0; j < n.inputs.size(); ++j) out << (j ? ", %" : "%") << n.inputs[j];
    out << ')';
    const std::string attrs = n.attrs.to_string();
    if (!attrs.empty()) out << ' ' << attrs;
    if (n.op == Op::parameter) out << " init=" << n.init.to_string() << (n.trainable ? "" : " frozen");
    if (n.op == Op::constant) {  // the first few values identify a constant without flooding the dump
      out << " data=[";
      const size_t shown = std::min<size_t>(n.data.size(), 4);
      for (size_t j = 0; j < shown; ++j) out << (j ? ", " : "") << n.data[j];
      out << (shown < n.data.size() ? ", ...]" : "]");
    }
    out << " : " << format_shape(n.shape) << ' ' << dtype_name(n.dtype);
    if (!n.name.empty()) out << " \"" << n.name << '"';
    out << '\n';
  }
  if (outputs_set_) {
    out << "outputs:";
    for (int32_t id : outputs_) out << " %" << id;
    out << '\n';
  }
  return out.str();
}

std::string to_string(const Graph& graph) { return graph.dump(); }

}  // namespace meganeura
