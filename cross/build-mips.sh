#!/usr/bin/env bash
# Builds meshpost for a tier-3 MIPS router target with nightly -Z build-std,
# following ../shared/design/TOOLCHAIN.md. Safe to run again: each step is
# skipped when its result exists. Usage: cross/build-mips.sh [mipsel|mips]
#
# Steps: Debian packages (cross gcc, dpkg-dev) -> Debian's musl source ->
# a musl sysroot for the target (soft-float, mips32r2) -> libunwind.a from
# Debian's libgcc_eh.a plus a _dl_find_object stub -> cargo +nightly.
set -euo pipefail
arch=${1:-mipsel}
case "$arch" in
  mipsel) triple=mipsel-unknown-linux-musl; gnu=mipsel-linux-gnu ;;
  mips)   triple=mips-unknown-linux-musl;   gnu=mips-linux-gnu ;;
  *) echo "usage: $0 [mipsel|mips]" >&2; exit 2 ;;
esac
top=$(cd "$(dirname "$0")/.." && pwd)
work=$top/target/cross-$arch
sysroot=$work/sysroot
mkdir -p "$work"
say() { echo "cross/build-mips.sh [$arch]: $*"; }

# 1. Debian packages.
if ! command -v "$gnu-gcc" >/dev/null || ! command -v dpkg-source >/dev/null; then
  say "installing gcc-$gnu and dpkg-dev"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "gcc-$gnu" dpkg-dev >/dev/null
fi

# 2. Debian's musl source (deb-src for the configured Debian mirror).
if ! ls -d "$work"/musl-*/ >/dev/null 2>&1; then
  src=/etc/apt/sources.list.d/meshpost-deb-src.sources
  if [ ! -f "$src" ]; then
    say "adding a deb-src entry for Debian's sources"
    sed -e 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$src"
    apt-get update -qq
  fi
  (cd "$work" && apt-get source -qq musl >/dev/null)
fi
musl_src=$(ls -d "$work"/musl-*/ | head -n1)

# 3. A musl sysroot for the target.
if [ ! -x "$sysroot/bin/musl-gcc" ]; then
  say "building musl in $musl_src"
  (cd "$musl_src" && make distclean >/dev/null 2>&1 || true
   CROSS_COMPILE="$gnu-" CC="$gnu-gcc" CFLAGS="-msoft-float -march=mips32r2 -Os" \
     ./configure --prefix="$sysroot" --disable-shared --target="$gnu" >/dev/null
   make -j"$(nproc)" >/dev/null && make install >/dev/null)
fi

# 4. libunwind.a: Debian's libgcc_eh.a plus a stub for glibc's
#    _dl_find_object, which musl lacks. With panic=abort it is reached only
#    when a backtrace is captured.
unwind=$work/unwind
if [ ! -f "$unwind/libunwind.a" ]; then
  mkdir -p "$unwind"
  eh=$(ls /usr/lib/gcc-cross/"$gnu"/*/libgcc_eh.a | head -n1)
  cp "$eh" "$unwind/libunwind.a"
  printf 'int _dl_find_object(void *pc, void *result) { (void)pc; (void)result; return -1; }\n' > "$unwind/stub.c"
  "$gnu-gcc" -msoft-float -march=mips32r2 -Os -c "$unwind/stub.c" -o "$unwind/stub.o"
  ar rcs "$unwind/libunwind.a" "$unwind/stub.o"
fi

# 5. The nightly std build.
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
rustup component list --toolchain nightly --installed | grep -q rust-src || rustup component add rust-src --toolchain nightly
say "cargo +nightly build -Z build-std for $triple"
cd "$top"
env_triple=$(echo "$triple" | tr 'a-z-' 'A-Z_')
export "CARGO_TARGET_${env_triple}_LINKER=$sysroot/bin/musl-gcc"
# Flash (docs/size.md, 2026-12-06): the binary is a static, non-PIE
# executable, so its code need not be position-independent
# (relocation-model=static, -240 KB on mipsel) and nothing applies RELRO at
# run time (musl does that only in its dynamic linker, ldso/dynlink.c), so
# the RW segment need not start on a 64 KB page (-z norelro, -55 KB).
# panic=abort never unwinds: no unwind tables (-131 KB). panic=immediate-abort
# also drops std's panic messages and their formatting (-460 KB): a bug that
# panics on a MIPS router ends the process without a message, and procd
# restarts it (nothing acknowledged is lost, docs/storage.md). Set
# MIPS_PANIC_MESSAGES=1 to keep the messages, for a debugging build.
size_flags="-C relocation-model=static -C link-arg=-Wl,-z,norelro -C link-arg=-Wl,-z,common-page-size=16 -C force-unwind-tables=no"
if [ "${MIPS_PANIC_MESSAGES:-0}" != 1 ]; then
  size_flags="$size_flags -Zunstable-options -C panic=immediate-abort"
fi
export "CARGO_TARGET_${env_triple}_RUSTFLAGS=-C target-feature=+crt-static -C link-self-contained=no -L native=$unwind $size_flags"
# std's optimize_for_size: smaller sorts (heapsort, a plain merge sort)
# and formatting code, -53 KB.
cargo +nightly build --release -p meshpost --target "$triple" -Z build-std=std,panic_abort \
  -Z build-std-features=optimize_for_size
bin=target/$triple/release/meshpost
"$gnu-strip" "$bin" 2>/dev/null || true
say "built $bin"
file "$bin"
