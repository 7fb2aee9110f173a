#!/bin/sh
# Sends the rpcd plugin's `list` and `call` through the real plugin script
# against two running daemons on loopback, and checks the JSON.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
bin=${MESHPOST_BIN:-$top/target/x86_64-unknown-linux-musl/release/meshpost}
plugin=$top/packaging/openwrt/files/meshpost.rpcd
work=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json() { python3 -c "import json,sys; v=json.load(sys.stdin); print($1)"; }
pa=$(port); pb=$(port)
"$bin" identity --state-dir "$work/b" > /dev/null
bkey=$("$bin" --json identity --state-dir "$work/b" | json 'v["public_key"]')
cat > "$work/a.conf" <<CONF
config meshpost 'main'
	option name 'alpha'
	option port '$pa'
	option state_dir '$work/a'
	option socket '$work/a.sock'
config peer
	option address '127.0.0.1:$pb'
	option key '$bkey'
CONF
cat > "$work/b.conf" <<CONF
config meshpost 'main'
	option name 'beta'
	option port '$pb'
	option state_dir '$work/b'
	option socket '$work/b.sock'
config peer
	option address '127.0.0.1:$pa'
CONF
"$bin" daemon --foreground --config "$work/a.conf" 2> "$work/a.log" & pids="$pids $!"
"$bin" daemon --foreground --config "$work/b.conf" 2> "$work/b.log" & pids="$pids $!"

rpc() { # rpc SOCKET ARGS... (stdin: call arguments)
	sock=$1; shift
	MESHPOST_BIN=$bin MESHPOST_SOCKET=$sock sh "$plugin" "$@"
}
# wait_for SOCKET METHOD ARGS EXPR: polls (up to 10 s) until EXPR of the
# answer prints 1.
wait_for() {
	i=0
	until echo "$3" | rpc "$1" call "$2" 2>/dev/null | json "$4" 2>/dev/null | grep -qx 1; do
		i=$((i + 1)); [ $i -lt 100 ] || break; sleep 0.1
	done
}
wait_for "$work/b.sock" peers '{}' 'len(v["links"])'

list=$(rpc "$work/a.sock" list)
check_eq "list names the methods" "$(echo "$list" | json '",".join(sorted(v))')" "block,channel_create,channel_history,channel_join,channel_leave,channel_list,check_config,contact_add,contact_list,contact_remove,federation,graph,identity,inbox,inbox_delete,outbox,peers,publish,reload,routes,send,status,store,unblock,verify"
acl="$here/../../packaging/openwrt/files/meshpost.acl.json"
check_eq "every method is in exactly one ACL group" "$(echo "$list" | python3 -c '
import json, sys
methods = set(json.load(sys.stdin))
acl = json.load(open(sys.argv[1]))["meshpost"]
read, write = set(acl["read"]["ubus"]["meshpost"]), set(acl["write"]["ubus"]["meshpost"])
print(sorted(methods ^ (read | write)), sorted(read & write))' "$acl")" "[] []"
check_eq "list gives argument types" "$(echo "$list" | json 'v["send"]["to"] == "" and v["send"]["ttl"] == 0')" "True"

status=$(echo '{}' | rpc "$work/a.sock" call status)
check_eq "call status answers ok" "$(echo "$status" | json 'v["ok"]')" "True"
check_eq "call status names the node" "$(echo "$status" | json 'v["name"]')" "alpha"
check_eq "call status with no stdin works too" "$(rpc "$work/a.sock" call status < /dev/null | json 'v["ok"]')" "True"

sent=$(echo '{"to": "beta", "text": "hello via ubus"}' | rpc "$work/a.sock" call send)
check_eq "call send queues the message" "$(echo "$sent" | json 'v["ok"]')" "True"
wait_for "$work/b.sock" inbox '{}' 'len(v["messages"])'
inbox=$(echo '{}' | rpc "$work/b.sock" call inbox)
check_eq "call inbox on B shows the text" "$(echo "$inbox" | json 'v["messages"][0]["text"]')" "hello via ubus"
id=$(echo "$inbox" | json 'v["messages"][0]["id"]')
read=$(printf '{"action": "read", "id": "%s"}' "$id" | rpc "$work/b.sock" call inbox)
check_eq "call inbox read" "$(echo "$read" | json 'v["message"]["read"]')" "True"
# The read method cannot delete (the ACL grants it to read-only users).
nodel=$(printf '{"action": "delete", "id": "%s"}' "$id" | rpc "$work/b.sock" call inbox)
check_eq "call inbox refuses to delete" "$(echo "$nodel" | json 'v["ok"] is False and "inbox_delete" in v["error"]')" "True"
check_eq "so the message is still there" "$(echo '{}' | rpc "$work/b.sock" call inbox | json 'len(v["messages"])')" "1"
acl=$top/packaging/openwrt/files/meshpost.acl.json
check_eq "the ACL grants inbox to readers and inbox_delete only to writers" \
	"$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["meshpost"]; r=a["read"]["ubus"]["meshpost"]; w=a["write"]["ubus"]["meshpost"]; print("inbox" in r, "inbox_delete" in r, "inbox_delete" in w, "inbox" in w)' "$acl")" \
	"True False True False"
del=$(printf '{"id": "%s"}' "$id" | rpc "$work/b.sock" call inbox_delete)
check_eq "call inbox_delete deletes" "$(echo "$del" | json 'v["deleted"]')" "$id"
routes=$(echo '{}' | rpc "$work/a.sock" call routes)
check_eq "call routes lists B" "$(echo "$routes" | json 'v["routes"][0]["name"]')" "beta"

# Channels: create on A, join on B through the socket, publish via ubus.
key=$(MESHPOST_SOCKET=$work/a.sock "$bin" --json channel create notfall | json 'v["key"]')
MESHPOST_SOCKET=$work/b.sock "$bin" channel join notfall "$key" > /dev/null
chans=$(echo '{}' | rpc "$work/b.sock" call channel_list)
check_eq "call channel_list shows the joined channel" "$(echo "$chans" | json 'v["channels"][0]["name"]')" "notfall"
pub=$(echo '{"channel": "notfall", "text": "Deich bricht"}' | rpc "$work/a.sock" call publish)
check_eq "call publish" "$(echo "$pub" | json 'v["ok"]')" "True"
wait_for "$work/b.sock" channel_history '{"name": "notfall"}' 'len(v["messages"])'
hist=$(echo '{"name": "notfall"}' | rpc "$work/b.sock" call channel_history)
check_eq "call channel_history on B shows it" "$(echo "$hist" | json 'v["messages"][0]["text"]')" "Deich bricht"

bad=$(echo '{"to": "nobody", "text": "x"}' | rpc "$work/a.sock" call send)
check_eq "errors come back as JSON" "$(echo "$bad" | json 'v["ok"] is False and "nobody" in v["error"]')" "True"
check_eq "unknown methods are JSON errors" "$(echo '{}' | rpc "$work/a.sock" call frob | json 'v["ok"]')" "False"
check_eq "a dead socket is a JSON error" "$(echo '{}' | rpc "$work/none.sock" call status | json 'v["ok"]')" "False"
finish
