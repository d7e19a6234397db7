/* Per-thread last-error storage for graft_last_error(): one heap string per thread, freed
 * when the thread exits (pthread key destructor). */
#include "cgraft_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_key_t error_key;
static pthread_once_t error_once = PTHREAD_ONCE_INIT;
static int error_key_ok;

static void make_key(void) { error_key_ok = pthread_key_create(&error_key, free) == 0; }

void cgraft_set_last_error(const char *message) {
    pthread_once(&error_once, make_key);
    if (!error_key_ok) return;
    char *old = pthread_getspecific(error_key);
    char *copy = NULL;
    if (message) {
        size_t n = strlen(message);
        copy = malloc(n + 1);
        if (copy) memcpy(copy, message, n + 1);
    }
    pthread_setspecific(error_key, copy);
    free(old);
}

const char *cgraft_last_error(void) {
    pthread_once(&error_once, make_key);
    if (!error_key_ok) return "";
    const char *s = pthread_getspecific(error_key);
    return s ? s : "";
}
