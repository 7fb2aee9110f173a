#!/bin/sh
# Runs the procd init script against a sample /etc/config/meshpost with shims
# for procd and UCI, and checks the instance, respawn and triggers it sets up.
# What the checks expect follows OpenWrt's package/base-files/files/etc/rc.common
# (procd reload() calls reload_service if the script defines one, else start)
# and package/system/procd/files/procd.sh (a bare `respawn` takes the system
# defaults in _procd_close_instance; `reload_signal`; interface triggers match
# netifd's logical interface names).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
init=$top/packaging/openwrt/files/meshpost.init

check_eq "init script runs under rc.common" "$(head -n1 "$init")" "#!/bin/sh /etc/rc.common"
check "USE_PROCD=1" grep -qx "USE_PROCD=1" "$init"

run() { # run CONFIG_TEXT FUNCTIONS... -> record in $work/record
	mkdir -p "$work/config"
	printf '%s' "$1" > "$work/config/meshpost"
	shift
	: > "$work/record"
	(
		UCI_CONFIG_DIR=$work/config PROCD_RECORD=$work/record
		. "$here/shims.sh"
		. "$init"
		for f in "$@"; do "$f"; done
	) 2> "$work/stderr"
}

sample="config meshpost 'main'
	option enabled '1'
	option port '4849'
	list interface 'mesh0'
	list interface 'bat0'
"
run "$sample" start_service service_triggers
rec=$(cat "$work/record")
check_contains "opens a procd instance" "$rec" "open_instance meshpost"
check_contains "command line" "$rec" "set_param command /usr/bin/meshpost daemon --config /etc/config/meshpost"
check_contains "respawn with the system's defaults (bare: procd.sh fills them in)" "$(grep 'set_param respawn' "$work/record")" "set_param respawn"
check_eq "no hard-coded respawn values" "$(grep -c 'set_param respawn [0-9]' "$work/record")" "0"
check_contains "reload is SIGHUP to the unchanged instance" "$rec" "set_param reload_signal HUP"
check "no reload_service of its own (rc.common then runs start: enabled 0 stops it)" sh -c "! grep -q '^reload_service' '$init'"
check_contains "stdout to logd" "$rec" "set_param stdout 1"
check_contains "stderr to logd" "$rec" "set_param stderr 1"
check_contains "closes the instance" "$rec" "close_instance"
check_contains "reload trigger on the meshpost config" "$rec" "reload_trigger meshpost"
check_eq "no interface triggers on device names (netifd events carry logical names; the daemon follows devices itself)" "$(grep -c interface_trigger "$work/record")" "0"

run "config meshpost 'main'
	option enabled '0'
" start_service
check_eq "enabled 0 starts nothing" "$(cat "$work/record")" ""
check_contains "and says why" "$(cat "$work/stderr")" "disabled"

run "config meshpost 'main'
	option port '4849'
" start_service
check_contains "enabled defaults to 1" "$(cat "$work/record")" "open_instance meshpost"

# No uci-defaults script: its `uci commit` would rewrite the shipped config
# without its comments. Node name and bat0 defaults live in the daemon.
check "no uci-defaults script is shipped" test ! -e "$top/packaging/openwrt/files/meshpost.uci-defaults"
check "the feed Makefile installs none" sh -c "! grep -q uci-defaults '$top/packaging/openwrt/Makefile'"
finish
