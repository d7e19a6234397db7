/* libFuzzer target (a): graft_model_load_from_memory on the input bytes; when the model
 * loads, a session plans and runs it once on small generated inputs (symbolic dims = 2). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    graft_model *model = NULL;
    graft_status s = graft_model_load_from_memory(data, size, NULL, &model);
    fuzz_check_status(s, "graft_model_load_from_memory");
    if (s != GRAFT_STATUS_OK) {
        if (model) { fprintf(stderr, "failed load left a model handle\n"); abort(); }
        return 0;
    }
    graft_session *session = NULL;
    s = graft_session_create(model, NULL, &session);
    fuzz_check_status(s, "graft_session_create");
    if (s == GRAFT_STATUS_OK) {
        fuzz_run_once(model, session, 2);
        graft_session_free(session);
    }
    graft_model_free(model);
    return 0;
}
