'use strict';
'require view';
'require ui';
'require poll';
'require dom';
'require meshpost';

// Messages: a send form, the inbox (read, delete) and what became of sent
// messages. Files are listed but not downloaded here (use `meshpost inbox
// save` on the router): a browser upload or download of up to 16 MiB
// through rpcd's exec plugin is not what it is made for.

var STATE_TEXT = {
	queued: _('queued: waiting for a path'),
	forwarded: _('handed to a relay'),
	delivered: _('delivered'),
	expired: _('expired undelivered'),
	refused: _('refused by the recipient')
};

return view.extend({
	load: function() {
		return Promise.all([
			L.resolveDefault(meshpost.inbox('list', null, 0, 50), {}),
			L.resolveDefault(meshpost.outbox(null, 0, 50), {}),
			L.resolveDefault(meshpost.contacts(), {}),
			L.resolveDefault(meshpost.routes(), {})
		]);
	},

	handleSend: function(ev) {
		var to = document.getElementById('meshpost-to').value.trim(),
		    text = document.getElementById('meshpost-text').value;
		if (!to || !text.trim()) {
			ui.addNotification(null, E('p', _('Give a recipient and a message.')), 'warning');
			return Promise.resolve();
		}
		return meshpost.send(to, text).then(meshpost.checked).then(L.bind(function(res) {
			document.getElementById('meshpost-text').value = '';
			ui.addNotification(null, E('p', { 'id': 'meshpost-sent' }, _('Message %s is on its way.').format(meshpost.shortId(res.id))), 'info');
			return this.refresh();
		}, this)).catch(function(err) {
			ui.addNotification(null, E('p', { 'id': 'meshpost-send-error' }, _('Not sent: %s').format(err.message)), 'error');
		});
	},

	handleRead: function(id) {
		return meshpost.inbox('read', id).then(meshpost.checked).then(L.bind(function(res) {
			var m = res.message || {};
			ui.showModal(_('Message from %s').format(meshpost.who(m.from, m.from_name)), [
				E('pre', { 'class': 'meshpost-text' }, m.text != null ? m.text
					: _('A file, %s (%s): save it on the router with: meshpost inbox save %s').format(m.name || '', meshpost.bytes(m.size), id)),
				E('div', { 'class': 'right' }, [ E('button', { 'class': 'btn', 'click': ui.hideModal }, _('Close')) ])
			]);
			return this.refresh();
		}, this)).catch(function(err) { ui.addNotification(null, E('p', err.message), 'error'); });
	},

	handleDelete: function(id) {
		return meshpost.inboxDelete(id).then(meshpost.checked).then(L.bind(this.refresh, this))
			.catch(function(err) { ui.addNotification(null, E('p', err.message), 'error'); });
	},

	recipients: function(contacts, routes) {
		var seen = {}, list = E('datalist', { 'id': 'meshpost-recipients' });
		(contacts.contacts || []).concat(routes.routes || []).forEach(function(c) {
			var id = c.node || c.id, name = c.name || '';
			if (!id || seen[id]) return;
			seen[id] = true;
			list.appendChild(E('option', { 'value': id }, name ? '%s (%s)'.format(name, meshpost.shortId(id)) : id));
		});
		return list;
	},

	renderLists: function(data) {
		var inbox = data[0] || {}, outbox = data[1] || {};
		var inT = E('table', { 'class': 'table', 'id': 'meshpost-inbox' }, [
			E('tr', { 'class': 'tr table-titles' }, [
				E('th', { 'class': 'th' }, _('From')), E('th', { 'class': 'th' }, _('Received')),
				E('th', { 'class': 'th' }, _('Message')), E('th', { 'class': 'th' }, '')
			])
		]);
		(inbox.messages || []).forEach(L.bind(function(m) {
			var preview = (m.text || '').substring(0, 80);
			if (m.kind == 'file')
				preview = m.complete ? _('file %s (%s)').format(m.name || '', meshpost.bytes(m.size))
					: _('file %s: %d of %d parts arrived').format(m.name || '', m.have || 0, m.parts || 0);
			inT.appendChild(E('tr', { 'class': 'tr' + (m.read ? '' : ' meshpost-unread'), 'data-id': m.id }, [
				E('td', { 'class': 'td' }, meshpost.who(m.from, m.from_name) + (m.verified ? ' \u2713' : '')),
				E('td', { 'class': 'td' }, meshpost.ago(m.received)),
				E('td', { 'class': 'td' }, m.read ? preview : E('strong', {}, preview)),
				E('td', { 'class': 'td right' }, [
					E('button', { 'class': 'btn cbi-button', 'click': ui.createHandlerFn(this, 'handleRead', m.id) }, _('Read')), ' ',
					E('button', { 'class': 'btn cbi-button-remove', 'click': ui.createHandlerFn(this, 'handleDelete', m.id) }, _('Delete'))
				])
			]));
		}, this));
		if (!(inbox.messages || []).length)
			inT.appendChild(E('tr', { 'class': 'tr placeholder' }, [ E('td', { 'class': 'td' }, _('The inbox is empty.')) ]));

		var outT = E('table', { 'class': 'table', 'id': 'meshpost-outbox' }, [
			E('tr', { 'class': 'tr table-titles' }, [
				E('th', { 'class': 'th' }, _('To')), E('th', { 'class': 'th' }, _('State')), E('th', { 'class': 'th' }, _('Since'))
			])
		]);
		(outbox.messages || []).forEach(function(m) {
			var state = STATE_TEXT[m.state] || m.state;
			if (m.reason) state += ': ' + m.reason;
			outT.appendChild(E('tr', { 'class': 'tr', 'data-id': m.id, 'data-state': m.state }, [
				E('td', { 'class': 'td' }, meshpost.who(m.to, m.to_name)),
				E('td', { 'class': 'td meshpost-state' }, state),
				E('td', { 'class': 'td' }, meshpost.ago(m.since))
			]));
		});
		if (!(outbox.messages || []).length)
			outT.appendChild(E('tr', { 'class': 'tr placeholder' }, [ E('td', { 'class': 'td' }, _('Nothing sent yet.')) ]));

		return E('div', {}, [
			E('div', { 'class': 'cbi-section' }, [ E('h3', _('Inbox (%d)').format(inbox.total || 0)), inT ]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', _('Sent')), outT ])
		]);
	},

	refresh: function() {
		return this.load().then(L.bind(function(d) { dom.content(this.lists, this.renderLists(d)); }, this));
	},

	render: function(data) {
		this.lists = E('div', {}, [ this.renderLists(data) ]);
		poll.add(L.bind(this.refresh, this), 5);
		return E('div', {}, [
			E('h2', _('Messages')),
			E('div', { 'class': 'cbi-section' }, [
				E('h3', _('Send')),
				E('div', { 'class': 'cbi-value' }, [
					E('label', { 'class': 'cbi-value-title', 'for': 'meshpost-to' }, _('To')),
					E('div', { 'class': 'cbi-value-field' }, [
						E('input', { 'id': 'meshpost-to', 'type': 'text', 'class': 'cbi-input-text', 'list': 'meshpost-recipients',
							'placeholder': _('node id or a unique name') }),
						this.recipients(data[2] || {}, data[3] || {})
					])
				]),
				E('div', { 'class': 'cbi-value' }, [
					E('label', { 'class': 'cbi-value-title', 'for': 'meshpost-text' }, _('Message')),
					E('div', { 'class': 'cbi-value-field' }, [
						E('textarea', { 'id': 'meshpost-text', 'rows': 4, 'style': 'width:100%', 'maxlength': 16000 })
					])
				]),
				E('div', { 'class': 'right' }, [
					E('button', { 'id': 'meshpost-send', 'class': 'btn cbi-button-action', 'click': ui.createHandlerFn(this, 'handleSend') }, _('Send'))
				])
			]),
			this.lists
		]);
	},

	handleSave: null,
	handleSaveApply: null,
	handleReset: null
});
