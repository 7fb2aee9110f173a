'use strict';
'require baseclass';
'require rpc';

// The ubus calls of the meshpost rpcd plugin (/usr/libexec/rpcd/meshpost,
// `meshpost rpc`) that the views share, and small formatting helpers.
// It holds no state and draws nothing but the mesh picture.

var call = function(method, params) {
	return rpc.declare({ object: 'meshpost', method: method, params: params || [], expect: { '': {} } });
};

function shortId(id) {
	return (id || '').substring(0, 8);
}

function who(id, name) {
	return name ? '%s (%s)'.format(name, shortId(id)) : shortId(id);
}

function ago(unixSecs) {
	if (!unixSecs)
		return '-';
	var d = Math.max(0, Math.floor(Date.now() / 1000) - unixSecs);
	if (d < 60) return _('%ds ago').format(d);
	if (d < 3600) return _('%dm ago').format(Math.floor(d / 60));
	if (d < 86400) return _('%dh ago').format(Math.floor(d / 3600));
	return new Date(unixSecs * 1000).toLocaleString();
}

function bytes(n) {
	if (n == null) return '-';
	if (n < 1024) return '%d B'.format(n);
	if (n < 1048576) return '%.1f KiB'.format(n / 1024);
	return '%.1f MiB'.format(n / 1048576);
}

// An error answer of the daemon ({ok: false, error}) as a thrown Error, so
// callers can show it; a number is a ubus status code (e.g. 6: denied).
function checked(res) {
	if (typeof(res) == 'number')
		throw new Error(_('ubus call failed with code %d').format(res));
	if (!res || res.ok === false)
		throw new Error((res && res.error) || _('no answer from meshpost'));
	return res;
}

// Draws the known topology as SVG: this node in the middle, every other node
// on a ring by its hop distance (breadth-first over the edges), so the
// picture reads like a map of "how far".
function drawGraph(graph) {
	var nodes = (graph && graph.nodes) || [], edges = (graph && graph.edges) || [];
	var svgNS = 'http://www.w3.org/2000/svg';
	var size = 420, mid = size / 2;
	var svg = document.createElementNS(svgNS, 'svg');
	svg.setAttribute('viewBox', '0 0 %d %d'.format(size, size));
	svg.setAttribute('width', size);
	svg.setAttribute('height', size);
	svg.setAttribute('class', 'meshpost-graph');
	svg.setAttribute('role', 'img');

	var adj = {}, dist = {}, me = null;
	nodes.forEach(function(n) { adj[n.id] = []; if (n.self) me = n.id; });
	edges.forEach(function(e) {
		if (adj[e[0]] && adj[e[1]]) { adj[e[0]].push(e[1]); adj[e[1]].push(e[0]); }
	});
	var queue = me ? [ me ] : [];
	if (me) dist[me] = 0;
	while (queue.length) {
		var cur = queue.shift();
		adj[cur].forEach(function(nb) {
			if (dist[nb] == null) { dist[nb] = dist[cur] + 1; queue.push(nb); }
		});
	}
	var maxd = 1;
	nodes.forEach(function(n) { if (dist[n.id] == null) dist[n.id] = -1; maxd = Math.max(maxd, dist[n.id]); });
	var rings = {};
	nodes.forEach(function(n) {
		var d = dist[n.id] < 0 ? maxd + 1 : dist[n.id];
		(rings[d] = rings[d] || []).push(n);
	});
	var nring = Object.keys(rings).length, pos = {};
	Object.keys(rings).forEach(function(d) {
		var list = rings[d], r = d == 0 ? 0 : (mid - 40) * d / Math.max(1, nring - 1 || 1);
		r = Math.min(r, mid - 40);
		list.forEach(function(n, i) {
			var a = 2 * Math.PI * i / list.length - Math.PI / 2 + d * 0.4;
			pos[n.id] = [ mid + r * Math.cos(a), mid + r * Math.sin(a) ];
		});
	});

	edges.forEach(function(e) {
		if (!pos[e[0]] || !pos[e[1]]) return;
		var l = document.createElementNS(svgNS, 'line');
		l.setAttribute('x1', pos[e[0]][0]); l.setAttribute('y1', pos[e[0]][1]);
		l.setAttribute('x2', pos[e[1]][0]); l.setAttribute('y2', pos[e[1]][1]);
		l.setAttribute('stroke', '#888');
		l.setAttribute('stroke-width', 2);
		svg.appendChild(l);
	});
	nodes.forEach(function(n) {
		var g = document.createElementNS(svgNS, 'g');
		g.setAttribute('data-node', n.id);
		var c = document.createElementNS(svgNS, 'circle');
		c.setAttribute('cx', pos[n.id][0]); c.setAttribute('cy', pos[n.id][1]);
		c.setAttribute('r', n.self ? 14 : 10);
		c.setAttribute('fill', n.self ? '#2a7ab0' : (dist[n.id] < 0 ? '#bbb' : '#5cb85c'));
		var t = document.createElementNS(svgNS, 'text');
		t.setAttribute('x', pos[n.id][0]); t.setAttribute('y', pos[n.id][1] + 26);
		t.setAttribute('text-anchor', 'middle');
		t.setAttribute('font-size', 12);
		t.textContent = n.name || shortId(n.id);
		var title = document.createElementNS(svgNS, 'title');
		title.textContent = n.id;
		g.appendChild(title); g.appendChild(c); g.appendChild(t);
		svg.appendChild(g);
	});
	return svg;
}

return baseclass.extend({
	status: call('status'),
	identity: call('identity'),
	peers: call('peers'),
	routes: call('routes'),
	graph: call('graph'),
	federation: call('federation'),
	store: call('store'),
	inbox: call('inbox', [ 'action', 'id', 'offset', 'limit' ]),
	inboxDelete: call('inbox_delete', [ 'id' ]),
	outbox: call('outbox', [ 'id', 'offset', 'limit' ]),
	contacts: call('contact_list'),
	send: call('send', [ 'to', 'text', 'ttl', 'hops' ]),
	channels: call('channel_list'),
	history: call('channel_history', [ 'name', 'offset', 'limit' ]),
	publish: call('publish', [ 'channel', 'text' ]),
	channelCreate: call('channel_create', [ 'name' ]),
	channelJoin: call('channel_join', [ 'name', 'key' ]),
	channelLeave: call('channel_leave', [ 'name' ]),
	checkConfig: call('check_config', [ 'sections' ]),
	reload: call('reload'),

	checked: checked,
	shortId: shortId,
	who: who,
	ago: ago,
	bytes: bytes,
	drawGraph: drawGraph
});
