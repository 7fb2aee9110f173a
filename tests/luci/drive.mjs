// Drives the luci-app-meshpost views in headless Chromium (Debian's
// chromium, through playwright-core) for tests/luci.rs: each step opens a
// view on the test host page, acts as an admin would, and records what the
// page showed. Screenshots go to $SHOTS. Prints one JSON object of results;
// the Rust test checks the daemons and the saved config itself.
//
// env: BASE (http://127.0.0.1:PORT), FULL and READONLY (rpcd session ids),
// TO (the recipient's node id), SHOTS (directory), PLAYWRIGHT (module path)
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT);
const env = process.env;
const results = {};

const browser = await chromium.launch({
	executablePath: '/usr/bin/chromium',
	args: [ '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
		'--disable-background-networking', '--disable-component-update', '--disable-sync' ]
});
const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
page.setDefaultTimeout(30000);
const errors = [];
page.on('pageerror', e => errors.push(String(e)));

async function open(view, session) {
	await page.goto(`${env.BASE}/host.html?view=${view}&session=${session || env.FULL}`);
	await page.waitForSelector('body[data-view-ready]');
	return page.getAttribute('body', 'data-view-ready');
}

// Runs the views' poll functions (instead of waiting for the 5 s timer)
// until `check` holds in the page, for at most `secs` seconds.
async function until(check, arg, secs) {
	const deadline = Date.now() + secs * 1000;
	for (;;) {
		await page.evaluate(() => window.LuCIShim.poll.tick());
		if (await page.evaluate(check, arg)) return true;
		if (Date.now() > deadline) return false;
		await page.waitForTimeout(200);
	}
}

const shot = name => page.screenshot({ path: `${env.SHOTS}/${name}.png`, fullPage: true });

// Status: the node table and the mesh picture.
results.status_ready = await open('meshpost/status');
results.graph_nodes = await page.locator('#meshpost-graph svg g[data-node]').count();
results.graph_edges = await page.locator('#meshpost-graph svg line').count();
results.status_text = await page.locator('#meshpost-status').innerText();
await shot('luci-status');

// Messages: send to the other daemon and watch the state become delivered.
results.messages_ready = await open('meshpost/messages');
results.inbox_rows = await page.locator('#meshpost-inbox tr[data-id]').count();
results.inbox_text = await page.locator('#meshpost-inbox').innerText();
await page.fill('#meshpost-to', env.TO);
await page.fill('#meshpost-text', 'hello from LuCI');
await page.click('#meshpost-send');
await page.waitForSelector('#meshpost-sent');
results.delivered = await until(() =>
	[...document.querySelectorAll('#meshpost-outbox tr[data-state]')].some(r => r.dataset.state == 'delivered'), null, 30);
results.outbox_text = await page.locator('#meshpost-outbox').innerText();
await shot('luci-messages');
// Reading a message opens it and marks it read.
if (results.inbox_rows > 0) {
	await page.click('#meshpost-inbox tr[data-id] button:has-text("Read")');
	results.read_text = await page.locator('#modal pre').innerText();
	await page.evaluate(() => document.getElementById('modal').style.display = 'none');
}

// The read-only group may look but not send: rpcd refuses the call.
results.readonly_ready = await open('meshpost/messages', env.READONLY);
await page.fill('#meshpost-to', env.TO);
await page.fill('#meshpost-text', 'must not be sent');
await page.click('#meshpost-send');
results.readonly_error = await page.locator('#meshpost-send-error').innerText();

// Channels: create one (the key is shown once), publish, see the history.
results.channels_ready = await open('meshpost/channels');
await page.fill('#meshpost-new-name', 'town');
await page.click('#meshpost-create');
results.channel_key = await page.locator('#meshpost-channel-key').innerText();
await shot('luci-channel-created');
await page.evaluate(() => document.getElementById('modal').style.display = 'none');
await page.fill('#meshpost-publish-town', 'market at 10');
await page.click('.meshpost-channel[data-channel="town"] button:has-text("Publish")');
await page.waitForSelector('.meshpost-channel[data-channel="town"] .meshpost-text');
results.channel_history = await page.locator('.meshpost-channel[data-channel="town"] table').innerText();
await shot('luci-channels');
// Leave it, then join again with the key that was shown.
await page.click('.meshpost-channel[data-channel="town"] button:has-text("Leave")');
await page.waitForSelector('.meshpost-channel[data-channel="town"]', { state: 'detached' });
await page.fill('#meshpost-join-name', 'town');
await page.fill('#meshpost-join-key', results.channel_key);
await page.click('#meshpost-join');
await page.waitForSelector('.meshpost-channel[data-channel="town"]');
results.rejoined = true;

// Settings: a value only the daemon's rules refuse is not saved ...
results.settings_ready = await open('meshpost/settings');
await page.fill('[id="cbid.meshpost.main.domain"]', 'Not A Domain');
await page.click('#save-apply');
results.refused = await page.locator('#meshpost-config-error').innerText();
await shot('luci-settings-refused');
// ... a LuCI datatype catches a bad port before the daemon is asked ...
await open('meshpost/settings');
await page.fill('[id="cbid.meshpost.main.port"]', '70000');
await page.click('#save-apply');
results.port_refused = await page.locator('#meshpost-config-error').innerText();
// ... and a good change is saved, applied, and the daemon reloads.
await open('meshpost/settings');
await page.fill('[id="cbid.meshpost.main.name"]', 'alpha-luci');
await page.click('#save-apply');
await page.waitForSelector('#applied');
results.applied = true;
await shot('luci-settings');
// A peer added in the form: a bad key is refused, a good one is saved.
await open('meshpost/settings');
await page.click('#add-peer');
await page.fill('[id^="cbid.meshpost.new"][id$=".address"]', '127.0.0.1:9');
await page.fill('[id^="cbid.meshpost.new"][id$=".key"]', '00'.repeat(32));
await page.click('#save-apply');
results.zero_key_refused = await page.locator('#meshpost-config-error').innerText();
await page.fill('[id^="cbid.meshpost.new"][id$=".key"]', 'ab'.repeat(32));
await page.click('#save-apply');
await page.waitForSelector('#applied');
results.peer_added = true;

results.page_errors = errors;
await browser.close();
console.log(JSON.stringify(results));
