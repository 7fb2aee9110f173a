'use strict';
'require view';
'require form';
'require uci';
'require ui';
'require meshpost';

// Settings: /etc/config/meshpost as a form (main options, peers, channels,
// federation peers). Fields carry LuCI datatypes for quick hints; before
// anything is saved, the whole candidate config goes to the daemon's own
// checker (ubus meshpost check_config, the rules `meshpost daemon` loads
// with), so LuCI never saves what the daemon would refuse. Applying is
// rpcd's uci apply; procd's reload trigger then sends the daemon SIGHUP.
// Options the form does not show are kept as they are.

var HEX64 = /^[0-9a-fA-F]{64}$/;

function key(section_id, value) {
	if (value == null || value === '') return true;
	if (!HEX64.test(value)) return _('Expecting 64 hex digits (meshpost identity shows them)');
	if (/^0+$/.test(value)) return _('An all-zero key is not a key');
	return true;
}

function hostPort(section_id, value) {
	if (value == null || value === '') return true;
	return /^(\[[0-9a-fA-F:.]+\]|[^:\s\[\]]+):[0-9]{1,5}$/.test(value) ? true
		: _('Expecting host:port or [ipv6]:port');
}

return view.extend({
	load: function() {
		return uci.load('meshpost');
	},

	render: function() {
		var m, s, o;

		m = new form.Map('meshpost', _('meshpost settings'),
			_('Store-and-forward messaging over the mesh. Changes are checked by the daemon before they are saved and take effect on apply (the daemon re-reads its configuration; links and stored messages stay).'));

		s = m.section(form.NamedSection, 'main', 'meshpost', _('Node'));
		s.addremove = false;
		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.rmempty = false;
		o = s.option(form.Value, 'name', _('Name'), _('Shown to other nodes, up to 32 bytes.'));
		o.datatype = 'maxlength(32)';
		o = s.option(form.Value, 'domain', _('Domain'), _('This mesh community\'s domain (a-z 0-9 - .).'));
		o.datatype = 'maxlength(32)';
		o = s.option(form.Value, 'port', _('UDP port'));
		o.datatype = 'port';
		o.placeholder = '4849';
		o = s.option(form.DynamicList, 'interface', _('Discovery interfaces'), _('Interfaces to find neighbours on with mDNS, e.g. br-lan or bat0.'));
		o = s.option(form.Flag, 'accept_unknown', _('Accept unknown nodes'), _('Link with nodes that are not configured peers.'));
		o.default = '1';
		o = s.option(form.ListValue, 'log_level', _('Log level'));
		[ 'error', 'warning', 'notice', 'info', 'debug' ].forEach(function(l) { o.value(l); });
		o.default = 'info';
		o = s.option(form.Value, 'default_ttl', _('Message lifetime (s)'));
		o.datatype = 'range(60,2592000)';
		o.placeholder = '604800';
		o = s.option(form.Value, 'inbox_max', _('Inbox messages kept'));
		o.datatype = 'uinteger';
		o.placeholder = '1000';
		o = s.option(form.Value, 'file_max', _('Largest file sent (bytes)'));
		o.datatype = 'range(0,16777216)';
		o.placeholder = '1048576';
		o = s.option(form.Value, 'store_max_bytes', _('Store size (bytes)'));
		o.datatype = 'uinteger';
		o.placeholder = '8388608';
		o = s.option(form.Value, 'store_memory', _('Store kept in memory (bytes)'),
			_('Beyond this, queued messages are read back from the state directory when sent.'));
		o.datatype = 'range(0,1073741824)';
		o.placeholder = '524288';

		s = m.section(form.GridSection, 'peer', _('Peers'), _('Nodes to link to by address, beyond those found with mDNS.'));
		s.anonymous = true;
		s.addremove = true;
		o = s.option(form.Value, 'address', _('Address'));
		o.validate = hostPort;
		o.rmempty = false;
		o = s.option(form.Value, 'key', _('Public key'), _('Optional: the peer must prove this key.'));
		o.validate = key;

		s = m.section(form.GridSection, 'channel', _('Channels'), _('Channels joined at every start.'));
		s.anonymous = true;
		s.addremove = true;
		o = s.option(form.Value, 'name', _('Name'));
		o.datatype = 'maxlength(32)';
		o.rmempty = false;
		o = s.option(form.Value, 'key', _('Key'));
		o.password = true;
		o.rmempty = false;

		s = m.section(form.GridSection, 'federation', _('Federation'), _('Gateways of other communities\' meshes.'));
		s.anonymous = true;
		s.addremove = true;
		o = s.option(form.Value, 'domain', _('Domain'));
		o.rmempty = false;
		o = s.option(form.Value, 'address', _('Address'));
		o.validate = hostPort;
		o.rmempty = false;
		o = s.option(form.Value, 'key', _('Public key'));
		o.validate = key;
		o.rmempty = false;
		o = s.option(form.Flag, 'direct', _('Direct messages'));
		o.default = '1';
		o = s.option(form.DynamicList, 'channel', _('Channels that may cross'));

		this.map = m;
		return m.render();
	},

	handleSave: function(ev) {
		var m = this.map;
		return m.parse()
			.then(function() { return meshpost.checkConfig(uci.sections('meshpost')); })
			.then(function(res) {
				if (!res || res.ok !== true)
					throw new Error((res && res.error) || _('the daemon\'s check did not answer'));
				(res.warnings || []).forEach(function(w) { ui.addNotification(null, E('p', w), 'warning'); });
				return m.save(null, true);
			})
			.catch(function(err) {
				ui.addNotification(null, E('p', { 'id': 'meshpost-config-error' }, _('Not saved: %s').format(err.message)), 'error');
				throw err;
			});
	}
});
