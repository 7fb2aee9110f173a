# Stand-ins for OpenWrt's /lib/functions.sh (UCI) and /lib/functions/procd.sh,
# enough to run an init script's start_service, service_triggers and
# reload_service off the router. UCI files are read from $UCI_CONFIG_DIR;
# every procd call is appended to $PROCD_RECORD as one line.

# config_load NAME: turns the UCI file into CONFIG_<section>_<option> vars.
config_load() {
	eval "$(awk -v q="'" '
		function unq(s) { gsub(/^[\047"]|[\047"]$/, "", s); return s }
		/^[ \t]*#/ || NF == 0 { next }
		$1 == "config" { n++; sec = (NF >= 3) ? unq($3) : "cfg" n; print "CONFIG_SECTIONS=\"${CONFIG_SECTIONS-} " sec "\""; next }
		$1 == "option" { v = $0; sub(/^[ \t]*option[ \t]+[^ \t]+[ \t]+/, "", v); print "CONFIG_" sec "_" $2 "=" q unq(v) q; next }
		$1 == "list" { v = $0; sub(/^[ \t]*list[ \t]+[^ \t]+[ \t]+/, "", v); print "CONFIG_" sec "_" $2 "_ITEMS=\"${CONFIG_" sec "_" $2 "_ITEMS-} " unq(v) "\""; next }
	' "$UCI_CONFIG_DIR/$1")"
}
config_get() { # config_get VAR SECTION OPTION [DEFAULT]
	eval "_v=\${CONFIG_$2_$3-}"
	[ -n "$_v" ] || _v=${4-}
	eval "$1=\$_v"
}
config_get_bool() {
	config_get "$@"
	eval "_b=\$$1"
	case "$_b" in 1|on|true|yes|enabled) _b=1 ;; 0|off|false|no|disabled) _b=0 ;; *) _b=${4:-0} ;; esac
	eval "$1=\$_b"
}
config_list_foreach() { # config_list_foreach SECTION OPTION FUNCTION
	eval "_items=\${CONFIG_$1_$2_ITEMS-}"
	for _i in $_items; do "$3" "$_i"; done
}

procd_open_instance() { echo "open_instance $*" >> "$PROCD_RECORD"; }
procd_set_param() { echo "set_param $*" >> "$PROCD_RECORD"; }
procd_close_instance() { echo "close_instance" >> "$PROCD_RECORD"; }
procd_add_reload_trigger() { echo "reload_trigger $*" >> "$PROCD_RECORD"; }
procd_add_interface_trigger() { echo "interface_trigger $*" >> "$PROCD_RECORD"; }
procd_send_signal() { echo "send_signal $*" >> "$PROCD_RECORD"; }
