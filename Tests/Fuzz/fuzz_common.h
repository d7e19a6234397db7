/* Shared by the C fuzz targets: runs a loaded model once on small generated inputs, through
 * the public C API only (graft_session_output_shape, graft_session_run). */
#ifndef GRAFT_FUZZ_COMMON_H
#define GRAFT_FUZZ_COMMON_H

#include <graft.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_RANK 8
#define FUZZ_MAX_INPUTS 16
#define FUZZ_MAX_OUTPUTS 16
/* Bytes per generated input and per requested output; larger ones are skipped (a fuzzed
 * graph may legitimately ask for big tensors: the limits are Graft's, not the harness's). */
#define FUZZ_MAX_BYTES (1u << 22)

/* Any status is acceptable; what must never happen is a crash, a sanitizer report, or a
 * status outside the documented 0...8. */
static void fuzz_check_status(graft_status s, const char *what) {
    if ((int)s < 0 || (int)s > 8) {
        fprintf(stderr, "%s returned undocumented status %d: %s\n", what, (int)s, graft_last_error());
        abort();
    }
    if (s != GRAFT_STATUS_OK && graft_last_error()[0] == 0) {
        fprintf(stderr, "%s failed with status %d and no message\n", what, (int)s);
        abort();
    }
}

/* Fills `n` elements of `dtype` with small values valid as indices (0, 1, 0, 1, ...). */
static void fuzz_fill(graft_dtype dtype, void *data, size_t n) {
    for (size_t i = 0; i < n; i++) {
        switch (dtype) {
        case GRAFT_DTYPE_FLOAT32: ((float *)data)[i] = (float)(i % 7) * 0.25f - 0.5f; break;
        case GRAFT_DTYPE_INT64: ((int64_t *)data)[i] = (int64_t)(i & 1); break;
        case GRAFT_DTYPE_INT32: ((int32_t *)data)[i] = (int32_t)(i & 1); break;
        default: {
            size_t sz = graft_dtype_size(dtype);
            if (sz) memset((char *)data + i * sz, (int)(i & 1), sz);
        }
        }
    }
}

/* Plans and runs `session` once: each input gets its fixed dims, or `symbolic` for symbolic
 * or unknown ones; every output whose shape is small enough is requested. */
static void fuzz_run_once(const graft_model *model, graft_session *session, int64_t symbolic) {
    size_t n_in = 0, n_out = 0;
    fuzz_check_status(graft_model_input_count(model, &n_in), "graft_model_input_count");
    fuzz_check_status(graft_model_output_count(model, &n_out), "graft_model_output_count");
    if (n_in > FUZZ_MAX_INPUTS || n_out > FUZZ_MAX_OUTPUTS) return;
    graft_tensor in[FUZZ_MAX_INPUTS];
    int64_t in_shape[FUZZ_MAX_INPUTS][FUZZ_MAX_RANK];
    void *in_data[FUZZ_MAX_INPUTS] = {0};
    size_t made = 0;
    int ok = 1;
    for (size_t i = 0; i < n_in && ok; i++, made++) {
        graft_value_info info = {sizeof(graft_value_info), 0, NULL, 0};
        fuzz_check_status(graft_model_input_info(model, i, &info), "graft_model_input_info");
        size_t rank = info.rank < 0 ? 1 : (size_t)info.rank;
        if (rank > FUZZ_MAX_RANK || graft_dtype_size(info.dtype) == 0) { ok = 0; break; }
        size_t count = 1;
        for (size_t a = 0; a < rank; a++) {
            int64_t d = symbolic;
            if (info.rank >= 0) {
                int64_t size = -1;
                fuzz_check_status(graft_model_input_dim(model, i, a, &size, NULL), "graft_model_input_dim");
                if (size >= 0) d = size;
            }
            if (d > 64) { ok = 0; break; }
            in_shape[i][a] = d;
            count *= (size_t)d;
        }
        if (!ok) break;
        size_t bytes = count * graft_dtype_size(info.dtype);
        if (bytes > FUZZ_MAX_BYTES) { ok = 0; break; }
        in_data[i] = calloc(1, bytes ? bytes : 8);
        fuzz_fill(info.dtype, in_data[i], count);
        graft_tensor t = {sizeof(graft_tensor), info.dtype, info.name, rank, in_shape[i], in_data[i], bytes};
        in[i] = t;
    }
    if (ok) {
        graft_tensor out[FUZZ_MAX_OUTPUTS];
        int64_t out_shape[FUZZ_MAX_OUTPUTS][FUZZ_MAX_RANK];
        void *out_data[FUZZ_MAX_OUTPUTS] = {0};
        size_t n_req = 0;
        graft_status s = GRAFT_STATUS_OK;
        for (size_t o = 0; o < n_out && s == GRAFT_STATUS_OK; o++) {
            graft_dtype dt = 0;
            size_t rank = 0;
            s = graft_session_output_shape(session, in, n_in, o, &dt, &rank, out_shape[n_req], FUZZ_MAX_RANK);
            fuzz_check_status(s, "graft_session_output_shape");
            if (s == GRAFT_STATUS_LIMIT_EXCEEDED && rank > FUZZ_MAX_RANK) { s = GRAFT_STATUS_OK; continue; }
            if (s != GRAFT_STATUS_OK) break;
            size_t count = 1;
            int fits = 1;
            for (size_t a = 0; a < rank; a++) {
                if (out_shape[n_req][a] < 0 || out_shape[n_req][a] > (1 << 20)) { fits = 0; break; }
                count *= (size_t)out_shape[n_req][a];
                if (count > FUZZ_MAX_BYTES) { fits = 0; break; }
            }
            size_t bytes = count * graft_dtype_size(dt);
            if (!fits || bytes > FUZZ_MAX_BYTES) continue;
            graft_value_info info = {sizeof(graft_value_info), 0, NULL, 0};
            fuzz_check_status(graft_model_output_info(model, o, &info), "graft_model_output_info");
            out_data[n_req] = calloc(1, bytes ? bytes : 8);
            graft_tensor t = {sizeof(graft_tensor), dt, info.name, rank, out_shape[n_req], out_data[n_req], bytes};
            out[n_req++] = t;
        }
        if (s == GRAFT_STATUS_OK) {
            fuzz_check_status(graft_session_run(session, in, n_in, out, n_req, NULL), "graft_session_run");
        }
        for (size_t o = 0; o < n_req; o++) free(out_data[o]);
    }
    for (size_t i = 0; i < made; i++) free(in_data[i]);
}

#endif
