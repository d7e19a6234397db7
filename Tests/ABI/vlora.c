/* VLoRA through the C ABI: a GRAFT_VLORA adapter (an ONNX generator of per-image low-rank
 * weights) on the tiny Llama, with the image features as a run option (auxiliary tensor),
 * merged and unmerged; request adapters made with graft_adapter_generate in a mixed batch with
 * a no-image row; composition with a PEFT LoRA; and the errors of bad auxiliary inputs. Each
 * compared with the PyTorch references of Tests/Fixtures/make_vlora_fixtures.py (1e-4).
 * Usage: vlora FIXTURES_DIR   Last line: "vlora: N passed, N failed". C99 and C++17. */
#include <graft.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"

#include "check.h"
#include "run_npy.h"

static const char *fx;

static const char *path(const char *rel) {
    static char buf[4][4096];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 4096, "%s/%s", fx, rel);
    return p;
}

/* A float32 tensor named `name` over an npy array. */
static graft_tensor feature_tensor(const char *name, npy_array *a) {
    graft_tensor t = {sizeof(graft_tensor), GRAFT_DTYPE_FLOAT32, name, a->rank, a->shape, a->data, a->byte_size};
    return t;
}

/* Runs the llama on the 3 int64 inputs in `inputs_dir`; returns max |logits - ref|, or 1e9 on
   failure (the message printed unless quiet). */
static double run_llama(graft_session *s, const char *inputs_dir, const char *ref_path, const graft_run_options *ro, int quiet) {
    static const char *const names[3] = {"input_ids", "attention_mask", "position_ids"};
    return run_npy_case(s, inputs_dir, names, 3, "logits", ref_path, ro, quiet);
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]); return 2; }
    fx = argv[1];
    const double tol = 1e-4;
    const char *basic = path("llama_torchscript/basic/inputs");
    char basic_dir[4096], mixed_dir[4096];
    snprintf(basic_dir, sizeof basic_dir, "%s", basic);
    snprintf(mixed_dir, sizeof mixed_dir, "%s", path("vlora/refs/mixed/inputs"));

    graft_model *model = NULL;
    graft_session *session = NULL;
    graft_adapter *vlora = NULL, *lora = NULL;
    CHECK(graft_model_load(path("llama_torchscript/model.onnx"), NULL, &model) == GRAFT_STATUS_OK);
    CHECK(graft_session_create(model, NULL, &session) == GRAFT_STATUS_OK);
    if (graft_adapter_load(model, path("vlora/llama_qv_r4"), &vlora) != GRAFT_STATUS_OK) {
        printf("FAIL: cannot load the VLoRA adapter: %s\n", graft_last_error());
        return 1;
    }
    CHECK(graft_adapter_load(model, path("adapters/llama/lora_qvo_r8"), &lora) == GRAFT_STATUS_OK);
    CHECK(graft_adapter_aux_input(vlora) != NULL && strcmp(graft_adapter_aux_input(vlora), "image_features") == 0);
    CHECK(graft_adapter_aux_input(lora) == NULL);

    npy_array img0, img1, img2, bad;
    if (npy_read(path("vlora/refs/features/img0.npy"), &img0) != 0 || npy_read(path("vlora/refs/features/img1.npy"), &img1) != 0 ||
        npy_read(path("vlora/refs/features/img2.npy"), &img2) != 0 || npy_read(path("vlora/refs/features/img0.npy"), &bad) != 0) {
        printf("FAIL: cannot read the features\n");
        return 1;
    }
    graft_tensor f0 = feature_tensor("image_features", &img0);

    /* One image for the batch, as a run option: unmerged, merged, auto. */
    graft_run_options *ro = NULL;
    CHECK(graft_run_options_create(&ro) == GRAFT_STATUS_OK);
    CHECK(graft_run_options_set_aux(ro, &f0, 1) == GRAFT_STATUS_OK);
    graft_adapter *bind[2] = {vlora, NULL};
    CHECK(graft_session_set_adapters(session, bind, NULL, 1, 0) == GRAFT_STATUS_OK);
    const char *single = path("vlora/refs/single/logits.npy");
    char single_ref[4096];
    snprintf(single_ref, sizeof single_ref, "%s", single);
    int modes[3] = {GRAFT_MERGE_UNMERGED, GRAFT_MERGE_MERGED, GRAFT_MERGE_AUTO};
    for (int m = 0; m < 3; m++) {
        CHECK(graft_run_options_set_merge(ro, modes[m]) == GRAFT_STATUS_OK);
        double d = run_llama(session, basic_dir, single_ref, ro, 0);
        if (!(d <= tol)) printf("single image, merge mode %d: max|d| %g\n", modes[m], d);
        CHECK(d <= tol);
    }
    EXPECT(graft_run_options_set_merge(ro, 7), GRAFT_STATUS_INVALID_ARGUMENT, "merge mode 7");

    /* Missing auxiliary input; the wrong shape; the wrong dtype; an unknown name. */
    CHECK(run_llama(session, basic_dir, single_ref, NULL, 1) > 1e8);
    CHECK(strstr(graft_last_error(), "auxiliary input 'image_features'") != NULL);
    int64_t wrong_shape[2] = {12, 23};
    graft_tensor fw = {sizeof(graft_tensor), GRAFT_DTYPE_FLOAT32, "image_features", 2, wrong_shape, bad.data, 12 * 23 * 4};
    CHECK(graft_run_options_set_aux(ro, &fw, 1) == GRAFT_STATUS_OK);
    CHECK(run_llama(session, basic_dir, single_ref, ro, 1) > 1e8);
    CHECK(strstr(graft_last_error(), "[12, 23]") != NULL);
    graft_tensor fi = {sizeof(graft_tensor), GRAFT_DTYPE_INT32, "image_features", 2, img0.shape, bad.data, bad.byte_size};
    CHECK(graft_run_options_set_aux(ro, &fi, 1) == GRAFT_STATUS_OK);
    CHECK(run_llama(session, basic_dir, single_ref, ro, 1) > 1e8);
    CHECK(strstr(graft_last_error(), "must be float32") != NULL);
    graft_tensor fn = feature_tensor(NULL, &img0);
    EXPECT(graft_run_options_set_aux(ro, &fn, 1), GRAFT_STATUS_INVALID_ARGUMENT, "name is NULL");
    graft_tensor twice[2] = {f0, f0};
    EXPECT(graft_run_options_set_aux(ro, twice, 2), GRAFT_STATUS_INVALID_ARGUMENT, "more than once");
    CHECK(graft_run_options_set_aux(ro, NULL, 0) == GRAFT_STATUS_OK);

    /* Request adapters (one per image) in a mixed batch with a no-image row. */
    graft_adapter *g1 = NULL, *g2 = NULL, *g0 = NULL;
    graft_tensor t1 = feature_tensor("image_features", &img1), t2 = feature_tensor("image_features", &img2);
    CHECK(graft_adapter_generate(vlora, &t1, 1, 1, &g1) == GRAFT_STATUS_OK);
    CHECK(graft_adapter_generate(vlora, &t2, 1, 2, &g2) == GRAFT_STATUS_OK);
    CHECK(graft_adapter_generate(vlora, &f0, 1, 1, &g0) == GRAFT_STATUS_OK);
    EXPECT(graft_adapter_generate(lora, &f0, 1, 1, &g0), GRAFT_STATUS_INVALID_ARGUMENT, "has no generator");
    CHECK(g0 == NULL);
    CHECK(graft_adapter_generate(vlora, &f0, 1, 1, &g0) == GRAFT_STATUS_OK);
    EXPECT(graft_adapter_generate(vlora, &fw, 1, 1, &g0), GRAFT_STATUS_SHAPE_MISMATCH, "[12, 23]");
    EXPECT(graft_adapter_generate(vlora, &f0, 1, 0, &g0), GRAFT_STATUS_INVALID_ARGUMENT, "thread count");
    EXPECT(graft_adapter_generate(vlora, NULL, 0, 1, &g0), GRAFT_STATUS_INVALID_ARGUMENT, "needs the auxiliary input 'image_features'");
    CHECK(graft_adapter_generate(vlora, &f0, 1, 1, &g0) == GRAFT_STATUS_OK);
    CHECK(graft_adapter_aux_input(g1) == NULL);
    graft_adapter *rows[3] = {g1, NULL, g2};
    graft_run_options *mixed = NULL;
    CHECK(graft_run_options_create(&mixed) == GRAFT_STATUS_OK);
    CHECK(graft_run_options_set_row_adapters(mixed, rows, 3) == GRAFT_STATUS_OK);
    double dm = run_llama(session, mixed_dir, path("vlora/refs/mixed/per_row/logits.npy"), mixed, 0);
    if (!(dm <= tol)) printf("mixed batch (request adapters): max|d| %g\n", dm);
    CHECK(dm <= tol);
    /* The same with the features as one per-row auxiliary tensor [3, N_v, d_v]. */
    size_t one = img1.byte_size;
    float *stack = (float *)calloc(3, one);
    memcpy(stack, img1.data, one);
    memcpy((char *)stack + 2 * one, img2.data, one);
    int64_t stack_shape[3] = {3, img1.shape[0], img1.shape[1]};
    graft_tensor st = {sizeof(graft_tensor), GRAFT_DTYPE_FLOAT32, "image_features", 3, stack_shape, stack, 3 * one};
    graft_adapter *vrows[3] = {vlora, NULL, vlora};
    CHECK(graft_run_options_set_row_adapters(mixed, vrows, 3) == GRAFT_STATUS_OK);
    CHECK(graft_run_options_set_aux(mixed, &st, 1) == GRAFT_STATUS_OK);
    free(stack);   /* copied by set_aux */
    dm = run_llama(session, mixed_dir, path("vlora/refs/mixed/per_row/logits.npy"), mixed, 0);
    if (!(dm <= tol)) printf("mixed batch (per-row aux): max|d| %g\n", dm);
    CHECK(dm <= tol);

    /* Composition: the PEFT LoRA and the image's request adapter, unmerged and merged. */
    graft_adapter *both[2] = {lora, g0};
    for (int merged = 0; merged <= 1; merged++) {
        CHECK(graft_session_set_adapters(session, both, NULL, 2, merged) == GRAFT_STATUS_OK);
        double dc = run_llama(session, basic_dir, path("vlora/refs/compose/logits.npy"), NULL, 0);
        if (!(dc <= tol)) printf("compose merged=%d: max|d| %g\n", merged, dc);
        CHECK(dc <= tol);
    }

    /* Per row: the image's request adapter composed with the LoRA, and a base row. */
    graft_adapter *composed = NULL;
    EXPECT(graft_adapter_compose(both, NULL, 0, &composed), GRAFT_STATUS_INVALID_ARGUMENT, "count is 0");
    graft_adapter *with_generator[1] = {vlora};
    EXPECT(graft_adapter_compose(with_generator, NULL, 1, &composed), GRAFT_STATUS_INVALID_ARGUMENT, "request adapter");
    float cs[2] = {1.0f, 1.0f};
    CHECK(graft_adapter_compose(both, cs, 2, &composed) == GRAFT_STATUS_OK);
    CHECK(composed != NULL && strcmp(graft_adapter_name(composed), "lora_qvo_r8+llama_qv_r4") == 0);
    CHECK(graft_session_set_adapters(session, &composed, NULL, 1, 0) == GRAFT_STATUS_OK);
    double dcomp = run_llama(session, basic_dir, path("vlora/refs/compose/logits.npy"), NULL, 0);
    if (!(dcomp <= tol)) printf("composed adapter: max|d| %g\n", dcomp);
    CHECK(dcomp <= tol);
    graft_adapter_free(composed);

    graft_adapter_free(g0);
    graft_adapter_free(g1);
    graft_adapter_free(g2);
    graft_adapter_free(vlora);
    graft_adapter_free(lora);
    graft_run_options_free(ro);
    graft_run_options_free(mixed);
    graft_session_free(session);
    graft_model_free(model);
    npy_free(&img0);
    npy_free(&img1);
    npy_free(&img2);
    npy_free(&bad);
    printf("vlora: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
