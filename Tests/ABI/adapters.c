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
#include "run_npy.h"

static char path_buf[4096];
static const char *join(const char *a, const char *b) {
    snprintf(path_buf, sizeof path_buf, "%s/%s", a, b);
    return path_buf;
}

/* Runs bert on the inputs in `dir` (3 int64 inputs) and returns max |out - ref| of
   last_hidden_state, with `ro` as run options. */
static double run_case(graft_session *s, const char *inputs_dir, const char *ref_path, const graft_run_options *ro) {
    static const char *const names[3] = {"input_ids", "attention_mask", "token_type_ids"};
    return run_npy_case(s, inputs_dir, names, 3, "last_hidden_state", ref_path, ro, 0);
}

/* Routed experts through the C ABI on moe_topk2 (make_routing_fixtures.py's references): a
   forced expert, an allow mask, an override, the record, and bad controls. */
static void routing(graft_model *model, const char *fx, const char *inputs) {
    char p[4096], ref[4096];
    const double tol = 1e-4;
    graft_adapter *moe = NULL;
    snprintf(p, sizeof p, "%s/adapters/bert/moe_topk2", fx);
    CHECK(graft_adapter_load(model, p, &moe) == GRAFT_STATUS_OK);
    size_t routers = 0, site = 0, experts = 0, index = 9;
    CHECK(graft_adapter_router_count(moe, &routers) == GRAFT_STATUS_OK && routers == 4);
    CHECK(graft_adapter_router_info(moe, 1, &site, &experts) == GRAFT_STATUS_OK && site == 2 && experts == 4);
    CHECK(graft_adapter_find_router(moe, "layer.1.attention.self.query", &index) == GRAFT_STATUS_OK && index == 2);
    EXPECT(graft_adapter_find_router(moe, "pooler.dense", &index), GRAFT_STATUS_INVALID_ARGUMENT, "no router at a site named");
    EXPECT(graft_adapter_router_info(moe, 4, NULL, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "no router 4");

    graft_session *s = NULL;
    CHECK(graft_session_create(model, NULL, &s) == GRAFT_STATUS_OK);
    CHECK(graft_session_set_adapters(s, &moe, NULL, 1, 0) == GRAFT_STATUS_OK);
    graft_run_options *ro = NULL;
    graft_routing_record *rec = NULL;
    CHECK(graft_run_options_create(&ro) == GRAFT_STATUS_OK && graft_routing_record_create(&rec) == GRAFT_STATUS_OK);
    CHECK(graft_run_options_set_routing_record(ro, rec) == GRAFT_STATUS_OK);
    const uint8_t force1[4] = {0, 1, 0, 0};
    for (size_t r = 0; r < 4; r++) CHECK(graft_run_options_set_experts(ro, moe, r, GRAFT_EXPERTS_FORCE, force1, 4) == GRAFT_STATUS_OK);
    snprintf(ref, sizeof ref, "%s/moe_control/force_e1/last_hidden_state.npy", fx);
    CHECK(run_case(s, inputs, ref, ro) <= tol);
    size_t count = 0;
    graft_routing_entry e;
    memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    CHECK(graft_routing_record_count(rec, &count) == GRAFT_STATUS_OK && count == 4);
    CHECK(graft_routing_record_entry(rec, 3, &e) == GRAFT_STATUS_OK && e.router == 3 && e.site == 8 && e.tokens == 14 &&
          e.experts == 4 && strcmp(e.adapter, "moe_topk2") == 0 && e.weights[0] == 0 && e.weights[1] == 1);
    EXPECT(graft_routing_record_entry(rec, 4, &e), GRAFT_STATUS_INVALID_ARGUMENT, "out of range");
    for (size_t r = 0; r < 4; r++) CHECK(graft_run_options_set_experts(ro, moe, r, GRAFT_EXPERTS_FORCE, NULL, 0) == GRAFT_STATUS_OK);

    /* allow {0, 3} at router 0, deny {2} at router 3. */
    const uint8_t allow03[4] = {1, 0, 0, 1}, deny2[4] = {0, 0, 1, 0};
    CHECK(graft_run_options_set_experts(ro, moe, 0, GRAFT_EXPERTS_ALLOW, allow03, 4) == GRAFT_STATUS_OK);
    CHECK(graft_run_options_set_experts(ro, moe, 3, GRAFT_EXPERTS_DENY, deny2, 4) == GRAFT_STATUS_OK);
    snprintf(ref, sizeof ref, "%s/moe_control/allow_03_deny2/last_hidden_state.npy", fx);
    CHECK(run_case(s, inputs, ref, ro) <= tol);
    const uint8_t none[4] = {0, 0, 0, 0}, all[4] = {1, 1, 1, 1};
    EXPECT(graft_run_options_set_experts(ro, moe, 0, GRAFT_EXPERTS_DENY, allow03, 4), GRAFT_STATUS_INVALID_ARGUMENT, "together leave no expert");
    EXPECT(graft_run_options_set_experts(ro, moe, 1, GRAFT_EXPERTS_ALLOW, none, 4), GRAFT_STATUS_INVALID_ARGUMENT, "names no expert");
    EXPECT(graft_run_options_set_experts(ro, moe, 1, GRAFT_EXPERTS_DENY, all, 4), GRAFT_STATUS_INVALID_ARGUMENT, "denies every expert");
    EXPECT(graft_run_options_set_experts(ro, moe, 1, GRAFT_EXPERTS_ALLOW, all, 3), GRAFT_STATUS_INVALID_ARGUMENT, "has 3 values");
    EXPECT(graft_run_options_set_experts(ro, moe, 1, 7, all, 4), GRAFT_STATUS_INVALID_ARGUMENT, "mode 7");
    EXPECT(graft_run_options_set_experts(ro, moe, 5, GRAFT_EXPERTS_ALLOW, all, 4), GRAFT_STATUS_INVALID_ARGUMENT, "no router 5");
    EXPECT(graft_run_options_set_experts(ro, NULL, 0, GRAFT_EXPERTS_ALLOW, all, 4), GRAFT_STATUS_INVALID_ARGUMENT, "adapter");
    EXPECT(graft_run_options_set_experts(ro, moe, 0, GRAFT_EXPERTS_FORCE, all, 4), GRAFT_STATUS_INVALID_ARGUMENT, "cannot be combined");
    CHECK(graft_run_options_set_experts(ro, moe, 0, GRAFT_EXPERTS_ALLOW, NULL, 0) == GRAFT_STATUS_OK);
    CHECK(graft_run_options_set_experts(ro, moe, 3, GRAFT_EXPERTS_DENY, NULL, 0) == GRAFT_STATUS_OK);

    /* An override of router 1 (14 tokens x 4 experts). */
    npy_array w;
    snprintf(p, sizeof p, "%s/moe_control/override_router1.npy", fx);
    if (npy_read(p, &w) == 0) {
        CHECK(graft_run_options_set_routing(ro, moe, 1, (const float *)w.data, 14, 4) == GRAFT_STATUS_OK);
        snprintf(ref, sizeof ref, "%s/moe_control/override_router1/last_hidden_state.npy", fx);
        CHECK(run_case(s, inputs, ref, ro) <= tol);
        EXPECT(graft_run_options_set_routing(ro, moe, 1, (const float *)w.data, 14, 5), GRAFT_STATUS_SHAPE_MISMATCH, "has 4");
        CHECK(graft_run_options_set_routing(ro, moe, 1, (const float *)w.data, 7, 4) == GRAFT_STATUS_OK);
        snprintf(ref, sizeof ref, "%s/moe_control/override_router1/last_hidden_state.npy", fx);
        CHECK(run_case(s, inputs, ref, ro) > 1);   /* the run fails: 7 tokens, the site sees 14 */
        CHECK(strstr(graft_last_error(), "covers 7 tokens") != NULL);
        npy_free(&w);
    } else {
        CHECK(!"override_router1.npy readable");
    }
    graft_routing_record_free(rec);   /* the options keep it */
    graft_run_options_free(ro);
    graft_session_free(s);
    graft_adapter_free(moe);
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
    snprintf(inputs, sizeof inputs, "%s/bert_torchscript/basic/inputs", fx);
    routing(model, fx, inputs);
    graft_model_free(model);
    printf("adapters: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
