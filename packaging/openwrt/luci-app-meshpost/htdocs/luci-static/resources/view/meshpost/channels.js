'use strict';
'require view';
'require ui';
'require dom';
'require meshpost';

// Channels: the joined channels with their recent history, publishing,
// creating a channel and joining one with its key. Channels joined here
// live until the daemon restarts; channels meant to stay belong in
// Settings (config channel), where the key is kept in /etc/config/meshpost.

return view.extend({
	load: function() {
		return L.resolveDefault(meshpost.channels(), {}).then(function(list) {
			var chans = list.channels || [];
			return Promise.all(chans.map(function(c) {
				return L.resolveDefault(meshpost.history(c.name, 0, 20), {});
			})).then(function(hist) { return [ chans, hist ]; });
		});
	},

	fail: function(what, err) {
		ui.addNotification(null, E('p', { 'class': 'meshpost-error' }, '%s: %s'.format(what, err.message)), 'error');
	},

	handlePublish: function(name) {
		var box = document.getElementById('meshpost-publish-' + name);
		if (!box.value.trim()) return Promise.resolve();
		return meshpost.publish(name, box.value).then(meshpost.checked)
			.then(L.bind(function() { box.value = ''; return this.refresh(); }, this))
			.catch(L.bind(this.fail, this, _('Not published')));
	},

	handleCreate: function() {
		var name = document.getElementById('meshpost-new-name').value.trim();
		return meshpost.channelCreate(name).then(meshpost.checked).then(L.bind(function(res) {
			document.getElementById('meshpost-new-name').value = '';
			ui.showModal(_('Channel %s created').format(name), [
				E('p', _('Give this key to the people who should read and write in the channel (it is the whole secret):')),
				E('pre', { 'id': 'meshpost-channel-key' }, res.key || ''),
				E('div', { 'class': 'right' }, [ E('button', { 'class': 'btn', 'click': ui.hideModal }, _('Close')) ])
			]);
			return this.refresh();
		}, this)).catch(L.bind(this.fail, this, _('Not created')));
	},

	handleJoin: function() {
		var name = document.getElementById('meshpost-join-name').value.trim(),
		    key = document.getElementById('meshpost-join-key').value.trim();
		return meshpost.channelJoin(name, key).then(meshpost.checked)
			.then(L.bind(function() {
				document.getElementById('meshpost-join-key').value = '';
				return this.refresh();
			}, this))
			.catch(L.bind(this.fail, this, _('Not joined')));
	},

	handleLeave: function(name) {
		return meshpost.channelLeave(name).then(meshpost.checked)
			.then(L.bind(this.refresh, this))
			.catch(L.bind(this.fail, this, _('Not left')));
	},

	renderChannels: function(data) {
		var chans = data[0], hist = data[1];
		if (!chans.length)
			return E('p', { 'class': 'cbi-section-descr' }, _('No channels yet: create one or join one with its key below.'));
		return E('div', {}, chans.map(L.bind(function(c, i) {
			var msgs = (hist[i] && hist[i].messages) || [];
			return E('div', { 'class': 'cbi-section meshpost-channel', 'data-channel': c.name }, [
				E('h3', {}, [ '#' + c.name, ' ', E('small', {}, c.source == 'config' ? _('(from Settings)') : '') ]),
				E('table', { 'class': 'table' }, msgs.map(function(m) {
					return E('tr', { 'class': 'tr' }, [
						E('td', { 'class': 'td', 'style': 'width:12em' }, meshpost.who(m.from, m.from_name)),
						E('td', { 'class': 'td', 'style': 'width:8em' }, meshpost.ago(m.created)),
						E('td', { 'class': 'td meshpost-text' }, m.text)
					]);
				}).concat(msgs.length ? [] : [ E('tr', { 'class': 'tr placeholder' }, [ E('td', { 'class': 'td' }, _('No messages yet.')) ]) ])),
				E('div', { 'class': 'cbi-value' }, [
					E('input', { 'id': 'meshpost-publish-' + c.name, 'type': 'text', 'class': 'cbi-input-text', 'style': 'width:70%',
						'placeholder': _('Write to #%s').format(c.name) }), ' ',
					E('button', { 'class': 'btn cbi-button-action', 'click': ui.createHandlerFn(this, 'handlePublish', c.name) }, _('Publish')), ' ',
					c.source == 'config' ? '' :
						E('button', { 'class': 'btn cbi-button-remove', 'click': ui.createHandlerFn(this, 'handleLeave', c.name) }, _('Leave'))
				])
			]);
		}, this)));
	},

	refresh: function() {
		return this.load().then(L.bind(function(d) { dom.content(this.box, this.renderChannels(d)); }, this));
	},

	render: function(data) {
		this.box = E('div', {}, [ this.renderChannels(data) ]);
		return E('div', {}, [
			E('h2', _('Channels')),
			this.box,
			E('div', { 'class': 'cbi-section' }, [
				E('h3', _('Create or join')),
				E('div', { 'class': 'cbi-value' }, [
					E('label', { 'class': 'cbi-value-title' }, _('New channel')),
					E('div', { 'class': 'cbi-value-field' }, [
						E('input', { 'id': 'meshpost-new-name', 'type': 'text', 'class': 'cbi-input-text', 'placeholder': _('name (A-Z a-z 0-9 _ - .)') }), ' ',
						E('button', { 'id': 'meshpost-create', 'class': 'btn cbi-button-add', 'click': ui.createHandlerFn(this, 'handleCreate') }, _('Create'))
					])
				]),
				E('div', { 'class': 'cbi-value' }, [
					E('label', { 'class': 'cbi-value-title' }, _('Join with a key')),
					E('div', { 'class': 'cbi-value-field' }, [
						E('input', { 'id': 'meshpost-join-name', 'type': 'text', 'class': 'cbi-input-text', 'placeholder': _('name') }), ' ',
						E('input', { 'id': 'meshpost-join-key', 'type': 'password', 'class': 'cbi-input-password', 'placeholder': 'mpch1-…' }), ' ',
						E('button', { 'id': 'meshpost-join', 'class': 'btn cbi-button-add', 'click': ui.createHandlerFn(this, 'handleJoin') }, _('Join'))
					])
				])
			])
		]);
	},

	handleSave: null,
	handleSaveApply: null,
	handleReset: null
});
