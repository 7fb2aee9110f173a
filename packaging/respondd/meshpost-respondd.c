/*
 * respondd provider for meshpost (/usr/lib/respondd/meshpost.so).
 *
 * respondd (freifunk-gluon/packages net/respondd) loads every .so in its
 * provider directory, looks up `respondd_providers` and, for a request
 * such as "nodeinfo", calls each provider and merges the JSON objects they
 * return (a provider must always return an object: respondd's merge drops
 * everything merged so far when a provider returns NULL). This one answers
 *   nodeinfo:   {"software": {"meshpost": {enabled, version, node_id,
 *                public_key, name, domain}}}
 *   statistics: {"meshpost": {links, known_nodes, routes, uptime,
 *                store {envelopes, bytes}, inbox {messages, unread},
 *                messages {delivered, sent, relayed}}}
 * by asking the daemon's control socket (status, identity), one short
 * connection each, with 500 ms send and receive timeouts and an answer of
 * at most 64 KiB, so a stuck daemon cannot stall respondd for long.
 *
 * It does not start, configure or reach the daemon any other way; when the
 * daemon does not answer, nodeinfo says enabled: false and statistics
 * carries no meshpost object.
 *
 * The socket is $MESHPOST_SOCKET, else `option socket` of meshpost.main in
 * UCI (built with -DMESHPOST_WITH_UCI, as the OpenWrt package is), else
 * /var/run/meshpost.sock.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#ifdef MESHPOST_WITH_UCI
#include <uci.h>
#endif

/* The ABI of respondd.h: a NULL-terminated array of request names and
 * functions returning a new json-c object. */
typedef struct json_object *(*respondd_provider)(void);

struct respondd_provider_info {
	const char *request;
	const respondd_provider provider;
};

#define DEFAULT_SOCKET "/var/run/meshpost.sock"
#define MAX_ANSWER (64 * 1024)
#define TIMEOUT_MS 500

static void socket_path(char *buf, size_t len)
{
	const char *env = getenv("MESHPOST_SOCKET");

	snprintf(buf, len, "%s", DEFAULT_SOCKET);
	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return;
	}
#ifdef MESHPOST_WITH_UCI
	struct uci_context *ctx = uci_alloc_context();
	struct uci_ptr ptr;
	char spec[] = "meshpost.main.socket";

	if (!ctx)
		return;
	if (uci_lookup_ptr(ctx, &ptr, spec, true) == UCI_OK && (ptr.flags & UCI_LOOKUP_COMPLETE) &&
	    ptr.o && ptr.o->type == UCI_TYPE_STRING && ptr.o->v.string[0])
		snprintf(buf, len, "%s", ptr.o->v.string);
	uci_free_context(ctx);
#endif
}

/* Sends one request line; returns the answer object if it says "ok": true. */
static struct json_object *ask(const char *request)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 0, .tv_usec = TIMEOUT_MS * 1000 };
	char *buf = NULL;
	size_t used = 0;
	struct json_object *answer = NULL, *ok;
	int fd;

	socket_path(addr.sun_path, sizeof(addr.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		goto out;
	if (send(fd, request, strlen(request), MSG_NOSIGNAL) != (ssize_t)strlen(request) ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) != 1)
		goto out;
	buf = malloc(MAX_ANSWER + 1);
	if (!buf)
		goto out;
	while (used < MAX_ANSWER) {
		ssize_t n = recv(fd, buf + used, MAX_ANSWER - used, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += n;
		if (memchr(buf + used - n, '\n', n))
			break;
	}
	buf[used] = 0;
	answer = json_tokener_parse(buf);
	if (answer && !(json_object_object_get_ex(answer, "ok", &ok) && json_object_get_boolean(ok))) {
		json_object_put(answer);
		answer = NULL;
	}
out:
	free(buf);
	close(fd);
	return answer;
}

/* Copies field `key` of `from` into `to` (as `as`), if it is there. */
static void copy(struct json_object *to, const char *as, struct json_object *from, const char *key)
{
	struct json_object *v;

	if (from && json_object_object_get_ex(from, key, &v))
		json_object_object_add(to, as, json_object_get(v));
}

static struct json_object *provider_nodeinfo(void)
{
	struct json_object *ret = json_object_new_object();
	struct json_object *software = json_object_new_object();
	struct json_object *m = json_object_new_object();
	struct json_object *status = ask("{\"cmd\":\"status\"}");
	struct json_object *identity = status ? ask("{\"cmd\":\"identity\"}") : NULL;

	json_object_object_add(m, "enabled", json_object_new_boolean(status != NULL));
	copy(m, "version", status, "version");
	copy(m, "node_id", status, "node_id");
	copy(m, "public_key", identity, "public_key");
	copy(m, "name", status, "name");
	copy(m, "domain", status, "domain");
	json_object_object_add(software, "meshpost", m);
	json_object_object_add(ret, "software", software);
	json_object_put(status);
	json_object_put(identity);
	return ret;
}

static struct json_object *provider_statistics(void)
{
	struct json_object *ret = json_object_new_object();
	struct json_object *status = ask("{\"cmd\":\"status\"}");
	struct json_object *m, *inbox, *in;

	if (!status)
		return ret;
	m = json_object_new_object();
	copy(m, "links", status, "links");
	copy(m, "known_nodes", status, "known_nodes");
	copy(m, "routes", status, "routes");
	copy(m, "uptime", status, "uptime");
	copy(m, "store", status, "store");
	copy(m, "messages", status, "messages");
	if (json_object_object_get_ex(status, "inbox", &in)) {
		inbox = json_object_new_object();
		copy(inbox, "messages", in, "messages");
		copy(inbox, "unread", in, "unread");
		json_object_object_add(m, "inbox", inbox);
	}
	json_object_object_add(ret, "meshpost", m);
	json_object_put(status);
	return ret;
}

const struct respondd_provider_info respondd_providers[] = {
	{"nodeinfo", provider_nodeinfo},
	{"statistics", provider_statistics},
	{0},
};
