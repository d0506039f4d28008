#include "optimize/egraph/egraph.h"

#include <algorithm>
#include <cstring>

#include "meganeura/error.h"

namespace meganeura::egraph {

size_t ENodeHash::operator()(const ENode& n) const noexcept {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t(n.op) << 32 | n.attr);
  for (ClassId c : n.children) {
    h ^= c + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  }
  return size_t(h * 0xff51afd7ed558ccdull);
}

OpId EGraph::op(std::string_view name) {
  auto [it, inserted] = op_ids_.try_emplace(std::string(name), OpId(op_names_.size()));
  if (inserted) op_names_.emplace_back(name);
  return it->second;
}

AttrId EGraph::attrs(AttrSet set) {
  if (set.empty()) return 0;
  std::sort(set.begin(), set.end(), [](const Attribute& a, const Attribute& b) { return a.key < b.key; });
  // The key text is the canonical byte image: names, value counts and raw doubles.
  std::string key;
  for (const Attribute& a : set) {
    key += a.key;
    key.push_back('\0');
    uint32_t count = uint32_t(a.value.size());
    key.append(reinterpret_cast<const char*>(&count), sizeof count);
    for (double v : a.value) {
      if (v == 0.0) v = 0.0;  // -0 and +0 are one value
      key.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
  }
  auto [it, inserted] = attr_ids_.try_emplace(std::move(key), AttrId(attr_sets_.size()));
  if (inserted) attr_sets_.push_back(std::move(set));
  return it->second;
}

const std::vector<double>* EGraph::attr_value(AttrId id, std::string_view key) const {
  for (const Attribute& a : attr_sets_[id]) {
    if (a.key == key) return &a.value;
  }
  return nullptr;
}

ClassId EGraph::find(ClassId id) const {
  while (parent_[id] != id) {
    parent_[id] = parent_[parent_[id]];
    id = parent_[id];
  }
  return id;
}

ClassId EGraph::find_mutable(ClassId id) { return find(id); }

ENode EGraph::canonical(ENode node) const {
  for (ClassId& c : node.children) c = find(c);
  return node;
}

bool EGraph::lookup(ENode node, ClassId* out) const {
  node = canonical(std::move(node));
  auto it = memo_.find(node);
  if (it == memo_.end()) return false;
  *out = find(it->second);
  return true;
}

ClassId EGraph::add(ENode node) {
  for (ClassId c : node.children) {
    if (c >= parent_.size()) {
      throw Error("egraph: node '" + op_names_.at(node.op) + "' refers to class " + std::to_string(c) +
                  " which does not exist; add children before their parents");
    }
  }
  if (analysis_) analysis_->canonicalize(*this, node);
  node = canonical(std::move(node));
  if (auto it = memo_.find(node); it != memo_.end()) return find(it->second);
  ClassId id = ClassId(classes_.size());
  parent_.push_back(id);
  classes_.emplace_back();
  ++num_canonical_;
  for (ClassId c : node.children) classes_[c].parents.emplace_back(node, id);
  classes_[id].nodes.push_back(node);
  memo_.emplace(node, id);
  if (analysis_) {
    analysis_->make(*this, node, id);
    analysis_->modify(*this, id);
  }
  return id;
}

bool EGraph::merge(ClassId a, ClassId b) {
  a = find(a);
  b = find(b);
  if (a == b) return false;
  // Union by parent count: the class with more users keeps its id, so fewer parents move.
  if (classes_[a].parents.size() < classes_[b].parents.size()) std::swap(a, b);
  parent_[b] = a;
  --num_canonical_;
  EClass from = std::move(classes_[b]);
  classes_[b] = EClass{};
  pending_.insert(pending_.end(), from.parents.begin(), from.parents.end());
  EClass& into = classes_[a];
  if (analysis_ && analysis_->merge(a, b)) {
    analysis_pending_.insert(analysis_pending_.end(), into.parents.begin(), into.parents.end());
    analysis_pending_.insert(analysis_pending_.end(), from.parents.begin(), from.parents.end());
  }
  into.nodes.insert(into.nodes.end(), std::make_move_iterator(from.nodes.begin()),
                    std::make_move_iterator(from.nodes.end()));
  into.parents.insert(into.parents.end(), std::make_move_iterator(from.parents.begin()),
                      std::make_move_iterator(from.parents.end()));
  if (analysis_) analysis_->modify(*this, a);
  return true;
}

void EGraph::rebuild() {
  while (!pending_.empty() || !analysis_pending_.empty()) {
    while (!pending_.empty()) {
      auto [node, cls] = std::move(pending_.back());
      pending_.pop_back();
      // Re-key the node under its canonical children; a collision is a congruence to close.
      memo_.erase(node);
      node = canonical(std::move(node));
      auto [it, inserted] = memo_.try_emplace(node, cls);
      if (!inserted) merge(it->second, cls);
    }
    while (!analysis_pending_.empty()) {
      auto [node, cls] = std::move(analysis_pending_.back());
      analysis_pending_.pop_back();
      cls = find(cls);
      node = canonical(std::move(node));
      if (analysis_->refine(*this, node, cls)) {
        const auto& parents = classes_[cls].parents;
        analysis_pending_.insert(analysis_pending_.end(), parents.begin(), parents.end());
        analysis_->modify(*this, cls);
      }
    }
  }
  // Canonicalise, sort and deduplicate every class's nodes and parents.
  auto less = [](const ENode& x, const ENode& y) {
    if (x.op != y.op) return x.op < y.op;
    if (x.attr != y.attr) return x.attr < y.attr;
    return x.children < y.children;
  };
  for (ClassId id = 0; id < classes_.size(); ++id) {
    if (parent_[id] != id) continue;
    EClass& c = classes_[id];
    for (ENode& n : c.nodes) n = canonical(std::move(n));
    std::sort(c.nodes.begin(), c.nodes.end(), less);
    c.nodes.erase(std::unique(c.nodes.begin(), c.nodes.end()), c.nodes.end());
    for (auto& [n, p] : c.parents) {
      n = canonical(std::move(n));
      p = find(p);
    }
    std::sort(c.parents.begin(), c.parents.end(), [&](const auto& x, const auto& y) {
      if (x.first == y.first) return x.second < y.second;
      return less(x.first, y.first);
    });
    c.parents.erase(std::unique(c.parents.begin(), c.parents.end(),
                                [](const auto& x, const auto& y) { return x.first == y.first; }),
                    c.parents.end());
  }
}

std::vector<ClassId> EGraph::class_ids() const {
  std::vector<ClassId> ids;
  ids.reserve(num_canonical_);
  for (ClassId id = 0; id < classes_.size(); ++id) {
    if (parent_[id] == id) ids.push_back(id);
  }
  return ids;
}

}  // namespace meganeura::egraph
