/*
 * minimal.c — the smallest complete Graft adapter plugin, in C99 on graft_plugin.h alone.
 *
 * It claims a directory that contains `minimal.json`, a file such as
 *
 *     { "site": "encoder.layer.0.attention.self.query", "scale": 0.5 }
 *
 * and adds one fixed rank-1 term at that site: A = [1/in … 1/in] (the mean of the input row),
 * B = [1 … 1], so every output gains scale · mean(x). The "parser" below only looks for the two
 * keys; a real plugin should parse JSON properly (see Plugins/examples/ia3/ia3.c).
 *
 * Build:  cc -std=c99 -shared -fPIC -fvisibility=hidden -I include minimal.c -o libminimal.so
 */
#include "graft_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads at most cap-1 bytes of dir/minimal.json into buf; returns 0 when absent. */
static int read_config(const char *dir, char *buf, size_t cap) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/minimal.json", dir) >= (int)sizeof path) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return 1;
}

/* Copies the string value of "key" (no escapes) into out; returns 0 when absent. */
static int find_string(const char *json, const char *key, char *out, size_t cap) {
    const char *p = strstr(json, key);
    if (!p) return 0;
    p = strchr(p + strlen(key), ':');
    if (!p) return 0;
    p = strchr(p, '"');
    if (!p) return 0;
    const char *end = strchr(++p, '"');
    if (!end || (size_t)(end - p) >= cap) return 0;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
    return 1;
}

static int32_t minimal_claims(void *ctx, const char *path) {
    (void)ctx;
    char buf[4096];
    return read_config(path, buf, sizeof buf);
}

static int32_t minimal_load(void *ctx, const char *path, graft_adapter_builder *builder) {
    const graft_host_api *host = ctx; /* graft_plugin_entry stored the host table in ctx */
    char json[4096], site_name[512];
    if (!read_config(path, json, sizeof json)) {
        host->set_error("minimal: cannot read minimal.json");
        return GRAFT_PLUGIN_IO;
    }
    if (!find_string(json, "\"site\"", site_name, sizeof site_name)) {
        host->set_error("minimal: minimal.json has no \"site\" string");
        return GRAFT_PLUGIN_INVALID_DATA;
    }
    float scale = 1.0f;
    const char *s = strstr(json, "\"scale\"");
    if (s && (s = strchr(s, ':')) != NULL) scale = strtof(s + 1, NULL);

    size_t site;
    int32_t status = host->find_site(builder, site_name, &site);
    if (status != GRAFT_PLUGIN_OK) return status; /* the host set a message naming close sites */

    graft_site_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    status = host->site_info(builder, site, &info);
    if (status != GRAFT_PLUGIN_OK) return status;

    /* A [1 × in], B [out × 1], both in one host allocation. */
    float *a = host->alloc((size_t)(info.in_features + info.out_features) * sizeof(float));
    if (!a) {
        host->set_error("minimal: out of memory");
        return GRAFT_PLUGIN_LIMIT_EXCEEDED;
    }
    float *b = a + info.in_features;
    for (int64_t i = 0; i < info.in_features; i++) a[i] = 1.0f / (float)info.in_features;
    for (int64_t o = 0; o < info.out_features; o++) b[o] = 1.0f;

    graft_lowrank_term term;
    memset(&term, 0, sizeof term);
    term.struct_size = sizeof term;
    term.site = (uint32_t)site;
    term.rank = 1;
    term.a = a;
    term.b = b;
    term.scale = scale;
    term.activation = GRAFT_ACTIVATION_IDENTITY;
    status = host->add_lowrank(builder, &term); /* the host copies A and B */
    host->free(a);
    if (status == GRAFT_PLUGIN_OK) host->set_name(builder, "minimal");
    return status;
}

GRAFT_PLUGIN_EXPORT const graft_plugin *graft_plugin_entry(const graft_host_api *host) {
    if ((host->abi_version >> 16) != GRAFT_PLUGIN_ABI_MAJOR ||
        host->struct_size < sizeof(graft_host_api)) {
        if (host->log) host->log(GRAFT_LOG_ERROR, "minimal: host ABI major or table size differs");
        return NULL;
    }
    /* One table per call, carrying this host in ctx (two hosts in one process, such as a test's
       fake host and the real one, each get theirs). Never freed: the plugin is never unloaded. */
    graft_plugin *table = malloc(sizeof *table);
    if (!table) return NULL;
    memset(table, 0, sizeof *table);
    table->abi_version = GRAFT_PLUGIN_ABI_VERSION;
    table->struct_size = sizeof *table;
    table->name = "minimal";
    table->version = "1.0";
    table->description = "adds a fixed rank-1 term at the site named in minimal.json";
    table->claims = minimal_claims;
    table->load = minimal_load;
    table->ctx = (void *)host;
    return table;
}
