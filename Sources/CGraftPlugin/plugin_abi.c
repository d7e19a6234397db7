/* CGraftPlugin: shows include/graft_plugin.h to Swift (the host in GraftCore and Swift plugins). */
