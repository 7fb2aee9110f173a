#!/bin/sh
# Runs a cross build under qemu-user: two daemons of that architecture on
# loopback exchange a message, driven by that architecture's CLI (the rpcd
# test's scenario, with every meshpost process emulated).
# usage: qemu.sh aarch64|mipsel
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
case "${1:-}" in
  aarch64) triple=aarch64-unknown-linux-musl; qemu=qemu-aarch64-static; kind="ARM aarch64" ;;
  mipsel)  triple=mipsel-unknown-linux-musl;  qemu=qemu-mipsel-static;  kind="MIPS, MIPS32" ;;
  *) echo "usage: $0 aarch64|mipsel" >&2; exit 2 ;;
esac
bin=$top/target/$triple/release/meshpost
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
check_contains "$1 binary is $kind" "$(file -b "$bin")" "$kind"
check_contains "$1 binary is statically linked" "$(file -b "$bin")" "statically linked"
printf '#!/bin/sh\nexec %s %s "$@"\n' "$qemu" "$bin" > "$work/meshpost"
chmod +x "$work/meshpost"
check_contains "runs under $qemu" "$("$work/meshpost" --version)" "meshpost "
finish
rc=$?
echo "two $1 daemons under $qemu:"
MESHPOST_BIN=$work/meshpost sh "$here/rpcd.sh" || rc=1
exit $rc
