/* Tiny .npy reader for the ABI tests (C99 and C++17): version 1/2 headers, little-endian
 * C-order arrays of f4, f8, i8, i4, u1, i1, b1. Not a general parser. */
#ifndef GRAFT_TEST_NPY_H
#define GRAFT_TEST_NPY_H

#include <graft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct npy_array {
    graft_dtype dtype;
    size_t rank;
    int64_t shape[16];
    void *data;
    size_t byte_size;
} npy_array;

/* Reads `path` into `out` (data malloc'd; free with npy_free). Returns 0 on success. */
static int npy_read(const char *path, npy_array *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    unsigned char pre[10];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) { fclose(f); return -1; }
    size_t hlen;
    if (pre[6] == 1) {
        hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
    } else {
        unsigned char more[2];
        if (fread(more, 1, 2, f) != 2) { fclose(f); return -1; }
        hlen = (size_t)pre[8] | ((size_t)pre[9] << 8) | ((size_t)more[0] << 16) | ((size_t)more[1] << 24);
    }
    char *h = (char *)malloc(hlen + 1);
    if (!h || fread(h, 1, hlen, f) != hlen) { free(h); fclose(f); return -1; }
    h[hlen] = 0;
    const char *d = strstr(h, "'descr':");
    const char *fo = strstr(h, "'fortran_order':");
    const char *sh = strstr(h, "'shape':");
    if (!d || !fo || !sh || strncmp(fo + 16, " False", 6) != 0) { free(h); fclose(f); return -1; }
    d = strchr(d + 8, '\'');
    if (!d) { free(h); fclose(f); return -1; }
    size_t esize = 0;
    if (!strncmp(d, "'<f4'", 5)) { out->dtype = GRAFT_DTYPE_FLOAT32; esize = 4; }
    else if (!strncmp(d, "'<f8'", 5)) { out->dtype = GRAFT_DTYPE_FLOAT64; esize = 8; }
    else if (!strncmp(d, "'<i8'", 5)) { out->dtype = GRAFT_DTYPE_INT64; esize = 8; }
    else if (!strncmp(d, "'<i4'", 5)) { out->dtype = GRAFT_DTYPE_INT32; esize = 4; }
    else if (!strncmp(d, "'|u1'", 5)) { out->dtype = GRAFT_DTYPE_UINT8; esize = 1; }
    else if (!strncmp(d, "'|i1'", 5)) { out->dtype = GRAFT_DTYPE_INT8; esize = 1; }
    else if (!strncmp(d, "'|b1'", 5)) { out->dtype = GRAFT_DTYPE_BOOL; esize = 1; }
    else { free(h); fclose(f); return -1; }
    const char *p = strchr(sh, '(');
    size_t count = 1;
    if (!p) { free(h); fclose(f); return -1; }
    p++;
    while (*p && *p != ')') {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p) { p++; continue; }
        if (out->rank == 16) { free(h); fclose(f); return -1; }
        out->shape[out->rank++] = v;
        count *= (size_t)v;
        p = end;
    }
    free(h);
    out->byte_size = count * esize;
    out->data = malloc(out->byte_size ? out->byte_size : 1);
    if (!out->data || fread(out->data, 1, out->byte_size, f) != out->byte_size) {
        free(out->data); out->data = NULL; fclose(f); return -1;
    }
    fclose(f);
    return 0;
}

static void npy_free(npy_array *a) { free(a->data); a->data = NULL; }

#endif
