#!/bin/sh
# Unpacks a freshly built .ipk with ar and tar and checks its layout, control
# fields, file list, modes and maintainer scripts.
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
check_eq "outer archive is ar with the three members in order" "$(ar t "$ipk" | tr '\n' ' ')" "debian-binary control.tar.gz data.tar.gz "
check_eq "debian-binary says 2.0" "$(ar p "$ipk" debian-binary)" "2.0"

mkdir -p "$out/c" "$out/d"
ar p "$ipk" control.tar.gz | tar -xzf - -C "$out/c"
ar p "$ipk" data.tar.gz | tar -xzf - -C "$out/d"
control=$(cat "$out/c/control")
field() { printf '%s\n' "$control" | sed -n "s/^$1: //p"; }
check_eq "Package" "$(field Package)" "meshpost"
check_contains "Version is VERSION-RELEASE" "$(field Version)" "-1"
check_eq "Architecture uses the OpenWrt name" "$(field Architecture)" "x86_64"
check_eq "Depends" "$(field Depends)" "libc"
check_contains "Description" "$(field Description)" "Store-and-forward"
size=$(field Installed-Size)
check_eq "Installed-Size is the unpacked data size" "$size" "$(du -sb "$out/d" | cut -f1)"
check_eq "conffiles lists the UCI file" "$(cat "$out/c/conffiles")" "/etc/config/meshpost"
check "postinst is executable" test -x "$out/c/postinst"
check "postinst enables the service the OpenWrt way" grep -q default_postinst "$out/c/postinst"
check "prerm is executable" test -x "$out/c/prerm"
check "prerm stops the service the OpenWrt way" grep -q default_prerm "$out/c/prerm"

files=$(ar p "$ipk" data.tar.gz | tar -tzf - | grep -v '/$' | sort | tr '\n' ' ')
check_eq "data file list" "$files" "./etc/config/meshpost ./etc/init.d/meshpost ./etc/uci-defaults/90-meshpost ./usr/bin/meshpost ./usr/libexec/rpcd/meshpost ./usr/share/rpcd/acl.d/meshpost.json "
mode() { ar p "$ipk" data.tar.gz | tar -tvzf - "./$1" | cut -c1-10; }
owner() { ar p "$ipk" data.tar.gz | tar --numeric-owner -tvzf - "./$1" | awk '{print $2}'; }
check_eq "binary is 0755" "$(mode usr/bin/meshpost)" "-rwxr-xr-x"
check_eq "init script is executable" "$(mode etc/init.d/meshpost)" "-rwxr-xr-x"
check_eq "uci-defaults script is executable" "$(mode etc/uci-defaults/90-meshpost)" "-rwxr-xr-x"
check_eq "rpcd plugin is executable" "$(mode usr/libexec/rpcd/meshpost)" "-rwxr-xr-x"
check_eq "config is 0644" "$(mode etc/config/meshpost)" "-rw-r--r--"
check_eq "files belong to root" "$(owner usr/bin/meshpost)" "0/0"
check_contains "binary is static" "$(file -b "$out/d/usr/bin/meshpost")" "static"
check "packaged config is the shipped example" cmp -s "$out/d/etc/config/meshpost" "$top/config/meshpost.example"
check "ACL file is valid JSON" python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$out/d/usr/share/rpcd/acl.d/meshpost.json"

# Reproducible: the same inputs give the same bytes.
"$top/scripts/mkipk" x86_64 "$bin" "$out/again" >/dev/null
check "a second build is byte-identical" cmp -s "$ipk" "$(ls "$out"/again/*.ipk)"
finish
