#!/bin/sh
# npm run test:asan [-- test files…]
# Builds the addon with AddressSanitizer and UndefinedBehaviorSanitizer in a
# copy of the project (build/ is left alone), then runs the core safety tests
# against it, child processes included (they inherit LD_PRELOAD). Node itself
# is not instrumented, so the ASan runtime is preloaded. Reports go to files;
# the script fails if any was written or a test failed.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/memmap-asan-XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -R "$root/native" "$root/scripts" "$root/src" "$root/test" "$root/binding.gyp" "$root/package.json" "$root"/tsconfig*.json "$work/"
ln -s "$root/node_modules" "$work/node_modules"
chmod -R a+rX "$work"
cd "$work"
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -g"
CFLAGS="$flags" LDFLAGS="$flags" npm run install >build.log 2>&1 || { cat build.log; exit 1; }
mkdir -p reports && chmod 777 reports
asan=$(gcc -print-file-name=libasan.so)
[ $# -gt 0 ] || set -- test/core-*.test.ts
# handle_sigbus=0 and allow_user_segv_handler=1: the addon's SIGBUS guard must
# stay the handler, as it is in production; leaks are Node's own, by design.
status=0
# MEMMAP_ASAN=1 skips the two tests that need mlock(), which ASan turns into a no-op.
MEMMAP_ASAN=1 LD_PRELOAD="$asan" \
ASAN_OPTIONS="detect_leaks=0:handle_sigbus=0:allow_user_segv_handler=1:verify_asan_link_order=0:log_path=$work/reports/asan" \
UBSAN_OPTIONS="print_stacktrace=1:log_path=$work/reports/ubsan" \
  node --import tsx --test --test-reporter=dot "$@" || status=$?
if ls reports/* >/dev/null 2>&1; then
  echo "sanitizer reports:"; cat reports/*; exit 1
fi
[ "$status" -eq 0 ] && echo "ASan/UBSan: clean ($*)"
exit "$status"
