#!/usr/bin/env bash
# Meganeura's one entry point.
#   ./run.sh test            install missing Debian packages, configure, build, run every test
#   ./run.sh mnist [ARGS]    same set-up, then train the quick-start MLP (ARGS go to the example)
#   ./run.sh bench [NAMES]   same set-up, then run benchmark workloads (all when none are named)
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  cmake ninja-build g++ pkg-config ccache python3
  libvulkan-dev mesa-vulkan-drivers vulkan-validationlayers
  libshaderc-dev glslang-dev spirv-tools
  nlohmann-json3-dev libcurl4-openssl-dev zlib1g-dev libpcre2-dev libcli11-dev
  libpng-dev libjpeg-dev libopenmpi-dev openmpi-bin
  libgtest-dev libbenchmark-dev clang libclang-rt-14-dev protobuf-compiler
  dataset-fashion-mnist
)

install_missing_packages() {
  local missing=()
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "Installing missing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
  install_missing_packages
  # Cache keys relative to the checkout, so every clone of the project shares compiled objects.
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
  cmake --build build -j "$(nproc)"
}

command="${1:-}"
shift || true
case "$command" in
  test)
    build
    ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 900
    ;;
  mnist)
    build
    exec build/bin/mnist "$@"
    ;;
  bench)
    build
    exec python3 bench/run.py --bin build/bin "$@"
    ;;
  *)
    echo "usage: ./run.sh test | mnist [ARGS] | bench [WORKLOADS]" >&2
    exit 2
    ;;
esac
