/* Host-side helpers for the plugin ABI that Swift cannot express directly. Not part of the
   plugin ABI: plugins include graft_plugin.h only. */
#ifndef CGRAFT_PLUGIN_HOST_H
#define CGRAFT_PLUGIN_HOST_H
#include <stddef.h>
#include <stdint.h>

/* Per-thread message a plugin set with graft_host_api.set_error (empty when none). */
void cgraft_plugin_set_error(const char *message);
const char *cgraft_plugin_error(void);
void cgraft_plugin_clear_error(void);

/* Path of the binary (executable or shared library) this code was linked into, or NULL. */
const char *cgraft_binary_path(void);

#endif
