// Parameter initialisation and the dropout hash: deterministic everywhere, no std:: distributions
// (whose output differs between standard libraries).
#include <cmath>
#include <sstream>

#include "meganeura/graph.h"

namespace meganeura {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Uniform in (0, 1): 53 random bits, never exactly 0 (Box-Muller takes a log).
double uniform01(uint64_t seed, uint64_t counter) {
  uint64_t bits = splitmix64(seed ^ splitmix64(counter)) >> 11;
  return (static_cast<double>(bits) + 0.5) / 9007199254740992.0;
}

double standard_normal(uint64_t seed, uint64_t index) {
  const double u1 = uniform01(seed, 2 * index);
  const double u2 = uniform01(seed, 2 * index + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

void fans(const Shape& shape, double& fan_in, double& fan_out) {
  if (shape.empty()) {
    fan_in = fan_out = 1;
    return;
  }
  if (shape.size() == 1) {
    fan_in = fan_out = static_cast<double>(shape[0]);
    return;
  }
  double receptive = 1;
  for (size_t i = 2; i < shape.size(); ++i) receptive *= static_cast<double>(shape[i]);
  fan_in = static_cast<double>(shape[1]) * receptive;
  fan_out = static_cast<double>(shape[0]) * receptive;
}

// lowbias32 (Chris Wellons' integer hash): good avalanche with two multiplies, and it is the same
// sequence of 32-bit operations in GLSL.
uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

}  // namespace

std::string Init::to_string() const {
  std::ostringstream out;
  switch (kind) {
    case Kind::zeros: return "zeros";
    case Kind::ones: return "ones";
    case Kind::normal: out << "normal(" << a << ", " << b << ")"; break;
    case Kind::uniform: out << "uniform(" << a << ", " << b << ")"; break;
    case Kind::xavier_uniform: out << "xavier(" << b << ")"; break;
    case Kind::kaiming_normal: out << "kaiming(" << a << ")"; break;
  }
  return out.str();
}

std::vector<float> initial_values(const Init& init, const Shape& shape, uint64_t seed) {
  const int64_t n = num_elements(shape);
  std::vector<float> out(static_cast<size_t>(n));
  double fan_in = 1, fan_out = 1;
  fans(shape, fan_in, fan_out);
  for (int64_t i = 0; i < n; ++i) {
    const auto idx = static_cast<uint64_t>(i);
    double v = 0;
    switch (init.kind) {
      case Init::Kind::zeros: v = 0; break;
      case Init::Kind::ones: v = 1; break;
      case Init::Kind::normal: v = init.a + init.b * standard_normal(seed, idx); break;
      case Init::Kind::uniform: v = init.a + (init.b - init.a) * uniform01(seed, idx); break;
      case Init::Kind::xavier_uniform: {
        const double bound = init.b * std::sqrt(6.0 / (fan_in + fan_out));
        v = -bound + 2 * bound * uniform01(seed, idx);
        break;
      }
      case Init::Kind::kaiming_normal: v = init.a / std::sqrt(fan_in) * standard_normal(seed, idx); break;
    }
    out[static_cast<size_t>(i)] = static_cast<float>(v);
  }
  return out;
}

uint64_t parameter_seed(uint64_t global_seed, const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a: stable across platforms, unlike std::hash
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ULL;
  return splitmix64(global_seed ^ h);
}

uint32_t dropout_hash(uint32_t seed, uint32_t step, uint32_t index) {
  return mix32(index ^ mix32(step ^ mix32(seed)));
}

uint32_t dropout_threshold(double p) {
  return static_cast<uint32_t>(std::llround(p * 16777216.0));
}

bool dropout_keep(uint32_t seed, uint32_t step, uint32_t index, double p) {
  return (dropout_hash(seed, step, index) >> 8) >= dropout_threshold(p);
}

}  // namespace meganeura
