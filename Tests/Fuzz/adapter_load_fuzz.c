/* libFuzzer target (b): adapter loading. The input is split at the first occurrence of
 * SPLIT into an adapter_config.json (before) and an adapter_model.safetensors (after; empty
 * when there is no SPLIT); both are written into a temporary directory and graft_adapter_load
 * is called on it for the fixture model (GRAFT_FUZZ_MODEL, default bert_dynamo). The plugins
 * (LoRA, MoE-LoRA, IA3) are found beside libGraftC.so or through GRAFT_PLUGIN_PATH. An adapter that
 * loads is bound to a session (unmerged, then merged) and run once on a [1, 4] batch. */
#include "fuzz_common.h"
#include <unistd.h>

#define SPLIT "\n@@SAFETENSORS@@\n"

static graft_model *model;
static graft_session *session;
static char dir[64];
static char config_path[128], weights_path[128];

static void write_file(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); abort(); }
    if (size && fwrite(data, 1, size, f) != size) { perror(path); abort(); }
    fclose(f);
}

static void cleanup(void) {
    unlink(config_path);
    unlink(weights_path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *path = getenv("GRAFT_FUZZ_MODEL");
    if (!path) path = "Tests/Fixtures/bert_dynamo/model.onnx";
    if (graft_model_load(path, NULL, &model) != GRAFT_STATUS_OK) {
        fprintf(stderr, "adapter_load_fuzz: cannot load %s: %s\n", path, graft_last_error());
        abort();
    }
    if (graft_session_create(model, NULL, &session) != GRAFT_STATUS_OK) abort();
    size_t plugins = 0;
    graft_plugin_count(&plugins);
    if (plugins == 0) { fprintf(stderr, "adapter_load_fuzz: no plugins found\n"); abort(); }
    strcpy(dir, "/tmp/graft-fuzz-adapter-XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); abort(); }
    snprintf(config_path, sizeof config_path, "%s/adapter_config.json", dir);
    snprintf(weights_path, sizeof weights_path, "%s/adapter_model.safetensors", dir);
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t split = size, rest = size;
    size_t sl = sizeof(SPLIT) - 1;
    for (size_t i = 0; i + sl <= size; i++) {
        if (memcmp(data + i, SPLIT, sl) == 0) { split = i; rest = i + sl; break; }
    }
    write_file(config_path, data, split);
    write_file(weights_path, data + rest, size - rest);
    graft_adapter *a = NULL;
    graft_status s = graft_adapter_load(model, dir, &a);
    fuzz_check_status(s, "graft_adapter_load");
    if (s != GRAFT_STATUS_OK) {
        if (a) { fprintf(stderr, "failed load left an adapter handle\n"); abort(); }
        return 0;
    }
    for (int merged = 0; merged <= 1; merged++) {
        s = graft_session_set_adapters(session, &a, NULL, 1, merged);
        fuzz_check_status(s, "graft_session_set_adapters");
        if (s == GRAFT_STATUS_OK) fuzz_run_once(model, session, merged ? 1 : 4);
    }
    fuzz_check_status(graft_session_set_adapters(session, NULL, NULL, 0, 0), "graft_session_set_adapters(0)");
    graft_adapter_free(a);
    return 0;
}
