// The op table's accessors, dtypes and attribute hashing/printing.
#include <cmath>
#include <cstring>
#include <functional>
#include <sstream>

#include "meganeura/graph.h"

namespace meganeura {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
  }
  return "?";
}

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::i32: return 4;
  }
  return 0;
}

int64_t num_elements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const char* op_name(Op op) {
  switch (op) {
#define MEGANEURA_OP(name, arity, category) \
  case Op::name:                            \
    return #name;
#include "meganeura/ops.def"
#undef MEGANEURA_OP
  }
  return "?";
}

OpCategory op_category(Op op) {
  switch (op) {
#define MEGANEURA_OP(name, arity, category) \
  case Op::name:                            \
    return OpCategory::category;
#include "meganeura/ops.def"
#undef MEGANEURA_OP
  }
  return OpCategory::leaf;
}

int op_arity(Op op) {
  switch (op) {
#define MEGANEURA_OP(name, arity, category) \
  case Op::name:                            \
    return arity;
#include "meganeura/ops.def"
#undef MEGANEURA_OP
  }
  return 0;
}

const char* category_name(OpCategory category) {
  switch (category) {
    case OpCategory::leaf: return "leaf";
    case OpCategory::pointwise: return "pointwise";
    case OpCategory::reduction: return "reduction";
    case OpCategory::matmul: return "matmul";
    case OpCategory::attention: return "attention";
    case OpCategory::conv: return "conv";
    case OpCategory::movement: return "movement";
    case OpCategory::nn: return "nn";
    case OpCategory::loss: return "loss";
    case OpCategory::optimizer: return "optimizer";
  }
  return "?";
}

std::vector<Op> all_ops() {
  return {
#define MEGANEURA_OP(name, arity, category) Op::name,
#include "meganeura/ops.def"
#undef MEGANEURA_OP
  };
}

std::optional<Op> op_from_name(const std::string& name) {
  for (Op op : all_ops())
    if (name == op_name(op)) return op;
  return std::nullopt;
}

namespace {

void mix(size_t& seed, size_t value) { seed ^= value + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2); }

size_t hash_double(double v) {
  if (v == 0.0) v = 0.0;  // +0 and -0 compare equal, so they must hash alike
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return std::hash<uint64_t>{}(bits);
}

std::string format_double(double v) {
  std::ostringstream out;
  out.precision(9);
  out << v;
  return out.str();
}

}  // namespace

size_t Attrs::hash() const {
  size_t h = 0;
  mix(h, std::hash<int64_t>{}(axis));
  mix(h, (keepdim ? 1u : 0u) | (transpose_a ? 2u : 0u) | (transpose_b ? 4u : 0u) | (causal ? 8u : 0u));
  for (double v : {eps, theta, exponent, scale, value, p}) mix(h, hash_double(v));
  for (int64_t v : {groups, num_heads, num_kv_heads, ignore_index}) mix(h, std::hash<int64_t>{}(v));
  mix(h, static_cast<size_t>(dtype));
  mix(h, ints.size());
  for (int64_t v : ints) mix(h, std::hash<int64_t>{}(v));
  mix(h, std::hash<std::string>{}(label));
  return h;
}

std::string Attrs::to_string() const {
  const Attrs defaults;
  std::vector<std::string> parts;
  auto flag = [&](const char* name, bool v, bool d) {
    if (v != d) parts.push_back(std::string(name) + "=" + (v ? "true" : "false"));
  };
  auto integer = [&](const char* name, int64_t v, int64_t d) {
    if (v != d) parts.push_back(std::string(name) + "=" + std::to_string(v));
  };
  auto real = [&](const char* name, double v, double d) {
    if (v != d) parts.push_back(std::string(name) + "=" + format_double(v));
  };
  integer("axis", axis, defaults.axis);
  flag("keepdim", keepdim, defaults.keepdim);
  flag("transpose_a", transpose_a, defaults.transpose_a);
  flag("transpose_b", transpose_b, defaults.transpose_b);
  flag("causal", causal, defaults.causal);
  real("eps", eps, defaults.eps);
  real("theta", theta, defaults.theta);
  real("exponent", exponent, defaults.exponent);
  real("scale", scale, defaults.scale);
  real("value", value, defaults.value);
  real("p", p, defaults.p);
  integer("groups", groups, defaults.groups);
  integer("num_heads", num_heads, defaults.num_heads);
  integer("num_kv_heads", num_kv_heads, defaults.num_kv_heads);
  integer("ignore_index", ignore_index, defaults.ignore_index);
  if (dtype != defaults.dtype) parts.push_back(std::string("dtype=") + dtype_name(dtype));
  if (!ints.empty()) parts.push_back("ints=" + format_shape(ints));
  if (!label.empty()) parts.push_back("label=\"" + label + "\"");
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += ' ';
    out += parts[i];
  }
  return out;
}

}  // namespace meganeura
