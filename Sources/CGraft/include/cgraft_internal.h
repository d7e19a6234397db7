/* Internal helpers for libgraft's Swift implementation (not installed, not exported: the
 * version script keeps only graft_* symbols). */
#ifndef CGRAFT_INTERNAL_H
#define CGRAFT_INTERNAL_H

#include <stddef.h>

/* Stores a copy of `message` (NULL clears it) as the calling thread's last error. */
void cgraft_set_last_error(const char *message);

/* The calling thread's last error; "" when none. Valid until the next cgraft_set_last_error
 * on this thread. */
const char *cgraft_last_error(void);

#endif
