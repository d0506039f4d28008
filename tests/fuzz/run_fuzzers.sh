#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (AddressSanitizer + UBSan) in a folder of their own and
# runs each for a bounded time on its seed corpus. Fails on any finding.
#   run_fuzzers.sh SOURCE_DIR BUILD_DIR [SECONDS_PER_TARGET]
set -euo pipefail
src="$1"
out="$2"
seconds="${3:-20}"
cxx="${MEGANEURA_FUZZ_CXX:-clang++}"
mkdir -p "$out"

flags=(-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -fno-omit-frame-pointer -I"$src/include" -I"$src/src")

# Rebuilds a target only when one of its sources changed.
build() {
  local name="$1"; shift
  local binary="$out/$name" stale=0
  [ -x "$binary" ] || stale=1
  for file in "$@"; do
    case "$file" in -*) continue ;; esac
    [ "$file" -nt "$binary" ] && stale=1
  done
  if [ "$stale" = 1 ]; then
    echo "building $name"
    "$cxx" "${flags[@]}" "$@" -o "$binary.tmp"
    mv "$binary.tmp" "$binary"
  fi
}

io=("$src"/src/io/{safetensors_header,safetensors_file,mapped_file,dtype}.cpp)
build fuzz_safetensors "$src/tests/fuzz/fuzz_safetensors.cpp" "${io[@]}" "$src/src/common/error.cpp"
targets=(safetensors)
if [ -f "$src/src/data/idx_file.cpp" ]; then
  # The reader records trace scopes; the trace writer is self-contained.
  build fuzz_idx "$src/tests/fuzz/fuzz_idx.cpp" "$src/src/data/idx_file.cpp" "$src"/src/trace/*.cpp \
    "$src/src/common/error.cpp" -lz -pthread
  targets+=(idx)
fi

build fuzz_llama_config "$src/tests/fuzz/fuzz_llama_config.cpp" "$src/src/models/llama_config.cpp" \
  "$src/src/common/error.cpp"
targets+=(llama_config)

seeds="$out/seeds"
rm -rf "$seeds"
python3 "$src/tests/fuzz/make_seeds.py" "$seeds"
cp "$src"/tests/data/malformed/*.safetensors "$seeds/safetensors/"
mkdir -p "$seeds/llama_config"
for fixture in "$src"/tests/data/fixtures/smollm2-tiny*; do
  cp "$fixture/config.json" "$seeds/llama_config/$(basename "$fixture").json"
done

status=0
for target in "${targets[@]}"; do
  corpus="$out/corpus/$target"
  mkdir -p "$corpus" "$out/findings"
  echo "fuzzing $target for ${seconds}s"
  if ! ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
      "$out/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$out/findings/$target-" "$corpus" "$seeds/$target" \
      > "$out/$target.log" 2>&1; then
    echo "FINDING in fuzz_$target (inputs kept under $out/findings):"
    tail -n 60 "$out/$target.log"
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$out/$target.log" | sed "s/^/  $target: /"
  fi
done
exit "$status"
