/* Loads a fixture model through libgraft, runs one case and compares every output with the
 * reference .npy files:  run_fixture MODEL CASE_DIR REF_SUBDIR TOLERANCE THREADS
 * (CASE_DIR holds inputs/<name>.npy and REF_SUBDIR/<name>.npy). Prints the model's inputs
 * and outputs and one line per output; exits 0 when every output is within tolerance.
 * Compiled as C99 and as C++17. */
#include <graft.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"

static int fail(const char *what, graft_status s) {
    fprintf(stderr, "%s: %s (%d): %s\n", what, graft_status_string(s), (int)s, graft_last_error());
    return 1;
}

static void print_value(const graft_model *model, size_t i, int output) {
    graft_value_info info;
    info.struct_size = sizeof info;
    if ((output ? graft_model_output_info : graft_model_input_info)(model, i, &info) != GRAFT_STATUS_OK) return;
    printf("  %s %s dtype=%d [", output ? "output" : "input", info.name, (int)info.dtype);
    for (int64_t a = 0; a < info.rank; a++) {
        int64_t size;
        const char *symbol;
        (output ? graft_model_output_dim : graft_model_input_dim)(model, i, (size_t)a, &size, &symbol);
        if (symbol) printf("%s%s", a ? ", " : "", symbol);
        else if (size >= 0) printf("%s%lld", a ? ", " : "", (long long)size);
        else printf("%s?", a ? ", " : "");
    }
    printf("]\n");
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s MODEL CASE_DIR REF_SUBDIR TOLERANCE THREADS\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1], *case_dir = argv[2], *ref = argv[3];
    double tolerance = atof(argv[4]);
    int threads = atoi(argv[5]);
    if (graft_abi_version() != GRAFT_ABI_VERSION) {
        fprintf(stderr, "ABI mismatch: library %u, header %d\n", graft_abi_version(), GRAFT_ABI_VERSION);
        return 1;
    }
    printf("graft %s (ABI %u)\n", graft_version(), graft_abi_version());

    graft_model *model = NULL;
    graft_status s = graft_model_load(model_path, NULL, &model);
    if (s != GRAFT_STATUS_OK) return fail("graft_model_load", s);
    size_t n_in = 0, n_out = 0;
    graft_model_input_count(model, &n_in);
    graft_model_output_count(model, &n_out);
    printf("%s: %zu inputs, %zu outputs\n", model_path, n_in, n_out);
    for (size_t i = 0; i < n_in; i++) print_value(model, i, 0);
    for (size_t i = 0; i < n_out; i++) print_value(model, i, 1);

    graft_session_options *so = NULL;
    graft_session *session = NULL;
    if ((s = graft_session_options_create(&so)) != GRAFT_STATUS_OK) return fail("options", s);
    if ((s = graft_session_options_set_threads(so, threads)) != GRAFT_STATUS_OK) return fail("threads", s);
    s = graft_session_create(model, so, &session);
    graft_session_options_free(so);
    if (s != GRAFT_STATUS_OK) return fail("graft_session_create", s);

    /* Inputs: inputs/<name>.npy, passed by name. */
    npy_array *in_arrays = (npy_array *)calloc(n_in, sizeof(npy_array));
    graft_tensor *inputs = (graft_tensor *)calloc(n_in, sizeof(graft_tensor));
    char path[4096];
    for (size_t i = 0; i < n_in; i++) {
        graft_value_info info;
        info.struct_size = sizeof info;
        graft_model_input_info(model, i, &info);
        snprintf(path, sizeof path, "%s/inputs/%s.npy", case_dir, info.name);
        if (npy_read(path, &in_arrays[i]) != 0) { fprintf(stderr, "cannot read %s\n", path); return 1; }
        graft_tensor t = {sizeof(graft_tensor), in_arrays[i].dtype, info.name, in_arrays[i].rank,
                          in_arrays[i].shape, in_arrays[i].data, in_arrays[i].byte_size};
        inputs[i] = t;
    }

    /* Outputs: query shapes, allocate, run into them (name NULL: by position). */
    graft_tensor *outputs = (graft_tensor *)calloc(n_out, sizeof(graft_tensor));
    int64_t (*shapes)[16] = (int64_t (*)[16])calloc(n_out, sizeof *shapes);
    for (size_t k = 0; k < n_out; k++) {
        graft_dtype dtype;
        size_t rank;
        s = graft_session_output_shape(session, inputs, n_in, k, &dtype, &rank, shapes[k], 16);
        if (s != GRAFT_STATUS_OK) return fail("graft_session_output_shape", s);
        size_t count = 1;
        for (size_t a = 0; a < rank; a++) count *= (size_t)shapes[k][a];
        size_t bytes = count * graft_dtype_size(dtype);
        graft_tensor t = {sizeof(graft_tensor), dtype, NULL, rank, shapes[k], malloc(bytes ? bytes : 1), bytes};
        outputs[k] = t;
    }
    graft_run_options *ro = NULL;
    graft_run_options_create(&ro);
    s = graft_session_run(session, inputs, n_in, outputs, n_out, ro);
    graft_run_options_free(ro);
    if (s != GRAFT_STATUS_OK) return fail("graft_session_run", s);

    int bad = 0;
    for (size_t k = 0; k < n_out; k++) {
        graft_value_info info;
        info.struct_size = sizeof info;
        graft_model_output_info(model, k, &info);
        npy_array expect;
        snprintf(path, sizeof path, "%s/%s/%s.npy", case_dir, ref, info.name);
        if (npy_read(path, &expect) != 0) { fprintf(stderr, "cannot read %s\n", path); return 1; }
        int same_shape = expect.rank == outputs[k].rank && expect.dtype == outputs[k].dtype &&
                         memcmp(expect.shape, outputs[k].shape, expect.rank * sizeof(int64_t)) == 0;
        double max_diff = 0;
        if (same_shape && expect.dtype == GRAFT_DTYPE_FLOAT32) {
            const float *a = (const float *)outputs[k].data, *b = (const float *)expect.data;
            for (size_t j = 0; j < expect.byte_size / 4; j++) {
                double d = fabs((double)a[j] - (double)b[j]);
                if (!(d <= max_diff)) max_diff = d;   /* NaN propagates */
            }
        } else if (same_shape) {
            max_diff = memcmp(outputs[k].data, expect.data, expect.byte_size) ? INFINITY : 0;
        }
        int ok = same_shape && max_diff <= tolerance;
        printf("  %s: %s max_abs_diff=%g %s\n", info.name, same_shape ? "shape ok" : "SHAPE DIFFERS",
               max_diff, ok ? "ok" : "FAIL");
        if (!ok) bad = 1;
        npy_free(&expect);
        free(outputs[k].data);
    }
    for (size_t i = 0; i < n_in; i++) npy_free(&in_arrays[i]);
    free(in_arrays); free(inputs); free(outputs); free(shapes);
    graft_session_free(session);
    graft_model_free(model);
    return bad;
}
