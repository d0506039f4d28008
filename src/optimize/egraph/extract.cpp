#include "optimize/egraph/extract.h"

#include <algorithm>
#include <limits>

#include "meganeura/error.h"

namespace meganeura::egraph {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Tree-cost fixed point; children in `paid` count as free once their own cost is known.
std::vector<int32_t> tree_choice(const EGraph& g, const std::vector<ClassId>& ids,
                                 const std::vector<std::vector<double>>& node_costs,
                                 const std::vector<uint8_t>& paid) {
  std::vector<double> best(g.id_bound(), kInf);
  std::vector<int32_t> choice(g.id_bound(), -1);
  std::vector<ClassId> distinct;
  for (bool changed = true; changed;) {
    changed = false;
    for (ClassId id : ids) {
      const auto& nodes = g.eclass(id).nodes;
      for (size_t k = 0; k < nodes.size(); ++k) {
        distinct.assign(nodes[k].children.begin(), nodes[k].children.end());
        std::sort(distinct.begin(), distinct.end());
        distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
        double c = node_costs[id][k];
        for (ClassId child : distinct) {
          double cc = best[child];
          if (cc == kInf) {
            c = kInf;
            break;
          }
          if (!paid[child]) c += cc;
        }
        if (c < best[id]) {
          best[id] = c;
          choice[id] = int32_t(k);
          changed = true;
        }
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
  std::vector<uint8_t> paid(g.id_bound(), 0);
  Extraction best;
  best.choice = tree_choice(g, ids, node_costs, paid);
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
    std::vector<int32_t> choice = tree_choice(g, ids, node_costs, paid);
    std::vector<uint32_t> candidate_users;
    double c = dag_cost(g, choice, node_costs, roots, &candidate_users);
    if (!(c < best.dag_cost)) break;
    best.choice = std::move(choice);
    best.dag_cost = c;
    users = std::move(candidate_users);
  }
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
