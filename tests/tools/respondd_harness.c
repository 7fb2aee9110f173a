/*
 * Loads respondd providers the way respondd does and prints its answer to
 * requests, for tests/respondd.rs. Follows freifunk-gluon/packages
 * net/respondd/src/respondd.c: chdir into the provider directory, dlopen
 * every "*.so" not starting with '.' as "./NAME" with RTLD_NOW|RTLD_LOCAL,
 * dlsym "respondd_providers", walk the array to the entry whose request is
 * NULL, and for a request merge what each provider returns (providers in
 * file-name order, objects merged key by key, the earlier value kept on a
 * conflict that is not two objects). respondd signs and compresses the
 * result; this prints it plain, one request per line as {"REQUEST": ...}.
 *
 * usage: respondd_harness DIR REQUEST...
 * Exit 2 if a provider returns NULL (respondd would lose the whole answer).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

typedef struct json_object *(*respondd_provider)(void);
struct respondd_provider_info {
	const char *request;
	const respondd_provider provider;
};

struct loaded {
	char name[256];
	const struct respondd_provider_info *info;
};

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct loaded *)a)->name, ((const struct loaded *)b)->name);
}

/* Merges a into b (b wins nothing: on a conflict a's value is kept). */
static struct json_object *merge(struct json_object *a, struct json_object *b)
{
	if (!json_object_is_type(a, json_type_object) || !json_object_is_type(b, json_type_object)) {
		json_object_put(b);
		return a;
	}
	json_object_object_foreach(a, key, va) {
		struct json_object *vb;

		if (json_object_object_get_ex(b, key, &vb))
			json_object_object_add(b, key, merge(json_object_get(va), json_object_get(vb)));
		else
			json_object_object_add(b, key, json_object_get(va));
	}
	json_object_put(a);
	return b;
}

int main(int argc, char **argv)
{
	struct loaded mods[64];
	size_t n = 0;
	struct dirent *ent;
	DIR *dir;

	if (argc < 3 || chdir(argv[1])) {
		fprintf(stderr, "usage: respondd_harness DIR REQUEST...\n");
		return 1;
	}
	dir = opendir(".");
	while (dir && (ent = readdir(dir)) && n < 64) {
		size_t len = strlen(ent->d_name);
		char path[300];
		void *h;

		if (ent->d_name[0] == '.' || len < 4 || strcmp(ent->d_name + len - 3, ".so"))
			continue;
		snprintf(path, sizeof(path), "./%s", ent->d_name);
		h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			fprintf(stderr, "cannot open %s: %s\n", path, dlerror());
			return 1;
		}
		dlerror();
		mods[n].info = dlsym(h, "respondd_providers");
		if (!mods[n].info) {
			fprintf(stderr, "no respondd_providers in %s\n", path);
			return 1;
		}
		snprintf(mods[n].name, sizeof(mods[n].name), "%s", ent->d_name);
		n++;
	}
	if (dir)
		closedir(dir);
	qsort(mods, n, sizeof(mods[0]), by_name);
	for (int r = 2; r < argc; r++) {
		struct json_object *ret = json_object_new_object(), *out = json_object_new_object();

		for (size_t i = 0; i < n; i++) {
			for (const struct respondd_provider_info *p = mods[i].info; p->request; p++) {
				struct json_object *o;

				if (strcmp(p->request, argv[r]))
					continue;
				o = p->provider();
				if (!o) {
					fprintf(stderr, "%s: provider for %s returned NULL\n", mods[i].name, argv[r]);
					return 2;
				}
				ret = merge(o, ret);
			}
		}
		json_object_object_add(out, argv[r], ret);
		puts(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN));
		json_object_put(out);
	}
	return 0;
}
