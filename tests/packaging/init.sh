#!/bin/sh
# Runs the procd init script against a sample /etc/config/meshpost with shims
# for procd and UCI, and checks the instance, respawn and triggers it sets up.
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
run "$sample" start_service service_triggers reload_service
rec=$(cat "$work/record")
check_contains "opens a procd instance" "$rec" "open_instance meshpost"
check_contains "command line" "$rec" "set_param command /usr/bin/meshpost daemon --config /etc/config/meshpost"
check_contains "respawn: threshold 3600 s, 5 s timeout, 5 retries" "$rec" "set_param respawn 3600 5 5"
check_contains "stdout to logd" "$rec" "set_param stdout 1"
check_contains "stderr to logd" "$rec" "set_param stderr 1"
check_contains "closes the instance" "$rec" "close_instance"
check_contains "reload trigger on the meshpost config" "$rec" "reload_trigger meshpost"
check_contains "interface trigger for mesh0" "$rec" "interface_trigger interface.* mesh0 /etc/init.d/meshpost reload"
check_contains "interface trigger for bat0" "$rec" "interface_trigger interface.* bat0 /etc/init.d/meshpost reload"
check_contains "reload sends SIGHUP" "$rec" "send_signal meshpost meshpost HUP"

run "config meshpost 'main'
	option enabled '0'
" start_service
check_eq "enabled 0 starts nothing" "$(cat "$work/record")" ""
check_contains "and says why" "$(cat "$work/stderr")" "disabled"

run "config meshpost 'main'
	option port '4849'
" start_service
check_contains "enabled defaults to 1" "$(cat "$work/record")" "open_instance meshpost"

# The uci-defaults script sets the host name once, through uci(1).
mkdir -p "$work/bin"
cat > "$work/bin/uci" <<'UCI'
#!/bin/sh
echo "uci $*" >> "$UCI_LOG"
case "$*" in
  "-q get system.@system[0].hostname") echo "router-7" ;;
esac
exit 0
UCI
chmod +x "$work/bin/uci"
UCI_LOG=$work/uci.log PATH="$work/bin:$PATH" sh "$top/packaging/openwrt/files/meshpost.uci-defaults"
check_contains "uci-defaults names the node after the host" "$(cat "$work/uci.log")" "uci set meshpost.main.name=router-7"
check_contains "uci-defaults commits" "$(cat "$work/uci.log")" "uci commit meshpost"
finish
