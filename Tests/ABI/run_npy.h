/* Runs a session on int64 inputs read from .npy files and compares one float32 output with a
 * reference .npy: what the adapter test programs (adapters.c, vlora.c) do for every case. */
#ifndef GRAFT_TEST_RUN_NPY_H
#define GRAFT_TEST_RUN_NPY_H
#include <graft.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "npy.h"

/* Runs `s` on the `count` (<= 8) int64 inputs `names`, each read from inputs_dir/<name>.npy,
   with run options `ro`; returns max |out - ref| over the float32 output `output` (shaped like
   the reference at ref_path), or 1e9 on failure (the message printed unless `quiet`). */
static double run_npy_case(graft_session *s, const char *inputs_dir, const char *const *names, int count,
                           const char *output, const char *ref_path, const graft_run_options *ro, int quiet) {
    npy_array arrays[8];
    graft_tensor in[8];
    char p[4096];
    if (count > 8) return 1e9;
    for (int i = 0; i < count; i++) {
        snprintf(p, sizeof p, "%s/%s.npy", inputs_dir, names[i]);
        if (npy_read(p, &arrays[i]) != 0) {
            printf("cannot read %s\n", p);
            for (int j = 0; j < i; j++) npy_free(&arrays[j]);
            return 1e9;
        }
        graft_tensor t = {sizeof(graft_tensor), GRAFT_DTYPE_INT64, names[i], arrays[i].rank, arrays[i].shape, arrays[i].data, arrays[i].byte_size};
        in[i] = t;
    }
    npy_array ref;
    if (npy_read(ref_path, &ref) != 0) {
        printf("cannot read %s\n", ref_path);
        for (int i = 0; i < count; i++) npy_free(&arrays[i]);
        return 1e9;
    }
    float *out = (float *)malloc(ref.byte_size);
    graft_tensor o = {sizeof(graft_tensor), GRAFT_DTYPE_FLOAT32, output, ref.rank, ref.shape, out, ref.byte_size};
    double worst = 1e9;
    if (graft_session_run(s, in, (size_t)count, &o, 1, ro) == GRAFT_STATUS_OK) {
        worst = 0;
        const float *r = (const float *)ref.data;
        for (size_t i = 0; i < ref.byte_size / 4; i++) {
            double d = fabs((double)out[i] - (double)r[i]);
            if (!(d <= worst)) worst = d;
        }
    } else if (!quiet) {
        printf("run failed: %s\n", graft_last_error());
    }
    free(out);
    for (int i = 0; i < count; i++) npy_free(&arrays[i]);
    npy_free(&ref);
    return worst;
}

#endif
