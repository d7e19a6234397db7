/* Calls every function of graft.h and exercises every error path: NULL pointers, bad
 * struct_size, bad dtype/rank/shape/byte_size/alignment, unknown/missing/repeated names,
 * out-of-range indices, small buffers, unreadable and malformed models, unsupported operators,
 * refused external data. Each check prints on failure; the last line is
 * "errors: N passed, N failed". Compiled as C99 and as C++17.
 * Usage: errors FIXTURES_DIR  (Tests/Fixtures, for the external-data model) */
#include <graft.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models.h"

/* The layout of every caller-filled struct, frozen (LP64). */
#ifdef __cplusplus
#define STATIC_ASSERT static_assert
#else
#define STATIC_ASSERT _Static_assert
#endif
STATIC_ASSERT(sizeof(graft_tensor) == 48, "graft_tensor size");
STATIC_ASSERT(offsetof(graft_tensor, struct_size) == 0, "graft_tensor.struct_size");
STATIC_ASSERT(offsetof(graft_tensor, dtype) == 4, "graft_tensor.dtype");
STATIC_ASSERT(offsetof(graft_tensor, name) == 8, "graft_tensor.name");
STATIC_ASSERT(offsetof(graft_tensor, rank) == 16, "graft_tensor.rank");
STATIC_ASSERT(offsetof(graft_tensor, shape) == 24, "graft_tensor.shape");
STATIC_ASSERT(offsetof(graft_tensor, data) == 32, "graft_tensor.data");
STATIC_ASSERT(offsetof(graft_tensor, byte_size) == 40, "graft_tensor.byte_size");
STATIC_ASSERT(sizeof(graft_value_info) == 24, "graft_value_info size");
STATIC_ASSERT(offsetof(graft_value_info, struct_size) == 0, "graft_value_info.struct_size");
STATIC_ASSERT(offsetof(graft_value_info, dtype) == 4, "graft_value_info.dtype");
STATIC_ASSERT(offsetof(graft_value_info, name) == 8, "graft_value_info.name");
STATIC_ASSERT(offsetof(graft_value_info, rank) == 16, "graft_value_info.rank");
STATIC_ASSERT(sizeof(graft_status) == 4 && sizeof(graft_dtype) == 4, "status and dtype are int32");

#include "check.h"

static graft_tensor tensor(graft_dtype dtype, const char *name, size_t rank, const int64_t *shape,
                           void *data, size_t bytes) {
    graft_tensor t = {sizeof(graft_tensor), dtype, name, rank, shape, data, bytes};
    return t;
}

int main(int argc, char **argv) {
    const char *fixtures = argc > 1 ? argv[1] : "Tests/Fixtures";
    char path[4096];

    /* Versions, status strings, dtype sizes. */
    CHECK(strcmp(graft_version(), GRAFT_VERSION_STRING) == 0);
    CHECK(graft_abi_version() == GRAFT_ABI_VERSION);
    CHECK(strcmp(graft_last_error(), "") == 0);
    CHECK(strcmp(graft_status_string(GRAFT_STATUS_OK), "ok") == 0);
    CHECK(strcmp(graft_status_string(GRAFT_STATUS_INVALID_ARGUMENT), "invalid argument") == 0);
    CHECK(strcmp(graft_status_string(GRAFT_STATUS_INTERNAL), "internal error") == 0);
    CHECK(strcmp(graft_status_string(9), "unknown status") == 0);
    CHECK(strcmp(graft_status_string(-1), "unknown status") == 0);
    for (graft_status s = 0; s <= 8; s++) CHECK(graft_status_string(s) != NULL);
    CHECK(graft_dtype_size(GRAFT_DTYPE_FLOAT32) == 4 && graft_dtype_size(GRAFT_DTYPE_INT64) == 8);
    CHECK(graft_dtype_size(GRAFT_DTYPE_BOOL) == 1 && graft_dtype_size(GRAFT_DTYPE_BFLOAT16) == 2);
    CHECK(graft_dtype_size(0) == 0 && graft_dtype_size(42) == 0);

    /* Model options. */
    graft_model_options *mo = NULL;
    EXPECT(graft_model_options_create(NULL), GRAFT_STATUS_INVALID_ARGUMENT, "out");
    CHECK(graft_model_options_create(&mo) == GRAFT_STATUS_OK && mo != NULL);
    EXPECT(graft_model_options_set_external_data(NULL, 1), GRAFT_STATUS_INVALID_ARGUMENT, "options");
    EXPECT(graft_model_options_set_external_data(mo, 2), GRAFT_STATUS_INVALID_ARGUMENT, "0 (refuse) or 1");
    EXPECT(graft_model_options_set_site_map(NULL, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "options");
    EXPECT(graft_model_options_set_site_map(mo, "/nonexistent/sites.json"), GRAFT_STATUS_IO, "/nonexistent/sites.json");
    snprintf(path, sizeof path, "%s/manifest.json", fixtures);
    EXPECT(graft_model_options_set_site_map(mo, path), GRAFT_STATUS_INVALID_ARGUMENT, "must be a non-empty module name");
    CHECK(graft_model_options_set_site_map(mo, NULL) == GRAFT_STATUS_OK);
    CHECK(graft_model_options_set_external_data(mo, 0) == GRAFT_STATUS_OK);
    graft_model_options_free(NULL);

    /* Loading. */
    graft_model *model = (graft_model *)&passed;   /* must be reset to NULL on failure */
    EXPECT(graft_model_load(NULL, NULL, &model), GRAFT_STATUS_INVALID_ARGUMENT, "path");
    CHECK(model == NULL);
    EXPECT(graft_model_load("x.onnx", NULL, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "out");
    EXPECT(graft_model_load("", NULL, &model), GRAFT_STATUS_INVALID_ARGUMENT, "empty");
    EXPECT(graft_model_load("/nonexistent/model.onnx", NULL, &model), GRAFT_STATUS_IO, "/nonexistent/model.onnx");
    EXPECT(graft_model_load_from_memory(NULL, 10, NULL, &model), GRAFT_STATUS_INVALID_ARGUMENT, "data");
    EXPECT(graft_model_load_from_memory(passthrough_onnx, 0, NULL, &model), GRAFT_STATUS_INVALID_ARGUMENT, "size");
    EXPECT(graft_model_load_from_memory(passthrough_onnx, sizeof passthrough_onnx, NULL, NULL),
           GRAFT_STATUS_INVALID_ARGUMENT, "out");
    EXPECT(graft_model_load_from_memory(passthrough_onnx, 50, NULL, &model), GRAFT_STATUS_INVALID_MODEL, "");
    EXPECT(graft_model_load_from_memory("garbage!", 8, NULL, &model), GRAFT_STATUS_INVALID_MODEL, "");
    EXPECT(graft_model_load_from_memory(unsupported_onnx, sizeof unsupported_onnx, NULL, &model),
           GRAFT_STATUS_UNSUPPORTED, "NoSuchOp");
    CHECK(model == NULL);
    snprintf(path, sizeof path, "%s/bert_dynamo/model.onnx", fixtures);
    EXPECT(graft_model_load(path, mo, &model), GRAFT_STATUS_INVALID_MODEL, "external");
    graft_model_options_free(mo);

    /* Limits: a weight cap under bert_dynamo's weights refuses it by name; 0 restores the
     * default, which loads it; unknown limits and NULL options are argument errors. */
    {
        graft_model_options *lo = NULL;
        graft_model *limited = NULL;
        CHECK(graft_model_options_create(&lo) == GRAFT_STATUS_OK);
        EXPECT(graft_model_options_set_limit(NULL, GRAFT_LIMIT_WEIGHT_BYTES, 1), GRAFT_STATUS_INVALID_ARGUMENT, "options");
        EXPECT(graft_model_options_set_limit(lo, 0, 1), GRAFT_STATUS_INVALID_ARGUMENT, "unknown limit 0");
        EXPECT(graft_model_options_set_limit(lo, GRAFT_LIMIT_BOUND_ADAPTERS + 1, 1), GRAFT_STATUS_INVALID_ARGUMENT, "unknown limit");
        CHECK(graft_model_options_set_limit(lo, GRAFT_LIMIT_WEIGHT_BYTES, 1000) == GRAFT_STATUS_OK);
        EXPECT(graft_model_load(path, lo, &limited), GRAFT_STATUS_LIMIT_EXCEEDED, "GRAFT_LIMIT_WEIGHT_BYTES");
        CHECK(limited == NULL);
        CHECK(graft_model_options_set_limit(lo, GRAFT_LIMIT_WEIGHT_BYTES, 0) == GRAFT_STATUS_OK);
        CHECK(graft_model_options_set_limit(lo, GRAFT_LIMIT_TENSOR_BYTES, UINT64_MAX) == GRAFT_STATUS_OK);
        CHECK(graft_model_load(path, lo, &limited) == GRAFT_STATUS_OK && limited != NULL);
        graft_model_free(limited);
        graft_model_options_free(lo);
    }
    CHECK(graft_model_load_from_memory(passthrough_onnx, sizeof passthrough_onnx, NULL, &model) == GRAFT_STATUS_OK);
    graft_model_free(NULL);

    /* Introspection. */
    size_t n = 99;
    EXPECT(graft_model_input_count(NULL, &n), GRAFT_STATUS_INVALID_ARGUMENT, "model");
    EXPECT(graft_model_input_count(model, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "count");
    EXPECT(graft_model_output_count(NULL, &n), GRAFT_STATUS_INVALID_ARGUMENT, "model");
    EXPECT(graft_model_output_count(model, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "count");
    CHECK(graft_model_input_count(model, &n) == GRAFT_STATUS_OK && n == 2);
    CHECK(graft_model_output_count(model, &n) == GRAFT_STATUS_OK && n == 2);
    graft_value_info info;
    memset(&info, 0, sizeof info);
    EXPECT(graft_model_input_info(model, 0, &info), GRAFT_STATUS_INVALID_ARGUMENT, "struct_size");
    info.struct_size = sizeof info;
    EXPECT(graft_model_input_info(NULL, 0, &info), GRAFT_STATUS_INVALID_ARGUMENT, "model");
    EXPECT(graft_model_input_info(model, 0, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "info");
    EXPECT(graft_model_input_info(model, 2, &info), GRAFT_STATUS_INVALID_ARGUMENT, "out of range");
    EXPECT(graft_model_output_info(model, (size_t)-1, &info), GRAFT_STATUS_INVALID_ARGUMENT, "out of range");
    CHECK(graft_model_input_info(model, 0, &info) == GRAFT_STATUS_OK && strcmp(info.name, "x") == 0 &&
          info.dtype == GRAFT_DTYPE_FLOAT32 && info.rank == 2);
    CHECK(graft_model_output_info(model, 1, &info) == GRAFT_STATUS_OK && strcmp(info.name, "ids") == 0 &&
          info.dtype == GRAFT_DTYPE_INT64 && info.rank == 1);
    int64_t size = 0;
    const char *symbol = NULL;
    CHECK(graft_model_input_dim(model, 0, 0, &size, &symbol) == GRAFT_STATUS_OK && size == -1 &&
          symbol && strcmp(symbol, "batch") == 0);
    CHECK(graft_model_input_dim(model, 0, 1, &size, &symbol) == GRAFT_STATUS_OK && size == 4 && symbol == NULL);
    CHECK(graft_model_output_dim(model, 1, 0, &size, NULL) == GRAFT_STATUS_OK && size == 3);
    EXPECT(graft_model_input_dim(NULL, 0, 0, &size, &symbol), GRAFT_STATUS_INVALID_ARGUMENT, "model");
    EXPECT(graft_model_input_dim(model, 0, 0, NULL, &symbol), GRAFT_STATUS_INVALID_ARGUMENT, "size");
    EXPECT(graft_model_input_dim(model, 0, 2, &size, &symbol), GRAFT_STATUS_INVALID_ARGUMENT, "axis 2");
    EXPECT(graft_model_output_dim(model, 5, 0, &size, &symbol), GRAFT_STATUS_INVALID_ARGUMENT, "out of range");

    /* Session and run options. */
    graft_session_options *so = NULL;
    graft_run_options *ro = NULL;
    EXPECT(graft_session_options_create(NULL), GRAFT_STATUS_INVALID_ARGUMENT, "out");
    CHECK(graft_session_options_create(&so) == GRAFT_STATUS_OK);
    EXPECT(graft_session_options_set_threads(NULL, 2), GRAFT_STATUS_INVALID_ARGUMENT, "options");
    EXPECT(graft_session_options_set_threads(so, 0), GRAFT_STATUS_INVALID_ARGUMENT, "between 1 and 256");
    EXPECT(graft_session_options_set_threads(so, 257), GRAFT_STATUS_INVALID_ARGUMENT, "between 1 and 256");
    CHECK(graft_session_options_set_threads(so, 2) == GRAFT_STATUS_OK);
    graft_session_options_free(NULL);
    EXPECT(graft_run_options_create(NULL), GRAFT_STATUS_INVALID_ARGUMENT, "out");
    CHECK(graft_run_options_create(&ro) == GRAFT_STATUS_OK);
    graft_run_options_free(NULL);

    /* Sessions. */
    graft_session *session = (graft_session *)&passed;
    EXPECT(graft_session_create(NULL, so, &session), GRAFT_STATUS_INVALID_ARGUMENT, "model");
    CHECK(session == NULL);
    EXPECT(graft_session_create(model, so, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "out");
    CHECK(graft_session_create(model, so, &session) == GRAFT_STATUS_OK);
    graft_session_options_free(so);
    graft_session_free(NULL);

    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t ids[3] = {7, 8, 9};
    int64_t x_shape[2] = {2, 4}, ids_shape[1] = {3};
    graft_tensor in[2];
    in[0] = tensor(GRAFT_DTYPE_FLOAT32, "x", 2, x_shape, x, sizeof x);
    in[1] = tensor(GRAFT_DTYPE_INT64, "ids", 1, ids_shape, ids, sizeof ids);

    /* Output shape queries. */
    graft_dtype dt = 0;
    size_t rank = 0;
    int64_t dims[4] = {0};
    EXPECT(graft_session_output_shape(NULL, in, 2, 0, &dt, &rank, dims, 4), GRAFT_STATUS_INVALID_ARGUMENT, "session");
    EXPECT(graft_session_output_shape(session, in, 2, 0, &dt, NULL, dims, 4), GRAFT_STATUS_INVALID_ARGUMENT, "rank");
    EXPECT(graft_session_output_shape(session, in, 2, 2, &dt, &rank, dims, 4), GRAFT_STATUS_INVALID_ARGUMENT, "out of range");
    EXPECT(graft_session_output_shape(session, NULL, 2, 0, &dt, &rank, dims, 4), GRAFT_STATUS_INVALID_ARGUMENT, "NULL");
    EXPECT(graft_session_output_shape(session, in, 2, 0, &dt, &rank, dims, 1), GRAFT_STATUS_LIMIT_EXCEEDED, "dims_capacity");
    CHECK(rank == 2);
    CHECK(graft_session_output_shape(session, in, 2, 0, NULL, &rank, NULL, 0) == GRAFT_STATUS_OK && rank == 2);
    CHECK(graft_session_output_shape(session, in, 2, 0, &dt, &rank, dims, 4) == GRAFT_STATUS_OK &&
          dt == GRAFT_DTYPE_FLOAT32 && rank == 2 && dims[0] == 2 && dims[1] == 4);

    /* Run: every kind of bad input. */
    float y[8];
    int64_t y_ids[3];
    graft_tensor out[2];
    out[0] = tensor(GRAFT_DTYPE_FLOAT32, "x", 2, x_shape, y, sizeof y);
    out[1] = tensor(GRAFT_DTYPE_INT64, "ids", 1, ids_shape, y_ids, sizeof y_ids);
    graft_tensor bad[3];
    EXPECT(graft_session_run(NULL, in, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "session");
    EXPECT(graft_session_run(session, NULL, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "inputs is NULL");
    EXPECT(graft_session_run(session, in, 2, NULL, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "outputs is NULL");
    EXPECT(graft_session_run(session, in, 1, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "'ids' is missing");
    memcpy(bad, in, sizeof in); bad[2] = in[0];
    EXPECT(graft_session_run(session, bad, 3, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "n_inputs is 3");
    memcpy(bad, in, sizeof in); bad[0].struct_size = 0;
    EXPECT(graft_session_run(session, bad, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "struct_size is 0");
    memcpy(bad, in, sizeof in); bad[1].struct_size = 56;
    EXPECT(graft_session_run(session, bad, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "same struct_size");
    memcpy(bad, in, sizeof in); bad[1].name = "nope";
    EXPECT(graft_session_run(session, bad, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "'nope' is not one of");
    memcpy(bad, in, sizeof in); bad[1].name = "x";
    EXPECT(graft_session_run(session, bad, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "more than once");
    memcpy(bad, in, sizeof in); bad[1].dtype = 42;
    EXPECT(graft_session_run(session, bad, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "not a graft_dtype");
    memcpy(bad, in, sizeof in); bad[1].dtype = GRAFT_DTYPE_INT32; bad[1].byte_size = 12;
    EXPECT(graft_session_run(session, bad, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "must be int64");
    memcpy(bad, in, sizeof in); bad[0].rank = 1; bad[0].byte_size = 8;
    EXPECT(graft_session_run(session, bad, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "rank 2");
    int64_t wrong_ids_shape[1] = {2};
    memcpy(bad, in, sizeof in); bad[1].shape = wrong_ids_shape; bad[1].byte_size = 16;
    EXPECT(graft_session_run(session, bad, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "dimension 0 must be 3");
    int64_t negative[2] = {-2, 4};
    memcpy(bad, in, sizeof in); bad[0].shape = negative;
    EXPECT(graft_session_run(session, bad, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "negative");
    int64_t huge[2] = {INT64_MAX / 2, 4};
    memcpy(bad, in, sizeof in); bad[0].shape = huge;
    EXPECT(graft_session_run(session, bad, 2, out, 2, NULL), GRAFT_STATUS_LIMIT_EXCEEDED, "2^40");
    memcpy(bad, in, sizeof in); bad[0].rank = 1000;
    EXPECT(graft_session_run(session, bad, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "rank 1000");
    memcpy(bad, in, sizeof in); bad[0].rank = (size_t)-1;
    EXPECT(graft_session_run(session, bad, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "rank");
    memcpy(bad, in, sizeof in); bad[0].shape = NULL;
    EXPECT(graft_session_run(session, bad, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "shape is NULL");
    memcpy(bad, in, sizeof in); bad[0].byte_size = 4;
    EXPECT(graft_session_run(session, bad, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "needs 32 bytes");
    memcpy(bad, in, sizeof in); bad[0].data = NULL;
    EXPECT(graft_session_run(session, bad, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "data is NULL");
    memcpy(bad, in, sizeof in); bad[0].data = (char *)x + 1;
    EXPECT(graft_session_run(session, bad, 2, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "aligned");

    /* Run: bad outputs. */
    int64_t y_wrong[2] = {4, 2};
    memcpy(bad, out, sizeof out); bad[0].shape = y_wrong;
    EXPECT(graft_session_run(session, in, 2, bad, 2, NULL), GRAFT_STATUS_SHAPE_MISMATCH, "graft_session_output_shape");
    memcpy(bad, out, sizeof out); bad[0].dtype = GRAFT_DTYPE_INT32;
    EXPECT(graft_session_run(session, in, 2, bad, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "dtype is int32");
    memcpy(bad, out, sizeof out); bad[0].byte_size = 64;
    EXPECT(graft_session_run(session, in, 2, bad, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "byte_size is 64");
    memcpy(bad, out, sizeof out); bad[0].name = "y";
    EXPECT(graft_session_run(session, in, 2, bad, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "'y' is not one of");
    memcpy(bad, out, sizeof out); bad[0].data = x;
    EXPECT(graft_session_run(session, in, 2, bad, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "overlaps");
    memcpy(bad, out, sizeof out); bad[1].data = y; bad[1].byte_size = sizeof y_ids;
    EXPECT(graft_session_run(session, in, 2, bad, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "overlaps");

    /* Run: successes. By name; by position (names NULL); a subset of outputs; no outputs;
     * an empty batch with NULL data; a larger (future) struct_size. */
    CHECK(graft_session_run(session, in, 2, out, 2, ro) == GRAFT_STATUS_OK &&
          memcmp(x, y, sizeof x) == 0 && memcmp(ids, y_ids, sizeof ids) == 0);
    memset(y, 0, sizeof y); memset(y_ids, 0, sizeof y_ids);
    memcpy(bad, in, sizeof in); bad[0].name = NULL; bad[1].name = NULL;
    graft_tensor pos_out[2];
    memcpy(pos_out, out, sizeof out); pos_out[0].name = NULL; pos_out[1].name = NULL;
    CHECK(graft_session_run(session, bad, 2, pos_out, 2, NULL) == GRAFT_STATUS_OK &&
          memcmp(x, y, sizeof x) == 0 && memcmp(ids, y_ids, sizeof ids) == 0);
    memset(y_ids, 0, sizeof y_ids);
    graft_tensor reversed_in[2] = {in[1], in[0]};
    CHECK(graft_session_run(session, reversed_in, 2, &out[1], 1, NULL) == GRAFT_STATUS_OK &&
          memcmp(ids, y_ids, sizeof ids) == 0);
    CHECK(graft_session_run(session, in, 2, NULL, 0, NULL) == GRAFT_STATUS_OK);
    int64_t empty_shape[2] = {0, 4};
    memcpy(bad, in, sizeof in); bad[0].shape = empty_shape; bad[0].data = NULL; bad[0].byte_size = 0;
    graft_tensor empty_out = tensor(GRAFT_DTYPE_FLOAT32, "x", 2, empty_shape, NULL, 0);
    CHECK(graft_session_run(session, bad, 2, &empty_out, 1, NULL) == GRAFT_STATUS_OK);
    struct future_tensor { graft_tensor t; uint64_t appended; } fut[2];
    fut[0].t = in[0]; fut[1].t = in[1];
    fut[0].t.struct_size = fut[1].t.struct_size = sizeof(struct future_tensor);
    fut[0].appended = fut[1].appended = 0;
    CHECK(graft_session_run(session, &fut[0].t, 2, &out[0], 1, NULL) == GRAFT_STATUS_OK);

    /* The message belongs to the thread and survives successful calls. */
    EXPECT(graft_session_run(session, in, 1, out, 2, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "missing");
    CHECK(graft_session_run(session, in, 2, out, 2, NULL) == GRAFT_STATUS_OK);
    CHECK(strstr(graft_last_error(), "missing") != NULL);

    /* Adapters and plugins: every entry point's error paths (the passthrough model has no
       linear layers, so it has no sites and no adapter can attach to it). */
    size_t count = 99;
    const char *pname = NULL;
    EXPECT(graft_plugin_load(NULL), GRAFT_STATUS_INVALID_ARGUMENT, "path");
    EXPECT(graft_plugin_load("/nonexistent/libGraftPluginX.so"), GRAFT_STATUS_IO, "/nonexistent/libGraftPluginX.so");
    EXPECT(graft_plugin_count(NULL), GRAFT_STATUS_INVALID_ARGUMENT, "count");
    CHECK(graft_plugin_count(&count) == GRAFT_STATUS_OK);
    EXPECT(graft_plugin_info(count, &pname, NULL, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "out of range");
    graft_adapter *adapter = NULL;
    EXPECT(graft_adapter_load(NULL, "x", &adapter), GRAFT_STATUS_INVALID_ARGUMENT, "model");
    EXPECT(graft_adapter_load(model, NULL, &adapter), GRAFT_STATUS_INVALID_ARGUMENT, "path");
    EXPECT(graft_adapter_load(model, "x", NULL), GRAFT_STATUS_INVALID_ARGUMENT, "out");
    EXPECT(graft_adapter_load(model, "/nonexistent/adapter", &adapter), GRAFT_STATUS_IO, "does not exist");
    CHECK(adapter == NULL);
    EXPECT(graft_adapter_load(model, fixtures, &adapter), GRAFT_STATUS_UNSUPPORTED, "no plugin claims");
    graft_adapter_free(NULL);
    CHECK(strcmp(graft_adapter_name(NULL), "") == 0);
    EXPECT(graft_session_set_adapters(NULL, NULL, NULL, 0, 0), GRAFT_STATUS_INVALID_ARGUMENT, "session");
    EXPECT(graft_session_set_adapters(session, NULL, NULL, 1, 0), GRAFT_STATUS_INVALID_ARGUMENT, "adapters");
    graft_adapter *null_adapter = NULL;
    EXPECT(graft_session_set_adapters(session, &null_adapter, NULL, 1, 0), GRAFT_STATUS_INVALID_ARGUMENT, "adapters[0] is NULL");
    CHECK(graft_session_set_adapters(session, NULL, NULL, 0, 0) == GRAFT_STATUS_OK);
    EXPECT(graft_run_options_set_row_adapters(NULL, NULL, 0), GRAFT_STATUS_INVALID_ARGUMENT, "options");
    EXPECT(graft_run_options_set_row_adapters(ro, NULL, 2), GRAFT_STATUS_INVALID_ARGUMENT, "adapters");
    CHECK(graft_run_options_set_row_adapters(ro, NULL, 0) == GRAFT_STATUS_OK);
    EXPECT(graft_run_options_set_modalities(NULL, NULL, 0), GRAFT_STATUS_INVALID_ARGUMENT, "options");
    EXPECT(graft_run_options_set_modalities(ro, NULL, 3), GRAFT_STATUS_INVALID_ARGUMENT, "ids");
    uint8_t mods[3] = {0, 1, 0};
    CHECK(graft_run_options_set_modalities(ro, mods, 3) == GRAFT_STATUS_OK);
    CHECK(graft_run_options_set_modalities(ro, NULL, 0) == GRAFT_STATUS_OK);
    /* Auxiliary inputs and generated weights (VLoRA; the working paths are in vlora.c). */
    EXPECT(graft_run_options_set_aux(NULL, NULL, 0), GRAFT_STATUS_INVALID_ARGUMENT, "options");
    EXPECT(graft_run_options_set_aux(ro, NULL, 1), GRAFT_STATUS_INVALID_ARGUMENT, "aux is NULL");
    float feat[2] = {1, 2};
    int64_t feat_shape[2] = {1, 2};
    graft_tensor aux = {sizeof(graft_tensor), GRAFT_DTYPE_FLOAT32, NULL, 2, feat_shape, feat, sizeof feat};
    EXPECT(graft_run_options_set_aux(ro, &aux, 1), GRAFT_STATUS_INVALID_ARGUMENT, "name is NULL");
    aux.name = "image_features";
    aux.byte_size = 4;
    EXPECT(graft_run_options_set_aux(ro, &aux, 1), GRAFT_STATUS_INVALID_ARGUMENT, "byte_size");
    aux.byte_size = sizeof feat;
    CHECK(graft_run_options_set_aux(ro, &aux, 1) == GRAFT_STATUS_OK);
    CHECK(graft_run_options_set_aux(ro, NULL, 0) == GRAFT_STATUS_OK);
    EXPECT(graft_run_options_set_merge(NULL, GRAFT_MERGE_AUTO), GRAFT_STATUS_INVALID_ARGUMENT, "options");
    EXPECT(graft_run_options_set_merge(ro, 3), GRAFT_STATUS_INVALID_ARGUMENT, "merge mode 3");
    CHECK(graft_run_options_set_merge(ro, GRAFT_MERGE_MERGED) == GRAFT_STATUS_OK);
    CHECK(graft_run_options_set_merge(ro, GRAFT_MERGE_AUTO) == GRAFT_STATUS_OK);
    graft_adapter *generated = NULL;
    EXPECT(graft_adapter_generate(NULL, &aux, 1, 1, &generated), GRAFT_STATUS_INVALID_ARGUMENT, "adapter");
    CHECK(generated == NULL);
    CHECK(graft_adapter_aux_input(NULL) == NULL);
    EXPECT(graft_adapter_compose(NULL, NULL, 1, &generated), GRAFT_STATUS_INVALID_ARGUMENT, "adapters");
    EXPECT(graft_adapter_compose(&null_adapter, NULL, 1, &generated), GRAFT_STATUS_INVALID_ARGUMENT, "adapters[0] is NULL");
    EXPECT(graft_adapter_compose(&null_adapter, NULL, 1, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "out");
    CHECK(generated == NULL);
    EXPECT(graft_adapter_router_count(NULL, &count), GRAFT_STATUS_INVALID_ARGUMENT, "adapter");
    EXPECT(graft_adapter_router_info(NULL, 0, NULL, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "adapter");
    EXPECT(graft_adapter_find_router(NULL, "q", &count), GRAFT_STATUS_INVALID_ARGUMENT, "adapter");
    EXPECT(graft_run_options_set_experts(NULL, NULL, 0, GRAFT_EXPERTS_ALLOW, NULL, 0), GRAFT_STATUS_INVALID_ARGUMENT, "options");
    EXPECT(graft_run_options_set_experts(ro, NULL, 0, GRAFT_EXPERTS_ALLOW, NULL, 0), GRAFT_STATUS_INVALID_ARGUMENT, "adapter");
    EXPECT(graft_run_options_set_routing(NULL, NULL, 0, NULL, 0, 0), GRAFT_STATUS_INVALID_ARGUMENT, "options");
    EXPECT(graft_run_options_set_routing(ro, NULL, 0, NULL, 0, 0), GRAFT_STATUS_INVALID_ARGUMENT, "adapter");
    graft_routing_record *record = NULL;
    EXPECT(graft_routing_record_create(NULL), GRAFT_STATUS_INVALID_ARGUMENT, "out");
    CHECK(graft_routing_record_create(&record) == GRAFT_STATUS_OK && record != NULL);
    EXPECT(graft_run_options_set_routing_record(NULL, record), GRAFT_STATUS_INVALID_ARGUMENT, "options");
    CHECK(graft_run_options_set_routing_record(ro, record) == GRAFT_STATUS_OK);
    CHECK(graft_routing_record_count(record, &count) == GRAFT_STATUS_OK && count == 0);
    EXPECT(graft_routing_record_count(NULL, &count), GRAFT_STATUS_INVALID_ARGUMENT, "record");
    graft_routing_entry entry;
    memset(&entry, 0, sizeof entry);
    entry.struct_size = sizeof entry;
    EXPECT(graft_routing_record_entry(record, 0, &entry), GRAFT_STATUS_INVALID_ARGUMENT, "out of range");
    entry.struct_size = 4;
    EXPECT(graft_routing_record_entry(record, 0, &entry), GRAFT_STATUS_INVALID_ARGUMENT, "struct_size");
    CHECK(graft_run_options_set_routing_record(ro, NULL) == GRAFT_STATUS_OK);
    graft_routing_record_free(record);
    graft_routing_record_free(NULL);
    EXPECT(graft_model_site_count(NULL, &count), GRAFT_STATUS_INVALID_ARGUMENT, "model");
    EXPECT(graft_model_site_count(model, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "count");
    CHECK(graft_model_site_count(model, &count) == GRAFT_STATUS_OK && count == 0);
    EXPECT(graft_model_site_info(model, 0, NULL, NULL, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "out of range");
    EXPECT(graft_model_site_info(NULL, 0, NULL, NULL, NULL), GRAFT_STATUS_INVALID_ARGUMENT, "model");

    /* A session keeps its model alive: free the model first, run again, then free the session. */
    graft_model_free(model);
    CHECK(graft_session_run(session, in, 2, out, 2, NULL) == GRAFT_STATUS_OK);
    graft_session_free(session);
    graft_run_options_free(ro);

    printf("errors: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
