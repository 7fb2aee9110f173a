'use strict';
'require view';
'require poll';
'require dom';
'require meshpost';

// Status: this node, the mesh as a picture, links, store, channels and
// federation, refreshed every 5 seconds. Read-only: it changes nothing.

function table(headers, rows, empty) {
	var t = E('table', { 'class': 'table' }, [
		E('tr', { 'class': 'tr table-titles' }, headers.map(function(h) { return E('th', { 'class': 'th' }, h); }))
	]);
	rows.forEach(function(r) {
		t.appendChild(E('tr', { 'class': 'tr' }, r.map(function(c) { return E('td', { 'class': 'td' }, c); })));
	});
	if (!rows.length)
		t.appendChild(E('tr', { 'class': 'tr placeholder' }, [ E('td', { 'class': 'td' }, empty) ]));
	return t;
}

return view.extend({
	load: function() {
		return Promise.all([
			L.resolveDefault(meshpost.status(), {}),
			L.resolveDefault(meshpost.peers(), {}),
			L.resolveDefault(meshpost.graph(), {}),
			L.resolveDefault(meshpost.store(), {}),
			L.resolveDefault(meshpost.channels(), {}),
			L.resolveDefault(meshpost.federation(), {})
		]);
	},

	renderAll: function(data) {
		var st = data[0] || {}, peers = data[1] || {}, graph = data[2] || {},
		    store = data[3] || {}, chans = data[4] || {}, fed = data[5] || {};

		if (st.ok !== true)
			return E('div', { 'class': 'alert-message warning', 'id': 'meshpost-down' }, [
				E('p', _('The meshpost daemon does not answer: %s').format(st.error || _('not running?'))),
				E('p', _('Start it with: service meshpost start'))
			]);

		var inbox = st.inbox || {}, msgs = st.messages || {};
		var node = table([ _('Property'), _('Value') ], [
			[ _('Name'), st.name || '-' ],
			[ _('Node id'), E('code', {}, st.node_id) ],
			[ _('Version'), st.version ],
			[ _('Uptime'), '%ds'.format(st.uptime || 0) ],
			[ _('Links / known nodes / routes'), '%d / %d / %d'.format(st.links || 0, st.known_nodes || 0, st.routes || 0) ],
			[ _('Inbox'), _('%d messages, %d unread%s').format(inbox.messages || 0, inbox.unread || 0, inbox.full ? _(' (full)') : '') ],
			[ _('Messages delivered / sent / relayed'), '%d / %d / %d'.format(msgs.delivered || 0, msgs.sent || 0, msgs.relayed || 0) ]
		], '');

		var links = table([ _('Node'), _('Address'), _('State'), _('Up'), _('Last heard') ],
			(peers.links || []).map(function(l) {
				return [ meshpost.who(l.node, l.name), l.address, l.state, '%ds'.format(l.up_secs || 0), '%ds'.format(l.last_rx_secs || 0) ];
			}), _('No links yet: configure a peer or an mDNS interface in Settings.'));

		var storeT = table([ _('Envelopes'), _('Bytes'), _('Limit') ], [[
			'%d / %d'.format(store.envelopes || 0, store.max_count || 0),
			meshpost.bytes(store.bytes), meshpost.bytes(store.max_bytes)
		]], '');

		var chanT = table([ _('Channel'), _('Source'), _('History') ],
			(chans.channels || []).map(function(c) { return [ c.name, c.source, c.history ]; }),
			_('No channels joined.'));

		var fedT = table([ _('Domain'), _('Address'), _('State') ],
			(fed.federation || []).map(function(f) { return [ f.domain, f.address, f.state || (f.linked ? _('up') : _('down')) ]; }),
			_('No federation peers.'));

		return E('div', { 'id': 'meshpost-status' }, [
			E('div', { 'class': 'cbi-section' }, [ E('h3', _('Node')), node ]),
			E('div', { 'class': 'cbi-section' }, [
				E('h3', _('Mesh')),
				E('p', { 'class': 'cbi-section-descr' }, _('This node in blue, the nodes it knows by hops from here; grey: known but not reachable.')),
				E('div', { 'id': 'meshpost-graph' }, [ meshpost.drawGraph(graph) ])
			]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', _('Links')), links ]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', _('Store')), storeT ]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', _('Channels')), chanT ]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', _('Federation')), fedT ])
		]);
	},

	render: function(data) {
		var box = E('div', {}, [ this.renderAll(data) ]);
		poll.add(L.bind(function() {
			return this.load().then(L.bind(function(d) { dom.content(box, this.renderAll(d)); }, this));
		}, this), 5);
		return E('div', {}, [ E('h2', _('meshpost')), box ]);
	},

	handleSave: null,
	handleSaveApply: null,
	handleReset: null
});
