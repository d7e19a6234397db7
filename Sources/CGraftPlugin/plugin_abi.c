/* CGraftPlugin: shows include/graft_plugin.h to Swift (the host in GraftCore and Swift plugins)
   and keeps the per-thread error message plugins report through graft_host_api.set_error. */
#define _GNU_SOURCE
#include "cgraft_plugin_host.h"
#include <dlfcn.h>
#include <stdio.h>

static _Thread_local char plugin_error[2048];

void cgraft_plugin_set_error(const char *message) {
    snprintf(plugin_error, sizeof plugin_error, "%s", message ? message : "");
}

const char *cgraft_plugin_error(void) { return plugin_error; }

void cgraft_plugin_clear_error(void) { plugin_error[0] = 0; }

const char *cgraft_binary_path(void) {
    Dl_info info;
    if (dladdr((const void *)&cgraft_binary_path, &info) == 0 || info.dli_fname == NULL) return NULL;
    return info.dli_fname;
}
