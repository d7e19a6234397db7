/* Deliberately broken plugins for the loader's error paths; one per -D flag:
 *   BAD_MAJOR     built for plugin ABI 2.0          NULL_TABLE  entry returns NULL
 *   NO_ENTRY      exports no graft_plugin_entry     SMALL_TABLE struct_size too small
 *   NULL_LOAD     the table has no load function */
#include <graft_plugin.h>

static int32_t claims(void *ctx, const char *path) { (void)ctx; (void)path; return 0; }
static int32_t load(void *ctx, const char *path, graft_adapter_builder *b) { (void)ctx; (void)path; (void)b; return 0; }

static graft_plugin table = {GRAFT_PLUGIN_ABI_VERSION, sizeof(graft_plugin), "bad", "0", "a broken plugin", claims, load, 0};

#ifdef NO_ENTRY
GRAFT_PLUGIN_EXPORT const graft_plugin *not_the_entry(const graft_host_api *host) { (void)host; return &table; }
#else
GRAFT_PLUGIN_EXPORT const graft_plugin *graft_plugin_entry(const graft_host_api *host) {
    (void)host;
#if defined(NULL_TABLE)
    (void)table;
    return 0;
#else
#if defined(BAD_MAJOR)
    table.abi_version = (2u << 16) | 0u;
#elif defined(SMALL_TABLE)
    table.struct_size = 8;
#elif defined(NULL_LOAD)
    table.load = 0;
#endif
    return &table;
#endif
}
#endif
