#include "optimize/egraph/extract.h"

#include <algorithm>
#include <limits>
#include <map>

#include "meganeura/error.h"

namespace meganeura::egraph {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Classes in an order where each has at least one node whose children all come earlier (a node
// becomes ready once its children are placed). Choosing only such nodes can never form a cycle.
struct Order {
  std::vector<ClassId> classes;       // placement order
  std::vector<uint32_t> position;     // per class id
  std::vector<uint32_t> users;        // distinct parent classes per class id
};

Order placement_order(const EGraph& g, const std::vector<ClassId>& ids) {
  constexpr uint32_t kUnplaced = ~0u;
  Order order;
  order.position.assign(g.id_bound(), kUnplaced);
  order.users.assign(g.id_bound(), 0);
  // Reverse index: for each class, the (class, node) pairs that read it, once per node.
  std::vector<uint32_t> node_base(g.id_bound(), 0);
  uint32_t total = 0;
  for (ClassId id : ids) {
    node_base[id] = total;
    total += uint32_t(g.eclass(id).nodes.size());
  }
  std::vector<uint32_t> pending(total, 0);
  std::vector<std::vector<std::pair<ClassId, uint32_t>>> readers(g.id_bound());
  std::vector<ClassId> distinct;
  std::vector<ClassId> queue;
  for (ClassId id : ids) {
    const auto& nodes = g.eclass(id).nodes;
    for (uint32_t k = 0; k < nodes.size(); ++k) {
      distinct.clear();
      for (ClassId c : nodes[k].children) distinct.push_back(g.find(c));
      std::sort(distinct.begin(), distinct.end());
      distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
      pending[node_base[id] + k] = uint32_t(distinct.size());
      for (ClassId c : distinct) readers[c].push_back({id, k});
      if (distinct.empty() && order.position[id] == kUnplaced) {
        order.position[id] = uint32_t(order.classes.size());
        order.classes.push_back(id);
      }
    }
  }
  for (ClassId id : ids) {
    distinct.clear();
    for (auto [reader, k] : readers[id]) distinct.push_back(reader);
    std::sort(distinct.begin(), distinct.end());
    order.users[id] = uint32_t(std::unique(distinct.begin(), distinct.end()) - distinct.begin());
  }
  for (size_t next = 0; next < order.classes.size(); ++next) {
    for (auto [reader, k] : readers[order.classes[next]]) {
      if (--pending[node_base[reader] + k] == 0 && order.position[reader] == kUnplaced) {
        order.position[reader] = uint32_t(order.classes.size());
        order.classes.push_back(reader);
      }
    }
  }
  return order;
}

// One pass in placement order. A class's cost is its best eligible node's cost plus each distinct
// child's cost shared among that child's users (so a residual stream, read by every layer, is not
// counted once per path, which would grow exponentially). Children in `paid` are free.
std::vector<int32_t> amortized_choice(const EGraph& g, const Order& order,
                                      const std::vector<std::vector<double>>& node_costs,
                                      const std::vector<uint8_t>& paid) {
  std::vector<double> best(g.id_bound(), kInf);
  std::vector<int32_t> choice(g.id_bound(), -1);
  std::vector<ClassId> distinct;
  for (ClassId id : order.classes) {
    const auto& nodes = g.eclass(id).nodes;
    for (size_t k = 0; k < nodes.size(); ++k) {
      distinct.clear();
      for (ClassId c : nodes[k].children) distinct.push_back(g.find(c));
      std::sort(distinct.begin(), distinct.end());
      distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
      double c = node_costs[id][k];
      for (ClassId child : distinct) {
        if (order.position[child] >= order.position[id]) {
          c = kInf;  // not eligible: could close a cycle
          break;
        }
        if (!paid[child]) c += best[child] / std::max<uint32_t>(order.users[child], 1);
      }
      if (c < best[id]) {
        best[id] = c;
        choice[id] = int32_t(k);
      }
    }
  }
  return choice;
}

// True DAG cost of a choice (each reachable class once), or infinity when the choice has a cycle.
double dag_cost(const EGraph& g, const std::vector<int32_t>& choice,
                const std::vector<std::vector<double>>& node_costs, std::span<const ClassId> roots,
                std::vector<uint32_t>* users) {
  users->assign(g.id_bound(), 0);
  std::vector<uint8_t> state(g.id_bound(), 0);  // 0 new, 1 on stack, 2 done
  double total = 0;
  std::vector<std::pair<ClassId, size_t>> stack;
  for (ClassId r : roots) {
    r = g.find(r);
    ++(*users)[r];
    if (state[r]) continue;
    if (choice[r] < 0) return kInf;
    stack.push_back({r, 0});
    state[r] = 1;
    while (!stack.empty()) {
      auto& [cls, next] = stack.back();
      const ENode& n = g.eclass(cls).nodes[choice[cls]];
      if (next < n.children.size()) {
        ClassId child = g.find(n.children[next++]);
        ++(*users)[child];
        if (state[child] == 1) return kInf;
        if (state[child] == 0) {
          if (choice[child] < 0) return kInf;
          state[child] = 1;
          stack.push_back({child, 0});
        }
        continue;
      }
      total += node_costs[cls][choice[cls]];
      state[cls] = 2;
      stack.pop_back();
    }
  }
  return total;
}

// Nodes the placement order ruled out because one child class is placed after theirs: a class
// proved equal to a slice of a product computed later (a product widened over several classes'
// operands). Grouped by that late child, every used class with a node reading it (and otherwise
// only what the extraction already computes) switches together, which pays for the shared child
// once; kept only when the true DAG cost drops (a cycle costs infinity).
void adopt_late_children(const EGraph& g, const Order& order, const std::vector<ClassId>& ids,
                         const std::vector<std::vector<double>>& node_costs, std::span<const ClassId> roots,
                         Extraction* best, std::vector<uint32_t>* users) {
  constexpr uint32_t kUnplaced = ~0u;
  std::vector<uint8_t> late(g.id_bound(), 0);
  bool any = false;
  for (ClassId id : ids) {
    if (order.position[id] == kUnplaced || (*users)[id] == 0) continue;
    for (const ENode& node : g.eclass(id).nodes) {
      for (ClassId c : node.children) {
        c = g.find(c);
        if (order.position[c] != kUnplaced && order.position[c] >= order.position[id] && best->choice[c] >= 0) {
          late[c] = 1;
          any = true;
        }
      }
    }
  }
  if (!any) return;
  // For each late class, per reading class its cheapest node whose other children are all in use.
  std::map<ClassId, std::map<ClassId, uint32_t>> readers_of_late;
  for (ClassId id : ids) {
    if ((*users)[id] == 0 || best->choice[id] < 0) continue;
    const auto& nodes = g.eclass(id).nodes;
    for (uint32_t k = 0; k < nodes.size(); ++k) {
      if (int32_t(k) == best->choice[id]) continue;
      ClassId shared = 0;
      int late_children = 0;
      bool others_in_use = true;
      for (ClassId c : nodes[k].children) {
        c = g.find(c);
        if (late[c]) {
          if (late_children == 0 || c != shared) ++late_children;
          shared = c;
        } else if ((*users)[c] == 0) {
          others_in_use = false;
        }
      }
      if (late_children != 1 || !others_in_use || shared == id) continue;
      auto [it, fresh] = readers_of_late[shared].emplace(id, k);
      if (!fresh && node_costs[id][k] < node_costs[id][it->second]) it->second = k;
    }
  }
  for (const auto& [shared, readers] : readers_of_late) {
    if (readers.size() < 2) continue;
    double gain = -node_costs[shared][best->choice[shared]];
    for (auto [id, k] : readers) gain += node_costs[id][best->choice[id]] - node_costs[id][k];
    if (!(gain > 0)) continue;
    std::vector<int32_t> choice = best->choice;
    for (auto [id, k] : readers) choice[id] = int32_t(k);
    std::vector<uint32_t> candidate_users;
    const double c = dag_cost(g, choice, node_costs, roots, &candidate_users);
    if (c < best->dag_cost) {
      best->choice = std::move(choice);
      best->dag_cost = c;
      *users = std::move(candidate_users);
    }
  }
}

}  // namespace

Extraction extract(const EGraph& g, const CostModel& cost, std::span<const ClassId> roots) {
  std::vector<ClassId> ids = g.class_ids();
  std::vector<std::vector<double>> node_costs(g.id_bound());
  for (ClassId id : ids) {
    for (const ENode& n : g.eclass(id).nodes) {
      // A floor keeps every node strictly positive, which rules out zero-cost cycles.
      node_costs[id].push_back(std::max(cost.node_cost(g, id, n), 1e-9));
    }
  }
  const Order order = placement_order(g, ids);
  std::vector<uint8_t> paid(g.id_bound(), 0);
  Extraction best;
  best.choice = amortized_choice(g, order, node_costs, paid);
  std::vector<uint32_t> users;
  best.dag_cost = dag_cost(g, best.choice, node_costs, roots, &users);
  if (best.dag_cost == kInf) {
    throw Error("egraph extraction: a root has no finite-cost expression; check that every leaf operator has a cost");
  }
  // DAG refinement: what the current best already computes is free to reuse, so a node that shares it
  // can beat a fused node that recomputes it; each round is kept only if its true DAG cost drops.
  for (int round = 0; round < 4; ++round) {
    bool any = false;
    for (ClassId id : ids) {
      uint8_t shared = users[id] >= 1;
      any |= shared != paid[id];
      paid[id] = shared;
    }
    if (!any) break;
    std::vector<int32_t> choice = amortized_choice(g, order, node_costs, paid);
    std::vector<uint32_t> candidate_users;
    double c = dag_cost(g, choice, node_costs, roots, &candidate_users);
    if (!(c < best.dag_cost)) break;
    best.choice = std::move(choice);
    best.dag_cost = c;
    users = std::move(candidate_users);
  }
  adopt_late_children(g, order, ids, node_costs, roots, &best, &users);
  return best;
}

Term build_term(const EGraph& g, const Extraction& extraction, std::span<const ClassId> roots) {
  Term term;
  std::vector<uint32_t> index(g.id_bound(), ~0u);
  std::vector<std::pair<ClassId, size_t>> stack;
  for (ClassId r : roots) {
    r = g.find(r);
    if (index[r] == ~0u) {
      stack.push_back({r, 0});
      while (!stack.empty()) {
        auto& [cls, next] = stack.back();
        if (extraction.choice[cls] < 0) throw Error("egraph extraction: class without a chosen node");
        const ENode& n = g.eclass(cls).nodes[extraction.choice[cls]];
        if (next < n.children.size()) {
          ClassId child = g.find(n.children[next++]);
          if (index[child] == ~0u) stack.push_back({child, 0});
          continue;
        }
        ENode copy = n;
        for (ClassId& c : copy.children) c = index[g.find(c)];
        index[cls] = uint32_t(term.nodes.size());
        term.nodes.push_back(std::move(copy));
        term.classes.push_back(cls);
        stack.pop_back();
      }
    }
    term.roots.push_back(index[r]);
  }
  return term;
}

}  // namespace meganeura::egraph
