#!/bin/sh
# Unpacks a freshly built .ipk the way opkg-lede does and checks its layout,
# control fields, file list, modes and maintainer scripts.
#
# Follows opkg-lede libbb/unarchive.c, deb_extract(): the package file is
# gunzipped (gzip_exec on the whole file), read as a tar, and the member
# named control.tar.gz or data.tar.gz (with or without a leading "./") is
# gunzipped and read as a tar in turn. The outer layout is the one OpenWrt's
# scripts/ipkg-build writes: ./debian-binary, ./data.tar.gz, ./control.tar.gz,
# and Installed-Size is the size of the uncompressed data tar.
# (Checked by hand on 2026-11-27 with opkg-lede built from source: install,
# upgrade with a modified conffile kept and -opkg written, remove.)
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
bin=$top/target/x86_64-unknown-linux-musl/release/meshpost
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$top/scripts/mkipk" x86_64 "$bin" "$out" >/dev/null
ipk=$(ls "$out"/meshpost_*_x86_64.ipk)
check "ipk is named meshpost_VERSION-RELEASE_ARCH.ipk" test -f "$ipk"
check_eq "the package is gzip data (opkg gunzips the whole file first)" "$(od -An -tx1 -N2 "$ipk" | tr -d ' ')" "1f8b"
check "the outer gzip is intact" gzip -t "$ipk"
check_eq "outer tar holds the three members in ipkg-build's order" "$(gzip -dc "$ipk" | tar -tf - | tr '\n' ' ')" "./debian-binary ./data.tar.gz ./control.tar.gz "
# member NAME: the bytes of one member of the outer tar, as deb_extract finds it.
member() { gzip -dc "$ipk" | tar -xOf - "./$1"; }
check_eq "debian-binary says 2.0" "$(member debian-binary)" "2.0"
check "control.tar.gz is gzip" sh -c "gzip -dc '$ipk' | tar -xOf - ./control.tar.gz | gzip -t"
check "data.tar.gz is gzip" sh -c "gzip -dc '$ipk' | tar -xOf - ./data.tar.gz | gzip -t"

mkdir -p "$out/c" "$out/d"
member control.tar.gz | tar -xzf - -C "$out/c"
member data.tar.gz | tar -xzf - -C "$out/d"
control=$(cat "$out/c/control")
field() { printf '%s\n' "$control" | sed -n "s/^$1: //p"; }
check_eq "Package" "$(field Package)" "meshpost"
check_contains "Version is VERSION-RELEASE" "$(field Version)" "-1"
check_eq "Architecture uses the OpenWrt name" "$(field Architecture)" "x86_64"
check_eq "Depends" "$(field Depends)" "libc"
check_contains "Description" "$(field Description)" "Store-and-forward"
size=$(field Installed-Size)
check_eq "Installed-Size is the uncompressed data tar's size (as ipkg-build)" "$size" "$(member data.tar.gz | gzip -dc | wc -c)"
check_eq "conffiles lists the UCI file" "$(cat "$out/c/conffiles")" "/etc/config/meshpost"
check "postinst is executable" test -x "$out/c/postinst"
check "postinst enables the service the OpenWrt way" grep -q default_postinst "$out/c/postinst"
check "prerm is executable" test -x "$out/c/prerm"
check "prerm stops the service the OpenWrt way" grep -q default_prerm "$out/c/prerm"

files=$(member data.tar.gz | tar -tzf - | grep -v '/$' | sort | tr '\n' ' ')
check_eq "data file list" "$files" "./etc/config/meshpost ./etc/init.d/meshpost ./usr/bin/meshpost ./usr/libexec/rpcd/meshpost ./usr/share/rpcd/acl.d/meshpost.json "
mode() { member data.tar.gz | tar -tvzf - "./$1" | cut -c1-10; }
owner() { member data.tar.gz | tar --numeric-owner -tvzf - "./$1" | awk '{print $2}'; }
check_eq "binary is 0755" "$(mode usr/bin/meshpost)" "-rwxr-xr-x"
check_eq "init script is executable" "$(mode etc/init.d/meshpost)" "-rwxr-xr-x"
check_eq "rpcd plugin is executable" "$(mode usr/libexec/rpcd/meshpost)" "-rwxr-xr-x"
check_eq "config is 0644" "$(mode etc/config/meshpost)" "-rw-r--r--"
check_eq "files belong to root" "$(owner usr/bin/meshpost)" "0/0"
check_contains "binary is static" "$(file -b "$out/d/usr/bin/meshpost")" "static"
check "packaged config is the shipped example" cmp -s "$out/d/etc/config/meshpost" "$top/config/meshpost.example"
check "ACL file is valid JSON" python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$out/d/usr/share/rpcd/acl.d/meshpost.json"

# Reproducible: the same inputs give the same bytes.
"$top/scripts/mkipk" x86_64 "$bin" "$out/again" >/dev/null
check "a second build is byte-identical" cmp -s "$ipk" "$(ls "$out"/again/meshpost_*.ipk)"

# The collector subpackage, as the exporter's own optional collectors are
# packaged (openwrt/packages utils/prometheus-node-exporter-lua/Makefile:
# PKGARCH all, depends on the exporter).
pipk=$(ls "$out"/prometheus-node-exporter-lua-meshpost_*_all.ipk)
check "collector ipk is named prometheus-node-exporter-lua-meshpost_VERSION-RELEASE_all.ipk" test -f "$pipk"
check_eq "collector outer tar in ipkg-build's order" "$(gzip -dc "$pipk" | tar -tf - | tr '\n' ' ')" "./debian-binary ./data.tar.gz ./control.tar.gz "
pcontrol=$(gzip -dc "$pipk" | tar -xOf - ./control.tar.gz | tar -xzOf - ./control)
pfield() { printf '%s\n' "$pcontrol" | sed -n "s/^$1: //p"; }
check_eq "collector Package" "$(pfield Package)" "prometheus-node-exporter-lua-meshpost"
check_eq "collector Architecture" "$(pfield Architecture)" "all"
check_eq "collector Depends" "$(pfield Depends)" "prometheus-node-exporter-lua, meshpost"
check_eq "collector Installed-Size" "$(pfield Installed-Size)" "$(gzip -dc "$pipk" | tar -xOf - ./data.tar.gz | gzip -dc | wc -c)"
check_eq "collector data file list" "$(gzip -dc "$pipk" | tar -xOf - ./data.tar.gz | tar -tzf - | grep -v '/$' | tr '\n' ' ')" "./usr/lib/lua/prometheus-collectors/meshpost.lua "
check "collector is the shipped file" sh -c "gzip -dc '$pipk' | tar -xOf - ./data.tar.gz | tar -xzOf - ./usr/lib/lua/prometheus-collectors/meshpost.lua | cmp -s - '$top/packaging/openwrt/files/meshpost.prometheus.lua'"
check "collector build is byte-identical too" cmp -s "$pipk" "$(ls "$out"/again/prometheus-*.ipk)"
finish
