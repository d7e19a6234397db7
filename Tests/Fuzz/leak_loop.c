/* Load/run/free loop through the C ABI for leak checking (valgrind --leak-check=full, or
 * LeakSanitizer with -fsanitize=address): N times (default 50) load the model from its file
 * and from memory, create a session, run the fixture inputs, load a PEFT adapter, bind it
 * (unmerged and merged), run, run a mixed batch, and free everything.
 *   leak_loop MODEL.onnx INPUT_DIR ADAPTER_DIR [N]
 * The model loaded from memory is Tests/ABI/passthrough.onnx's bytes (models.h). */
#include <graft.h>
#include "../ABI/npy.h"
#include "../ABI/models.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call) do { graft_status s_ = (call); if (s_ != GRAFT_STATUS_OK) { \
    fprintf(stderr, "%s:%d %s -> %d: %s\n", __FILE__, __LINE__, #call, (int)s_, graft_last_error()); exit(1); } } while (0)

static void run_all(graft_model *model, graft_session *session, npy_array *in, const char **names,
                    size_t n_in, const graft_run_options *ro) {
    graft_tensor inputs[8];
    for (size_t i = 0; i < n_in; i++) {
        graft_tensor t = {sizeof(graft_tensor), in[i].dtype, names[i], in[i].rank, in[i].shape, in[i].data, in[i].byte_size};
        inputs[i] = t;
    }
    size_t n_out = 0;
    CHECK(graft_model_output_count(model, &n_out));
    graft_tensor outputs[8];
    int64_t shapes[8][8];
    void *bufs[8];
    for (size_t o = 0; o < n_out && o < 8; o++) {
        graft_dtype dt;
        size_t rank;
        CHECK(graft_session_output_shape(session, inputs, n_in, o, &dt, &rank, shapes[o], 8));
        size_t count = 1;
        for (size_t a = 0; a < rank; a++) count *= (size_t)shapes[o][a];
        bufs[o] = malloc(count * graft_dtype_size(dt) + 1);
        graft_tensor t = {sizeof(graft_tensor), dt, NULL, rank, shapes[o], bufs[o], count * graft_dtype_size(dt)};
        outputs[o] = t;
    }
    CHECK(graft_session_run(session, inputs, n_in, outputs, n_out, ro));
    for (size_t o = 0; o < n_out && o < 8; o++) free(bufs[o]);
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s MODEL INPUT_DIR ADAPTER_DIR [N]\n", argv[0]); return 2; }
    int n = argc > 4 ? atoi(argv[4]) : 50;
    for (int iter = 0; iter < n; iter++) {
        graft_model *model = NULL;
        CHECK(graft_model_load(argv[1], NULL, &model));
        size_t n_in = 0;
        CHECK(graft_model_input_count(model, &n_in));
        npy_array in[8];
        const char *names[8];
        for (size_t i = 0; i < n_in && i < 8; i++) {
            graft_value_info info = {sizeof(graft_value_info), 0, NULL, 0};
            CHECK(graft_model_input_info(model, i, &info));
            names[i] = info.name;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s.npy", argv[2], info.name);
            if (npy_read(path, &in[i]) != 0) { fprintf(stderr, "cannot read %s\n", path); return 1; }
        }
        graft_session_options *so = NULL;
        CHECK(graft_session_options_create(&so));
        CHECK(graft_session_options_set_threads(so, 2));
        graft_session *session = NULL;
        CHECK(graft_session_create(model, so, &session));
        graft_session_options_free(so);
        run_all(model, session, in, names, n_in, NULL);

        graft_adapter *a = NULL;
        CHECK(graft_adapter_load(model, argv[3], &a));
        CHECK(graft_session_set_adapters(session, &a, NULL, 1, 0));
        run_all(model, session, in, names, n_in, NULL);
        float scale = 0.5f;
        CHECK(graft_session_set_adapters(session, &a, &scale, 1, 1));
        run_all(model, session, in, names, n_in, NULL);
        CHECK(graft_session_set_adapters(session, NULL, NULL, 0, 0));
        graft_run_options *ro = NULL;
        CHECK(graft_run_options_create(&ro));
        graft_adapter *rows[2] = {a, NULL};
        if (in[0].rank > 0 && in[0].shape[0] == 2) {
            CHECK(graft_run_options_set_row_adapters(ro, rows, 2));
            run_all(model, session, in, names, n_in, ro);
        }
        graft_adapter_free(a);
        graft_run_options_free(ro);

        /* A failing load, and an error path through run (missing input). */
        graft_model *bad = NULL;
        if (graft_model_load_from_memory(unsupported_onnx, sizeof unsupported_onnx, NULL, &bad) == GRAFT_STATUS_OK) return 1;
        if (graft_session_run(session, NULL, 0, NULL, 0, NULL) == GRAFT_STATUS_OK) return 1;
        graft_model *mem = NULL;
        CHECK(graft_model_load_from_memory(passthrough_onnx, sizeof passthrough_onnx, NULL, &mem));
        graft_model_free(mem);

        graft_session_free(session);
        graft_model_free(model);
        for (size_t i = 0; i < n_in && i < 8; i++) npy_free(&in[i]);
    }
    printf("leak_loop: %d iterations done\n", n);
    return 0;
}
