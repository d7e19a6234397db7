/* Adapters through the C ABI: the plugin loader's error paths on deliberately broken plugins,
 * then a PEFT LoRA and (IA)3 loaded by the plugins found beside libgraft, bound with scales,
 * merged, and as a mixed batch, each compared with the PyTorch + PEFT references.
 * Usage: adapters FIXTURES_DIR BAD_PLUGIN_DIR   Last line: "adapters: N passed, N failed".
 * Compiled as C99 and as C++17. */
#include <graft.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"

#include "check.h"

static char path_buf[4096];
static const char *join(const char *a, const char *b) {
    snprintf(path_buf, sizeof path_buf, "%s/%s", a, b);
    return path_buf;
}

/* Runs bert on the inputs in `dir` (3 int64 inputs) and returns max |out - ref| of
   last_hidden_state, with `ro` as run options. */
static double run_case(graft_session *s, const char *inputs_dir, const char *ref_path, const graft_run_options *ro) {
    static const char *names[3] = {"input_ids", "attention_mask", "token_type_ids"};
    npy_array arrays[3];
    graft_tensor in[3];
    char p[4096];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s.npy", inputs_dir, names[i]);
        if (npy_read(p, &arrays[i]) != 0) { printf("cannot read %s\n", p); return 1e9; }
        graft_tensor t = {sizeof(graft_tensor), GRAFT_DTYPE_INT64, names[i], arrays[i].rank, arrays[i].shape, arrays[i].data, arrays[i].byte_size};
        in[i] = t;
    }
    npy_array ref;
    if (npy_read(ref_path, &ref) != 0) { printf("cannot read %s\n", ref_path); return 1e9; }
    float *out = (float *)malloc(ref.byte_size);
    graft_tensor o = {sizeof(graft_tensor), GRAFT_DTYPE_FLOAT32, "last_hidden_state", ref.rank, ref.shape, out, ref.byte_size};
    double worst = 1e9;
    if (graft_session_run(s, in, 3, &o, 1, ro) == GRAFT_STATUS_OK) {
        worst = 0;
        const float *r = (const float *)ref.data;
        for (size_t i = 0; i < ref.byte_size / 4; i++) {
            double d = fabs((double)out[i] - (double)r[i]);
            if (!(d <= worst)) worst = d;
        }
    } else {
        printf("run failed: %s\n", graft_last_error());
    }
    free(out);
    for (int i = 0; i < 3; i++) npy_free(&arrays[i]);
    npy_free(&ref);
    return worst;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s FIXTURES_DIR BAD_PLUGIN_DIR\n", argv[0]); return 2; }
    const char *fx = argv[1], *bad = argv[2];
    char a[2048], b[2048], refs[2048];

    /* The loader refuses broken plugins with a clear message. */
    EXPECT(graft_plugin_load(join(bad, "bad_major.so")), GRAFT_STATUS_UNSUPPORTED, "ABI 2.0; this Graft speaks 1.");
    EXPECT(graft_plugin_load(join(bad, "no_entry.so")), GRAFT_STATUS_INVALID_ARGUMENT, "exports no graft_plugin_entry");
    EXPECT(graft_plugin_load(join(bad, "null_table.so")), GRAFT_STATUS_INVALID_ARGUMENT, "returned NULL");
    EXPECT(graft_plugin_load(join(bad, "small_table.so")), GRAFT_STATUS_INVALID_ARGUMENT, "struct_size 8");
    EXPECT(graft_plugin_load(join(bad, "null_load.so")), GRAFT_STATUS_INVALID_ARGUMENT, "NULL");
    EXPECT(graft_plugin_load(join(fx, "bert_dynamo/model.onnx")), GRAFT_STATUS_IO, "cannot load plugin");

    /* The LoRA and (IA)3 plugins are found beside libgraft. */
    size_t n = 0;
    int have_lora = 0, have_ia3 = 0;
    CHECK(graft_plugin_count(&n) == GRAFT_STATUS_OK);
    for (size_t i = 0; i < n; i++) {
        const char *name = NULL;
        CHECK(graft_plugin_info(i, &name, NULL, NULL) == GRAFT_STATUS_OK);
        if (name && strcmp(name, "lora") == 0) have_lora = 1;
        if (name && strcmp(name, "ia3") == 0) have_ia3 = 1;
    }
    CHECK(have_lora && have_ia3);

    graft_model *model = NULL;
    CHECK(graft_model_load(join(fx, "bert_dynamo/model.onnx"), NULL, &model) == GRAFT_STATUS_OK);
    size_t sites = 0;
    const char *site0 = NULL;
    int64_t fin = 0, fout = 0;
    CHECK(graft_model_site_count(model, &sites) == GRAFT_STATUS_OK && sites == 13);
    CHECK(graft_model_site_info(model, 0, &site0, &fin, &fout) == GRAFT_STATUS_OK && fin == 64 && fout == 64 &&
          strstr(site0, "encoder.layer.0.attention.self.query") != NULL);

    graft_adapter *lora = NULL, *rslora = NULL, *ia3 = NULL;
    snprintf(a, sizeof a, "%s/adapters/bert/lora_qv_r8", fx);
    snprintf(b, sizeof b, "%s/adapters/bert/rslora_r16", fx);
    snprintf(refs, sizeof refs, "%s/adapters/bert/refs", fx);
    CHECK(graft_adapter_load(model, a, &lora) == GRAFT_STATUS_OK && strcmp(graft_adapter_name(lora), "lora_qv_r8") == 0);
    CHECK(graft_adapter_load(model, b, &rslora) == GRAFT_STATUS_OK);
    snprintf(b, sizeof b, "%s/adapters/bert/ia3", fx);
    CHECK(graft_adapter_load(model, b, &ia3) == GRAFT_STATUS_OK);

    graft_session *s = NULL;
    CHECK(graft_session_create(model, NULL, &s) == GRAFT_STATUS_OK);
    char inputs[4096], ref[4096];
    snprintf(inputs, sizeof inputs, "%s/bert_torchscript/basic/inputs", fx);
    const double tol = 1e-4;

    /* Each case against PEFT: base, one adapter, merged, two with scales, (IA)3, mixed batch. */
    snprintf(ref, sizeof ref, "%s/base/last_hidden_state.npy", refs);
    CHECK(run_case(s, inputs, ref, NULL) <= tol);
    CHECK(graft_session_set_adapters(s, &lora, NULL, 1, 0) == GRAFT_STATUS_OK);
    snprintf(ref, sizeof ref, "%s/lora_qv_r8/last_hidden_state.npy", refs);
    CHECK(run_case(s, inputs, ref, NULL) <= tol);
    CHECK(graft_session_set_adapters(s, &lora, NULL, 1, 1) == GRAFT_STATUS_OK);
    CHECK(run_case(s, inputs, ref, NULL) <= tol);
    graft_adapter *both[2] = {lora, rslora};
    float scales[2] = {1.0f, 0.5f};
    CHECK(graft_session_set_adapters(s, both, scales, 2, 0) == GRAFT_STATUS_OK);
    snprintf(ref, sizeof ref, "%s/two_adapters/last_hidden_state.npy", refs);
    CHECK(run_case(s, inputs, ref, NULL) <= tol);
    CHECK(graft_session_set_adapters(s, &ia3, NULL, 1, 0) == GRAFT_STATUS_OK);
    snprintf(ref, sizeof ref, "%s/ia3/last_hidden_state.npy", refs);
    CHECK(run_case(s, inputs, ref, NULL) <= tol);
    float nan_scale = NAN;
    EXPECT(graft_session_set_adapters(s, &lora, &nan_scale, 1, 0), GRAFT_STATUS_INVALID_ARGUMENT, "not finite");

    graft_run_options *ro = NULL;
    CHECK(graft_run_options_create(&ro) == GRAFT_STATUS_OK);
    graft_adapter *rows[3] = {lora, NULL, rslora};
    CHECK(graft_run_options_set_row_adapters(ro, rows, 3) == GRAFT_STATUS_OK);
    /* Freeing the caller's references is safe: the session and run options keep them. */
    graft_adapter_free(lora);
    graft_adapter_free(rslora);
    graft_adapter_free(ia3);
    snprintf(inputs, sizeof inputs, "%s/mixed/inputs", refs);
    snprintf(ref, sizeof ref, "%s/mixed/last_hidden_state.npy", refs);
    CHECK(run_case(s, inputs, ref, ro) <= tol);

    graft_run_options_free(ro);
    graft_session_free(s);
    graft_model_free(model);
    printf("adapters: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
