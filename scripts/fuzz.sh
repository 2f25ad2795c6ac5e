#!/usr/bin/env bash
# Run the cargo-fuzz targets in fuzz/ for FUZZ_TIME seconds each (default 60).
#
#   scripts/fuzz.sh                 every target: request, access_token, permissions
#   scripts/fuzz.sh request         one target
#   FUZZ_TIME=600 scripts/fuzz.sh   longer runs
#
# cargo-fuzz needs nightly compiler flags. RUSTC_BOOTSTRAP=1 lets a stable toolchain accept
# them, so no nightly install is needed (a nightly toolchain works too). Targets are built
# with AddressSanitizer (-s address); if that build fails (no ASan runtime), they are built
# without a sanitizer (-s none). FUZZ_SANITIZER=none skips ASan from the start.
#
# New corpus entries go to fuzz/corpus/<target>/ (git-ignored); fuzz/seeds/<target>/ is the
# committed seed corpus. A crash is written to fuzz/artifacts/<target>/: copy it into
# fuzz/regressions/<target>/ and the integration tests (`tests/it/properties/fuzz.rs`) replay it on stable.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTC_BOOTSTRAP=1
time_per_target=${FUZZ_TIME:-60}
sanitizer=${FUZZ_SANITIZER:-address}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request access_token permissions)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz ..."
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

if ! cargo fuzz build -s "$sanitizer"; then
  [ "$sanitizer" = none ] && exit 1
  echo "fuzz build with -s $sanitizer failed; building without a sanitizer" >&2
  sanitizer=none
  cargo fuzz build -s none
fi

failed=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
  echo "=== fuzz $t: ${time_per_target}s, sanitizer $sanitizer"
  if ! cargo fuzz run -s "$sanitizer" "$t" "$PWD/fuzz/corpus/$t" "$PWD/fuzz/seeds/$t" -- \
      -max_total_time="$time_per_target" -max_len=4096 -timeout=10 \
      -dict="$PWD/fuzz/dict/$t.dict" -print_final_stats=1; then
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets that crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
