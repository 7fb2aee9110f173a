// A small host for LuCI views, for tests: the client APIs the meshpost
// views call (L, E, _, view, rpc, uci, form, ui, poll, dom, baseclass),
// written from LuCI's documented behaviour (luci.js, rpc.js, uci.js,
// form.js and ui.js in openwrt/luci modules/luci-base, read through the
// search tools; none of their code is here). It is not LuCI: no themes,
// menus or translations, and only the parts of each API the views use.
//
// Calls go to /ubus as ubus JSON-RPC exactly as LuCI's rpc.js sends them
// ({jsonrpc, id, method: "call", params: [sid, object, method, args]});
// tests/tools/luci_ubus.py answers them the way uhttpd-mod-ubus and rpcd do.
'use strict';

(function() {
	if (!String.prototype.format) {
		// LuCI's String.format: %s %d %f with optional precision (%.1f).
		String.prototype.format = function() {
			var args = arguments, i = 0;
			return this.replace(/%(\.(\d+))?([sdf%])/g, function(all, p, prec, t) {
				if (t == '%') return '%';
				var v = args[i++];
				if (t == 'd') return String(Math.floor(Number(v) || 0));
				if (t == 'f') return Number(v || 0).toFixed(prec != null ? +prec : 6);
				return v == null ? '' : String(v);
			});
		};
	}

	window._ = function(s) { return s; };
	window.N_ = function(s) { return s; };

	function E(tag, attrs, children) {
		if (typeof attrs != 'object' || attrs == null || Array.isArray(attrs) || attrs instanceof Node) {
			children = attrs;
			attrs = {};
		}
		var el = document.createElement(tag);
		Object.keys(attrs).forEach(function(k) {
			var v = attrs[k];
			if (v == null || v === false) return;
			if (typeof v == 'function') el.addEventListener(k, v);
			else el.setAttribute(k, v === true ? '' : v);
		});
		dom.append(el, children);
		return el;
	}
	window.E = E;

	var dom = {
		append: function(node, children) {
			if (children == null) return node;
			if (!Array.isArray(children)) children = [ children ];
			children.forEach(function(c) {
				if (c == null || c === '') return;
				if (Array.isArray(c)) dom.append(node, c);
				else node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
			});
			return node;
		},
		content: function(node, children) {
			while (node.firstChild) node.removeChild(node.firstChild);
			return dom.append(node, children);
		}
	};

	// baseclass: extend() makes a subclass whose __init__ runs on `new`.
	function Class() {}
	Class.extend = function(props) {
		var Parent = this;
		var Sub = function() {
			if (typeof this.__init__ == 'function') return this.__init__.apply(this, arguments);
		};
		Sub.prototype = Object.create(Parent.prototype);
		Object.keys(props || {}).forEach(function(k) { Sub.prototype[k] = props[k]; });
		Sub.prototype.constructor = Sub;
		Sub.extend = Class.extend;
		Sub.super = function(name, args) { return Parent.prototype[name].apply(this, args || []); };
		return Sub;
	};

	var sessionId = window.LUCI_SESSION || '00000000000000000000000000000000';
	var rpcId = 1;

	// rpc.declare as LuCI's rpc.js: positional arguments become the named
	// params, the answer [code, data] becomes data (or the code), then
	// `expect` picks a key and falls back to its value on a type mismatch,
	// and a JSON-RPC error (e.g. access denied) rejects.
	var rpc = {
		declare: function(opt) {
			return function() {
				var args = Array.prototype.slice.call(arguments), params = {};
				(opt.params || []).forEach(function(p, i) { if (args[i] !== undefined && args[i] !== null) params[p] = args[i]; });
				var msg = { jsonrpc: '2.0', id: rpcId++, method: 'call', params: [ sessionId, opt.object, opt.method, params ] };
				return fetch('/ubus/' + opt.object + '.' + opt.method, {
					method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(msg)
				}).then(function(res) {
					if (!res.ok) throw new Error('RPC call to %s/%s failed with HTTP error %d'.format(opt.object, opt.method, res.status));
					return res.json();
				}).then(function(reply) {
					if (!reply || reply.jsonrpc != '2.0') throw new Error('RPC call returned an invalid message frame');
					if (reply.error && reply.error.code)
						throw new Error('RPC call to %s/%s failed with error %d: %s'.format(opt.object, opt.method, reply.error.code, reply.error.message));
					var ret = null;
					if (Array.isArray(reply.result)) {
						if (opt.reject && reply.result[0] !== 0) throw new Error('ubus code ' + reply.result[0]);
						ret = reply.result.length > 1 ? reply.result[1] : reply.result[0];
					}
					if (opt.expect) {
						var k = Object.keys(opt.expect)[0], tp = Object.prototype.toString;
						if (ret != null && k != '') ret = ret[k];
						if (ret == null || tp.call(ret) != tp.call(opt.expect[k])) ret = opt.expect[k];
					}
					if (typeof opt.filter == 'function') ret = opt.filter(ret, params);
					return ret;
				});
			};
		}
	};

	// uci as LuCI's uci.js, on rpcd's uci object: load (get), sections with
	// pending changes merged, set/add/remove staged here, save() sends them
	// (add, set, delete), apply() asks rpcd to commit (and procd reloads).
	var uciCalls = {
		get: rpc.declare({ object: 'uci', method: 'get', params: [ 'config' ], expect: { values: {} } }),
		add: rpc.declare({ object: 'uci', method: 'add', params: [ 'config', 'type', 'name', 'values' ], expect: { section: '' } }),
		set: rpc.declare({ object: 'uci', method: 'set', params: [ 'config', 'section', 'values' ] }),
		del: rpc.declare({ object: 'uci', method: 'delete', params: [ 'config', 'section', 'options' ] }),
		apply: rpc.declare({ object: 'uci', method: 'apply', params: [ 'rollback', 'timeout' ], reject: true })
	};
	var uci = {
		state: {}, changes: {}, newid: 0,
		load: function(conf) {
			return uciCalls.get(conf).then(function(values) {
				uci.state[conf] = values;
				uci.changes[conf] = { creates: {}, sets: {}, deletes: {} };
				return [ conf ];
			});
		},
		merged: function(conf) {
			var v = JSON.parse(JSON.stringify(uci.state[conf] || {})), c = uci.changes[conf];
			Object.keys(c.creates).forEach(function(sid) { v[sid] = JSON.parse(JSON.stringify(c.creates[sid])); });
			Object.keys(c.sets).forEach(function(sid) {
				if (!v[sid]) return;
				Object.keys(c.sets[sid]).forEach(function(o) { v[sid][o] = c.sets[sid][o]; });
			});
			Object.keys(c.deletes).forEach(function(sid) {
				if (c.deletes[sid] === true) delete v[sid];
				else if (v[sid]) Object.keys(c.deletes[sid]).forEach(function(o) { delete v[sid][o]; });
			});
			return v;
		},
		sections: function(conf, type) {
			var v = uci.merged(conf);
			return Object.keys(v).map(function(k) { return v[k]; })
				.filter(function(s) { return !type || s['.type'] == type; })
				.sort(function(a, b) { return a['.index'] - b['.index']; });
		},
		get: function(conf, sid, opt) {
			var s = uci.merged(conf)[sid];
			return s == null ? null : (opt == null ? s : s[opt]);
		},
		set: function(conf, sid, opt, val) {
			var c = uci.changes[conf];
			if (val == null || val === '' || (Array.isArray(val) && !val.length)) return uci.unset(conf, sid, opt);
			if (c.creates[sid]) { c.creates[sid][opt] = val; return; }
			(c.sets[sid] = c.sets[sid] || {})[opt] = val;
			if (c.deletes[sid] && c.deletes[sid] !== true) delete c.deletes[sid][opt];
		},
		unset: function(conf, sid, opt) {
			var c = uci.changes[conf];
			if (c.creates[sid]) { delete c.creates[sid][opt]; return; }
			if (c.sets[sid]) delete c.sets[sid][opt];
			if (c.deletes[sid] !== true) (c.deletes[sid] = c.deletes[sid] || {})[opt] = true;
		},
		add: function(conf, type) {
			var sid = 'new' + (uci.newid++);
			uci.changes[conf].creates[sid] = { '.type': type, '.name': sid, '.anonymous': true, '.index': 1000 + uci.newid };
			return sid;
		},
		remove: function(conf, sid) {
			var c = uci.changes[conf];
			if (c.creates[sid]) delete c.creates[sid];
			else c.deletes[sid] = true;
		},
		save: function() {
			var calls = [];
			Object.keys(uci.changes).forEach(function(conf) {
				var c = uci.changes[conf];
				Object.keys(c.creates).forEach(function(sid) {
					var s = c.creates[sid], vals = {};
					Object.keys(s).forEach(function(o) { if (o.charAt(0) != '.') vals[o] = s[o]; });
					calls.push(function() { return uciCalls.add(conf, s['.type'], null, vals); });
				});
				Object.keys(c.sets).forEach(function(sid) {
					calls.push(function() { return uciCalls.set(conf, sid, c.sets[sid]); });
				});
				Object.keys(c.deletes).forEach(function(sid) {
					var d = c.deletes[sid];
					calls.push(function() { return uciCalls.del(conf, sid, d === true ? null : Object.keys(d)); });
				});
			});
			return calls.reduce(function(p, f) { return p.then(f); }, Promise.resolve()).then(function() {
				return Promise.all(Object.keys(uci.changes).map(uci.load));
			});
		},
		apply: function() { return uciCalls.apply(false, 0); }
	};

	var notices = null;
	var ui = {
		addNotification: function(title, children, cls) {
			notices = notices || document.getElementById('notifications');
			var n = E('div', { 'class': 'alert-message ' + (cls || '') }, [ title ? E('h4', title) : '', children ]);
			notices.appendChild(n);
			return n;
		},
		showModal: function(title, children) {
			var m = document.getElementById('modal');
			dom.content(m, [ E('h4', title), children ]);
			m.style.display = 'block';
			return m;
		},
		hideModal: function() { document.getElementById('modal').style.display = 'none'; },
		createHandlerFn: function(ctx, fn) {
			var args = Array.prototype.slice.call(arguments, 2), f = typeof fn == 'string' ? ctx[fn] : fn;
			return function(ev) {
				var btn = ev.currentTarget;
				btn.classList.add('spinning');
				btn.disabled = true;
				return Promise.resolve(f.apply(ctx, args.concat([ ev ]))).finally(function() {
					btn.classList.remove('spinning');
					btn.disabled = false;
				});
			};
		},
		changes: { apply: function() { return uci.apply(); } }
	};

	// poll: the views' periodic refreshes; tests call poll.tick() instead of
	// waiting, so nothing depends on timing.
	var poll = { fns: [], add: function(fn, secs) { poll.fns.push(fn); }, tick: function() {
		return Promise.all(poll.fns.map(function(f) { return f(); }));
	} };

	// form: Map, NamedSection, TypedSection/GridSection, Value, Flag,
	// ListValue, DynamicList, with LuCI's datatypes the views use, `validate`,
	// `rmempty`, `default`, `placeholder`, `password`, anonymous sections and
	// addremove. parse() validates every field and stages the values in uci;
	// save() sends them.
	var datatypes = {
		port: function(v) { return /^\d+$/.test(v) && +v <= 65535 ? true : 'Expecting a valid port'; },
		uinteger: function(v) { return /^\d+$/.test(v) ? true : 'Expecting a non-negative integer'; },
		range: function(v, lo, hi) { return /^-?\d+$/.test(v) && +v >= lo && +v <= hi ? true : 'Expecting a value between %d and %d'.format(lo, hi); },
		maxlength: function(v, n) { return v.length <= n ? true : 'Expecting at most %d characters'.format(n); }
	};
	function checkType(dt, v) {
		var m = /^(\w+)(?:\(([^)]*)\))?$/.exec(dt || '');
		if (!m || !datatypes[m[1]]) return true;
		return datatypes[m[1]].apply(null, [ v ].concat((m[2] || '').split(',').filter(String).map(Number)));
	}

	var Option = Class.extend({
		__init__: function(section, kind, name, title, descr) {
			this.section = section; this.kind = kind; this.option = name; this.title = title; this.description = descr;
			this.choices = [];
		},
		value: function(k, label) { this.choices.push([ k, label || k ]); },
		id: function(sid) { return 'cbid.%s.%s.%s'.format(this.section.map.config, sid, this.option); },
		cfgvalue: function(sid) { return uci.get(this.section.map.config, sid, this.option); },
		renderWidget: function(sid) {
			var v = this.cfgvalue(sid), id = this.id(sid);
			if (this.kind == 'flag')
				return E('input', { 'type': 'checkbox', 'id': id, 'checked': (v == null ? this.default : v) == '1' });
			if (this.kind == 'list') {
				var sel = E('select', { 'id': id });
				this.choices.forEach(L.bind(function(c) {
					sel.appendChild(E('option', { 'value': c[0], 'selected': (v == null ? this.default : v) == c[0] }, c[1]));
				}, this));
				return sel;
			}
			if (this.kind == 'dynlist')
				return E('input', { 'type': 'text', 'id': id, 'data-list': '1', 'value': (v || []).join(' '),
					'placeholder': 'values separated by spaces' });
			return E('input', { 'type': this.password ? 'password' : 'text', 'id': id, 'value': v == null ? '' : v,
				'placeholder': this.placeholder || '' });
		},
		formvalue: function(sid) {
			var el = document.getElementById(this.id(sid));
			if (!el) return undefined;
			if (this.kind == 'flag') return el.checked ? '1' : '0';
			if (this.kind == 'dynlist') return el.value.split(/\s+/).filter(String);
			return el.value.trim();
		},
		parse: function(sid) {
			var v = this.formvalue(sid), conf = this.section.map.config;
			if (v === undefined) return null;
			var el = document.getElementById(this.id(sid));
			var empty = v === '' || (Array.isArray(v) && !v.length);
			var err = true;
			if (empty && this.rmempty === false && this.kind != 'flag') err = 'Expecting a non-empty value';
			else if (!empty) {
				(Array.isArray(v) ? v : [ v ]).forEach(L.bind(function(x) {
					if (err !== true) return;
					err = checkType(this.datatype, x);
					if (err === true && this.validate) err = this.validate(sid, x);
				}, this));
			}
			el.classList.toggle('cbi-input-invalid', err !== true);
			if (err !== true) return '%s: %s'.format(this.title, err);
			if (this.kind == 'flag' && v == (this.default || '0') && this.rmempty !== false && uci.get(conf, sid, this.option) == null)
				return null;
			uci.set(conf, sid, this.option, v);
			return null;
		}
	});

	var Section = Class.extend({
		__init__: function(map, kind, a, b, title, descr) {
			this.map = map; this.kind = kind; this.children = [];
			if (kind == 'named') { this.sid = a; this.sectiontype = b; this.title = title; this.description = descr; }
			else { this.sectiontype = a; this.title = b; this.description = title; }
		},
		option: function(Cls, name, title, descr) {
			var o = new Option(this, Cls.kind, name, title, descr);
			this.children.push(o);
			return o;
		},
		sids: function() {
			if (this.kind == 'named') return uci.get(this.map.config, this.sid) ? [ this.sid ] : [];
			return uci.sections(this.map.config, this.sectiontype).map(function(s) { return s['.name']; });
		},
		render: function() {
			var box = E('div', { 'class': 'cbi-section', 'id': 'cbi-%s-%s'.format(this.map.config, this.sectiontype) }, [
				this.title ? E('h3', this.title) : '', this.description ? E('div', { 'class': 'cbi-section-descr' }, this.description) : ''
			]);
			this.sids().forEach(L.bind(function(sid) {
				var row = E('div', { 'class': 'cbi-section-node', 'data-section': sid });
				this.children.forEach(function(o) {
					row.appendChild(E('div', { 'class': 'cbi-value' }, [
						E('label', { 'class': 'cbi-value-title', 'for': o.id(sid) }, o.title),
						E('div', { 'class': 'cbi-value-field' }, [ o.renderWidget(sid),
							o.description ? E('div', { 'class': 'cbi-value-description' }, o.description) : '' ])
					]));
				});
				if (this.addremove && this.kind != 'named')
					row.appendChild(E('button', { 'class': 'btn cbi-button-remove', 'click': L.bind(function() {
						uci.remove(this.map.config, sid); this.map.rerender();
					}, this) }, 'Delete'));
				box.appendChild(row);
			}, this));
			if (this.addremove && this.kind != 'named')
				box.appendChild(E('button', { 'class': 'btn cbi-button-add', 'id': 'add-' + this.sectiontype, 'click': L.bind(function() {
					this.map.parse().catch(function() {}).then(L.bind(function() {
						uci.add(this.map.config, this.sectiontype); this.map.rerender();
					}, this));
				}, this) }, 'Add'));
			return box;
		},
		parse: function() {
			var errs = [];
			this.sids().forEach(L.bind(function(sid) {
				this.children.forEach(function(o) { var e = o.parse(sid); if (e) errs.push(e); });
			}, this));
			return errs;
		}
	});

	var form = {
		NamedSection: { kind: 'named' }, TypedSection: { kind: 'typed' }, GridSection: { kind: 'typed' },
		Value: { kind: 'value' }, Flag: { kind: 'flag' }, ListValue: { kind: 'list' }, DynamicList: { kind: 'dynlist' },
		Map: Class.extend({
			__init__: function(config, title, descr) { this.config = config; this.title = title; this.description = descr; this.sections = []; },
			section: function(Cls, a, b, c, d) {
				var s = new Section(this, Cls.kind, a, b, c, d);
				this.sections.push(s);
				return s;
			},
			render: function() {
				this.root = this.root || E('div', { 'class': 'cbi-map', 'id': 'cbi-' + this.config });
				dom.content(this.root, [ E('h2', this.title), E('div', { 'class': 'cbi-map-descr' }, this.description) ]
					.concat(this.sections.map(function(s) { return s.render(); })));
				return Promise.resolve(this.root);
			},
			rerender: function() { return this.render(); },
			parse: function() {
				var errs = [];
				this.sections.forEach(function(s) { errs = errs.concat(s.parse()); });
				if (errs.length) return Promise.reject(new Error(errs.join('; ')));
				return Promise.resolve();
			},
			save: function() {
				return this.parse().then(function() { return uci.save(); }).then(L.bind(this.render, this));
			}
		})
	};

	// view: load(), render(), then the footer with Save & Apply, Save and
	// Reset when the view keeps the handlers (as LuCI's view.addFooter).
	var view = Class.extend({
		__init__: function() {
			var vp = document.getElementById('view');
			return Promise.resolve(this.load()).then(L.bind(this.render, this)).then(L.bind(function(nodes) {
				dom.content(vp, nodes);
				var footer = E('div', { 'class': 'cbi-page-actions' });
				if (this.handleSaveApply !== null)
					footer.appendChild(E('button', { 'class': 'btn cbi-button-apply', 'id': 'save-apply', 'click': ui.createHandlerFn(this, 'handleSaveApply') }, 'Save & Apply'));
				if (this.handleSave !== null)
					footer.appendChild(E('button', { 'class': 'btn cbi-button-save', 'id': 'save', 'click': ui.createHandlerFn(this, 'handleSave') }, 'Save'));
				vp.appendChild(footer);
				document.body.setAttribute('data-view-ready', '1');
			}, this)).catch(function(e) {
				dom.content(vp, E('div', { 'class': 'alert-message error', 'id': 'view-error' }, String(e && e.message || e)));
				document.body.setAttribute('data-view-ready', 'error');
			});
		},
		load: function() {},
		render: function() {},
		handleSave: function() { return this.map ? this.map.save() : Promise.resolve(); },
		handleSaveApply: function(ev) {
			return this.handleSave(ev).then(function() { return ui.changes.apply(); })
				.then(function() { ui.addNotification(null, E('p', { 'id': 'applied' }, 'Configuration applied.'), 'info'); })
				.catch(function() {});
		},
		handleReset: function() { return this.map ? this.map.render() : null; }
	});

	var L = {
		env: {},
		bind: function(fn, self) { var a = Array.prototype.slice.call(arguments, 2); return function() { return fn.apply(self, a.concat(Array.prototype.slice.call(arguments))); }; },
		resolveDefault: function(p, d) { return Promise.resolve(p).catch(function() { return d; }); },
		isObject: function(v) { return v != null && typeof v == 'object'; },
		toArray: function(v) { return v == null ? [] : (Array.isArray(v) ? v : [ v ]); }
	};
	window.L = L;

	var builtins = { baseclass: Class, view: view, rpc: rpc, uci: uci, form: form, ui: ui, poll: poll, dom: dom };
	var loaded = {};

	// L.require as luci.js loads modules: fetch resources/NAME.js, resolve its
	// 'require x' lines first, run the body with those as arguments, and
	// instantiate what it returns.
	function require(name) {
		if (builtins[name]) return Promise.resolve(builtins[name]);
		if (loaded[name]) return loaded[name];
		loaded[name] = fetch('/luci-static/resources/' + name.replace(/\./g, '/') + '.js').then(function(r) {
			if (!r.ok) throw new Error('cannot load module ' + name + ': HTTP ' + r.status);
			return r.text();
		}).then(function(src) {
			var deps = [], re = /^\s*'require\s+([\w.]+)(?:\s+as\s+(\w+))?'\s*;/gm, m;
			while ((m = re.exec(src)) != null) deps.push([ m[1], m[2] || m[1].split('.').pop() ]);
			return Promise.all(deps.map(function(d) { return require(d[0]); })).then(function(mods) {
				var factory = new Function([ 'window', 'document', 'L' ].concat(deps.map(function(d) { return d[1]; })).join(','), src);
				var Cls = factory.apply(null, [ window, document, L ].concat(mods));
				return name.indexOf('view.') == 0 ? Cls : new Cls();
			});
		});
		return loaded[name];
	}

	L.require = require;
	window.LuCIShim = { require: require, poll: poll, uci: uci };
	window.openView = function(path) {
		return require('view.' + path.replace(/\//g, '.')).then(function(Cls) { return new Cls(); });
	};
})();
