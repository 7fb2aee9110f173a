# Tiny assertion helpers for the packaging tests; sourced, not run.
# Each test file ends with `finish`, which prints "N passed, M failed".
PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   - $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $1"; }
check() { # check DESCRIPTION COMMAND...
	desc=$1; shift
	if "$@" >/dev/null 2>&1; then ok "$desc"; else bad "$desc"; fi
}
check_eq() { # check_eq DESCRIPTION ACTUAL EXPECTED
	if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', want '$3'"; fi
}
check_contains() { # check_contains DESCRIPTION HAYSTACK NEEDLE
	case "$2" in *"$3"*) ok "$1" ;; *) bad "$1: '$3' not in: $2" ;; esac
}
finish() {
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}
