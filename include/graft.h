/*
 * graft.h — the C interface of Graft, a CPU inference library for ONNX models.
 *
 * This hand-written header is canonical: libgraft.so implements exactly what it declares
 * (the Swift implementation is checked against it at compile time with `@c @implementation`).
 *
 * Worked example (error handling shortened; see docs/BINDINGS.md for building and linking):
 *
 *     #include <graft.h>
 *     #include <stdio.h>
 *
 *     int main(void) {
 *         graft_model *model = NULL;
 *         graft_session *session = NULL;
 *         if (graft_model_load("model.onnx", NULL, &model) != GRAFT_STATUS_OK ||
 *             graft_session_create(model, NULL, &session) != GRAFT_STATUS_OK) {
 *             fprintf(stderr, "graft: %s\n", graft_last_error());
 *             return 1;
 *         }
 *         // One float32 input of shape [1, 4], read in place (no copy).
 *         float x[4] = {1, 2, 3, 4};
 *         int64_t x_shape[2] = {1, 4};
 *         graft_tensor in = {sizeof(graft_tensor), GRAFT_DTYPE_FLOAT32, "x", 2, x_shape,
 *                            x, sizeof x};
 *         // Ask the output's shape for these inputs, then run into a buffer of that size.
 *         int64_t y_shape[8];
 *         size_t y_rank = 0;
 *         graft_dtype y_dtype;
 *         graft_session_output_shape(session, &in, 1, 0, &y_dtype, &y_rank, y_shape, 8);
 *         float y[4];   // product(y_shape) elements; here known to be 4
 *         graft_tensor out = {sizeof(graft_tensor), y_dtype, NULL, y_rank, y_shape, y, sizeof y};
 *         if (graft_session_run(session, &in, 1, &out, 1, NULL) != GRAFT_STATUS_OK)
 *             fprintf(stderr, "graft: %s\n", graft_last_error());
 *         graft_session_free(session);
 *         graft_model_free(model);
 *         return 0;
 *     }
 *
 * Conventions
 * - Handles (graft_model, graft_session, graft_*_options) are opaque. Every constructor
 *   returns a graft_status and writes its out-parameter only on success (it sets it to NULL
 *   on failure when the out pointer itself is not NULL). Every graft_*_free accepts NULL.
 * - Every function that can fail returns a graft_status; on failure a message describing the
 *   problem is available from graft_last_error() on the same thread. No error, trap or
 *   exception of the implementation crosses this interface: all failures are statuses.
 * - Strings are UTF-8 and NUL-terminated. Strings returned by the library are owned by it;
 *   each function says how long they stay valid.
 * - Caller-filled structs start with `uint32_t struct_size`, which the caller sets to
 *   sizeof(the struct) as seen by its own header; this lets the library grow structs in
 *   later minor versions while accepting programs built against older headers.
 *
 * Tensors at the boundary
 * - Inputs are caller buffers, read in place during graft_session_run (never copied, never
 *   written, not retained after the call returns).
 * - Outputs are written into caller buffers. Query each output's dtype and shape for given
 *   input shapes with graft_session_output_shape, allocate, then call graft_session_run.
 *   Nothing the library allocates is handed to the caller, so there is no tensor free
 *   function.
 * - Tensors are dense and row-major (C order). Buffers must be aligned to their element size.
 *
 * Threads
 * - A graft_model is immutable once loaded: share it between any number of sessions on any
 *   threads. Model introspection functions may be called concurrently.
 * - A graft_session is used by one thread at a time (different threads may use it one after
 *   another). Give each concurrent thread its own session over the shared model. A session
 *   that is entered by a second thread while running returns GRAFT_STATUS_INVALID_ARGUMENT
 *   rather than corrupting its state.
 * - A session's thread count (graft_session_options_set_threads, default 1) is how many
 *   threads its kernels may use during graft_session_run. OpenBLAS keeps one process-wide
 *   pool, so Graft pins OpenBLAS to one thread when the first model loads and splits matrix
 *   products itself with each session's count. Sessions running at once therefore use at
 *   most the sum of their thread counts; choose counts whose sum is at most the core count.
 *   If your program calls OpenBLAS itself, note that its thread setting is process-wide.
 * - graft_last_error() is per thread.
 *
 * Adapters (LoRA, (IA)3 and other plugin-made adapters) are declared at the end of this
 * header: load one per model with graft_adapter_load, bind with graft_session_set_adapters
 * (or per batch row through graft_run_options_set_row_adapters).
 */
#ifndef GRAFT_H
#define GRAFT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The one visibility macro: every public function carries it. */
#if defined(_WIN32)
#define GRAFT_API __declspec(dllimport)
#else
#define GRAFT_API __attribute__((visibility("default")))
#endif

/* ---------------------------------------------------------------------------------------- */
/* Versions                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* Library version of this header (semantic versioning). */
#define GRAFT_VERSION_MAJOR 0
#define GRAFT_VERSION_MINOR 1
#define GRAFT_VERSION_PATCH 0
#define GRAFT_VERSION_STRING "0.1.0"

/* ABI version of this header. It changes only when an existing function, struct layout or
 * constant changes meaning; additions (new functions, new status codes, fields appended to
 * structs with struct_size) keep it. Bindings compare it with graft_abi_version(). */
#define GRAFT_ABI_VERSION 1

/* The library's version string, "MAJOR.MINOR.PATCH" (GRAFT_VERSION_STRING of the header the
 * library was built with).
 * Returns: a static string; never NULL; never freed.
 * Thread safety: any thread. */
GRAFT_API const char *graft_version(void);

/* The library's ABI version (GRAFT_ABI_VERSION of the header it was built with). A program
 * should refuse to run when this differs from the GRAFT_ABI_VERSION it was compiled with.
 * Thread safety: any thread. */
GRAFT_API uint32_t graft_abi_version(void);

/* ---------------------------------------------------------------------------------------- */
/* Status codes and errors                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Result of every fallible function. Values are stable and only ever appended to. */
typedef int32_t graft_status;

enum {
    GRAFT_STATUS_OK = 0,
    /* A caller-supplied argument is wrong: NULL pointer, bad struct_size, unknown input name,
     * wrong dtype, rank, dimension or buffer size. */
    GRAFT_STATUS_INVALID_ARGUMENT = 1,
    /* The model file is malformed: truncated, corrupt, or an inconsistent graph. */
    GRAFT_STATUS_INVALID_MODEL = 2,
    /* The file is well formed but uses something Graft does not implement (an operator, a
     * data type). */
    GRAFT_STATUS_UNSUPPORTED = 3,
    /* A file could not be opened, mapped or read. */
    GRAFT_STATUS_IO = 4,
    /* Tensor shapes do not agree (at plan time or at run time). */
    GRAFT_STATUS_SHAPE_MISMATCH = 5,
    /* A size or count exceeds a limit or overflows. */
    GRAFT_STATUS_LIMIT_EXCEEDED = 6,
    /* Data read at run time is out of range (an index outside its axis, for example). */
    GRAFT_STATUS_INVALID_DATA = 7,
    /* A bug in Graft: an invariant that should hold did not. Please report it. */
    GRAFT_STATUS_INTERNAL = 8
};

/* A short, constant English name for a status ("ok", "invalid argument", ...). Unknown
 * values give "unknown status".
 * Returns: a static string; never NULL; never freed.
 * Thread safety: any thread. */
GRAFT_API const char *graft_status_string(graft_status status);

/* The message of the last failed call made by the calling thread, naming the file, input,
 * node or argument at fault; "" when no call on this thread has failed yet. Successful calls
 * do not clear it.
 * Returns: a string owned by the library, valid until the next graft_* call on the same
 * thread; never NULL.
 * Thread safety: per thread (each thread sees its own message). */
GRAFT_API const char *graft_last_error(void);

/* ---------------------------------------------------------------------------------------- */
/* Element types                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* Element type of a tensor, numbered as ONNX's TensorProto.DataType. Graph inputs and
 * outputs use the compute types float32, uint8, int8, int32, int64 and bool (one byte,
 * 0 or 1); the others can only appear inside model files. */
typedef int32_t graft_dtype;

enum {
    GRAFT_DTYPE_FLOAT32 = 1,
    GRAFT_DTYPE_UINT8 = 2,
    GRAFT_DTYPE_INT8 = 3,
    GRAFT_DTYPE_INT32 = 6,
    GRAFT_DTYPE_INT64 = 7,
    GRAFT_DTYPE_BOOL = 9,
    GRAFT_DTYPE_FLOAT16 = 10,
    GRAFT_DTYPE_FLOAT64 = 11,
    GRAFT_DTYPE_BFLOAT16 = 16
};

/* Bytes per element of `dtype`, or 0 for a value that is not a graft_dtype.
 * Thread safety: any thread. */
GRAFT_API size_t graft_dtype_size(graft_dtype dtype);

/* ---------------------------------------------------------------------------------------- */
/* Tensors (caller-filled)                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* A view of a caller-owned dense row-major tensor, passed to graft_session_run and
 * graft_session_output_shape. The library never retains it or anything it points to after
 * the call returns.
 *
 * In an array of graft_tensor, every element must carry the same struct_size: the library
 * walks the array with that stride, so programs built against an older, smaller struct keep
 * working when fields are appended. */
typedef struct graft_tensor {
    uint32_t struct_size;   /* sizeof(graft_tensor) */
    graft_dtype dtype;      /* element type; must equal the model's declared type */
    const char *name;       /* input or output name; NULL means "the i-th declared one",
                               i being this element's index in its array */
    size_t rank;            /* number of dimensions (0 for a scalar) */
    const int64_t *shape;   /* `rank` dimensions, outermost first; may be NULL when rank is 0 */
    void *data;             /* the elements: read-only for inputs, written for outputs;
                               aligned to the element size; may be NULL when byte_size is 0 */
    size_t byte_size;       /* size of `data` in bytes: exactly product(shape) * element size */
} graft_tensor;

/* ---------------------------------------------------------------------------------------- */
/* Models                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* An ONNX model, loaded, validated and optimised. Immutable; shareable between threads. */
typedef struct graft_model graft_model;

/* Options for loading a model. Create, set, pass to graft_model_load*, free; the load does
 * not retain them.
 * Thread safety: an options object is used by one thread at a time. */
typedef struct graft_model_options graft_model_options;

/* Creates model options with defaults (external data allowed).
 * out: receives the new options; free with graft_model_options_free.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT when out is NULL. */
GRAFT_API graft_status graft_model_options_create(graft_model_options **out);

/* Frees model options. NULL is a no-op. */
GRAFT_API void graft_model_options_free(graft_model_options *options);

/* Whether graft_model_load may read tensors stored outside the .onnx file ("external data",
 * always confined to the model file's folder). 1 allows (the default), 0 refuses such models
 * with GRAFT_STATUS_INVALID_MODEL. Models loaded from memory never read external data.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT for NULL options or a value
 * other than 0 or 1. */
GRAFT_API graft_status graft_model_options_set_external_data(graft_model_options *options,
                                                             int32_t allow);

/* Names adapter sites explicitly: `path` is a JSON file mapping node names (or node output
 * names) of MatMul/Gemm nodes to source module names, e.g.
 * {"/encoder/MatMul_3": "encoder.layer.0.attention.self.query"}. It overrides the names Graft
 * resolves from initializer names, exporter metadata and node scopes. The file is read now;
 * a name that is not a linear layer of the model fails the later load. NULL clears it.
 * Returns: GRAFT_STATUS_OK; GRAFT_STATUS_INVALID_ARGUMENT (NULL options, malformed JSON or
 *   non-string values); GRAFT_STATUS_IO (unreadable file).
 * Thread safety: one thread at a time per options object. */
GRAFT_API graft_status graft_model_options_set_site_map(graft_model_options *options,
                                                        const char *path);

/* Caps on what a model, the sessions over it and the adapters loaded for it may allocate or
 * hold. A file that would go over one fails with GRAFT_STATUS_LIMIT_EXCEEDED and a message
 * naming the cap (e.g. "... more than the limit of 1024 (GRAFT_LIMIT_TENSOR_BYTES; ...)"),
 * checked before the allocation it bounds. Values are stable and only ever appended to. */
typedef int32_t graft_limit;

enum {
    /* Bytes of one allocation the model's graph may cause: a tensor folded at load or plan
     * time, any kernel output, a session's work arena for one input-shape plan.
     * Default 16 GiB (or the GRAFT_MAX_TENSOR_BYTES environment variable, in bytes). */
    GRAFT_LIMIT_TENSOR_BYTES = 1,
    /* Bytes of all the model's weights: initializers as computed on (float16, bfloat16 and
     * float64 widened to float32), and constants folded at load. Default 64 GiB. */
    GRAFT_LIMIT_WEIGHT_BYTES = 2,
    /* Largest rank of one low-rank adapter term. Default 4096. */
    GRAFT_LIMIT_ADAPTER_RANK = 3,
    /* Terms one adapter may add: low-rank terms (one per site for LoRA, one per expert and
     * site for MoE-LoRA), routers and channel scales. Default 65536. */
    GRAFT_LIMIT_ADAPTER_TERMS = 4,
    /* Bytes of weights one adapter holds (all float32). Default 16 GiB. */
    GRAFT_LIMIT_ADAPTER_BYTES = 5,
    /* Adapters bound to a session at once: the count of graft_session_set_adapters, or the
     * distinct adapters of graft_run_options_set_row_adapters in one run. Default 1024. */
    GRAFT_LIMIT_BOUND_ADAPTERS = 6
};

/* Sets cap `limit` for models loaded with these options (and their sessions and adapters).
 * value: the cap, at least 1; 0 restores the default. Values above INT64_MAX mean INT64_MAX.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT for NULL options or an unknown
 *   limit.
 * Thread safety: one thread at a time per options object. */
GRAFT_API graft_status graft_model_options_set_limit(graft_model_options *options,
                                                     graft_limit limit, uint64_t value);

/* Loads the ONNX model at `path`.
 * path: file path (UTF-8). External data files are read from the model file's folder only.
 * options: NULL for defaults; not retained.
 * out: receives the model; free with graft_model_free. Set to NULL on failure.
 * Returns: GRAFT_STATUS_OK; GRAFT_STATUS_INVALID_ARGUMENT (NULL path or out);
 *   GRAFT_STATUS_IO (unreadable file); GRAFT_STATUS_INVALID_MODEL (malformed file or graph);
 *   GRAFT_STATUS_UNSUPPORTED (an operator or type Graft does not implement);
 *   GRAFT_STATUS_LIMIT_EXCEEDED (a tensor or the weights over their cap, see graft_limit).
 * Thread safety: any thread; loads may run concurrently. */
GRAFT_API graft_status graft_model_load(const char *path, const graft_model_options *options,
                                        graft_model **out);

/* Loads an ONNX model from `size` bytes at `data`. The bytes are not retained: free them
 * when this returns. Models with external data cannot be loaded this way
 * (GRAFT_STATUS_INVALID_MODEL).
 * options: NULL for defaults; not retained.
 * out: receives the model; free with graft_model_free. Set to NULL on failure.
 * Returns: as graft_model_load; GRAFT_STATUS_INVALID_ARGUMENT also for data NULL or size 0.
 * Thread safety: any thread. */
GRAFT_API graft_status graft_model_load_from_memory(const void *data, size_t size,
                                                    const graft_model_options *options,
                                                    graft_model **out);

/* Releases the caller's reference to a model. NULL is a no-op. Sessions hold their own
 * reference, so the model's memory is released when it and all its sessions are freed;
 * strings returned by graft_model_* for this model stay valid until then. Calling
 * graft_model_* on a freed handle is undefined.
 * Thread safety: not concurrently with other calls on the same handle. */
GRAFT_API void graft_model_free(graft_model *model);

/* Number of declared inputs (outputs) of the model.
 * count: receives the number.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT for a NULL argument.
 * Thread safety: any thread, concurrently. */
GRAFT_API graft_status graft_model_input_count(const graft_model *model, size_t *count);
GRAFT_API graft_status graft_model_output_count(const graft_model *model, size_t *count);

/* Name, dtype and rank of a declared input or output (library-filled; the caller sets
 * struct_size). */
typedef struct graft_value_info {
    uint32_t struct_size;   /* set by the caller: sizeof(graft_value_info) */
    graft_dtype dtype;      /* declared element type */
    const char *name;       /* owned by the model; valid while the model is alive */
    int64_t rank;           /* declared number of dimensions, or -1 when the file records
                               no shape */
} graft_value_info;

/* Describes input (output) `index` (0-based, declaration order).
 * info: caller-allocated, with info->struct_size set; receives dtype, name and rank.
 * Returns: GRAFT_STATUS_OK; GRAFT_STATUS_INVALID_ARGUMENT for a NULL argument, an index out
 *   of range or a struct_size smaller than this version's graft_value_info.
 * Thread safety: any thread, concurrently. */
GRAFT_API graft_status graft_model_input_info(const graft_model *model, size_t index,
                                              graft_value_info *info);
GRAFT_API graft_status graft_model_output_info(const graft_model *model, size_t index,
                                               graft_value_info *info);

/* Declared dimension `axis` of input (output) `index`.
 * size: receives the fixed size, or -1 when the dimension is symbolic or unknown.
 * symbol: receives the symbolic name ("batch", "sequence") owned by the model and valid
 *   while it is alive, or NULL for a fixed or unnamed dimension. May be NULL.
 * Returns: GRAFT_STATUS_OK; GRAFT_STATUS_INVALID_ARGUMENT for a NULL model or size, an index
 *   or axis out of range, or a value whose rank is unknown (-1).
 * Thread safety: any thread, concurrently. */
GRAFT_API graft_status graft_model_input_dim(const graft_model *model, size_t index,
                                             size_t axis, int64_t *size, const char **symbol);
GRAFT_API graft_status graft_model_output_dim(const graft_model *model, size_t index,
                                              size_t axis, int64_t *size,
                                              const char **symbol);

/* ---------------------------------------------------------------------------------------- */
/* Sessions                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* Runs a model. Keeps compiled plans per input-shape signature and one work arena, so
 * repeated runs with the same shapes allocate almost nothing. One thread at a time. */
typedef struct graft_session graft_session;

/* Options for creating a session; not retained by graft_session_create.
 * Thread safety: an options object is used by one thread at a time. */
typedef struct graft_session_options graft_session_options;

/* Creates session options with defaults (1 thread).
 * out: receives the options; free with graft_session_options_free.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT when out is NULL. */
GRAFT_API graft_status graft_session_options_create(graft_session_options **out);

/* Frees session options. NULL is a no-op. */
GRAFT_API void graft_session_options_free(graft_session_options *options);

/* Threads the session's kernels may use, 1...256 (default 1). See "Threads" at the top for
 * how this interacts with OpenBLAS.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT for NULL options or a count
 *   outside 1...256. */
GRAFT_API graft_status graft_session_options_set_threads(graft_session_options *options,
                                                         int32_t threads);

/* Creates a session over `model`.
 * model: the model; the session keeps it alive (see graft_model_free).
 * options: NULL for defaults; not retained.
 * out: receives the session; free with graft_session_free. Set to NULL on failure.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT for a NULL model or out.
 * Thread safety: any thread; many sessions may be created over one model concurrently. */
GRAFT_API graft_status graft_session_create(const graft_model *model,
                                            const graft_session_options *options,
                                            graft_session **out);

/* Frees a session and its plans and arena. NULL is a no-op.
 * Thread safety: not while the session is running. */
GRAFT_API void graft_session_free(graft_session *session);

/* Options for one run: per-row adapters (graft_run_options_set_row_adapters). Pass NULL to
 * graft_session_run for none. Run options may be reused across runs.
 * Thread safety: one thread at a time. */
typedef struct graft_run_options graft_run_options;

/* Creates run options with defaults. Free with graft_run_options_free.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT when out is NULL. */
GRAFT_API graft_status graft_run_options_create(graft_run_options **out);

/* Frees run options. NULL is a no-op. */
GRAFT_API void graft_run_options_free(graft_run_options *options);

/* The dtype and shape output `output_index` (declaration order) will have when the session
 * runs on `inputs`. Plans for these input shapes if needed (the plan is cached, so the run
 * that follows does not plan again); input data is not read.
 * inputs, n_inputs: every declared input, as for graft_session_run; only names, dtypes,
 *   ranks and shapes are checked and used (data and byte_size are not read; data may be NULL).
 * dtype: receives the output's element type. May be NULL.
 * rank: receives the output's rank. Must not be NULL.
 * dims: receives `*rank` dimensions when dims_capacity >= *rank; may be NULL to ask for the
 *   rank only.
 * Returns: GRAFT_STATUS_OK; GRAFT_STATUS_LIMIT_EXCEEDED when dims is not NULL and
 *   dims_capacity < *rank (*rank is still written); otherwise the statuses of
 *   graft_session_run for the inputs.
 * Thread safety: as graft_session_run. */
GRAFT_API graft_status graft_session_output_shape(graft_session *session,
                                                  const graft_tensor *inputs, size_t n_inputs,
                                                  size_t output_index, graft_dtype *dtype,
                                                  size_t *rank, int64_t *dims,
                                                  size_t dims_capacity);

/* Runs the model on `inputs` and writes the requested outputs into caller buffers.
 * inputs, n_inputs: exactly the model's declared inputs, each once, in any order (or by
 *   position with name NULL). dtype, rank, fixed dimensions and byte_size are checked;
 *   data is read in place and must not change during the call.
 * outputs, n_outputs: any subset of the declared outputs (each at most once; name NULL
 *   means the i-th declared output). dtype, rank and shape must equal what
 *   graft_session_output_shape reports and byte_size must be exactly the size of that
 *   shape; data is overwritten. Outputs not requested are computed into internal scratch.
 *   outputs may be NULL when n_outputs is 0.
 * run_options: NULL, or options naming one adapter per batch row for this run
 *   (graft_run_options_set_row_adapters), which then replace the session's bound adapters,
 *   and/or auxiliary tensors for generator adapters (graft_run_options_set_aux).
 * On failure the contents of output buffers are unspecified.
 * Returns: GRAFT_STATUS_OK; GRAFT_STATUS_INVALID_ARGUMENT (NULL session, bad struct_size,
 *   unknown, missing or repeated name, wrong dtype, rank, dimension, byte_size or alignment,
 *   session in use by another thread); GRAFT_STATUS_SHAPE_MISMATCH (shapes inconsistent
 *   inside the model, or an output buffer's shape differing from the computed one);
 *   GRAFT_STATUS_INVALID_DATA (e.g. a token id out of range); GRAFT_STATUS_UNSUPPORTED;
 *   GRAFT_STATUS_LIMIT_EXCEEDED; GRAFT_STATUS_INTERNAL.
 * Thread safety: one thread at a time per session; distinct sessions (over one shared model
 *   or not) run concurrently. */
GRAFT_API graft_status graft_session_run(graft_session *session, const graft_tensor *inputs,
                                         size_t n_inputs, graft_tensor *outputs,
                                         size_t n_outputs,
                                         const graft_run_options *run_options);

/* ------------------------------------------------------------------------------------------
 * Adapters
 *
 * An adapter (a PEFT LoRA directory, an (IA)3 directory, ...) is loaded for one model by the
 * plugin that claims its path (include/graft_plugin.h). Plugins are found, once per process,
 * beside libgraft.so (files named libGraftPlugin*.so) and in GRAFT_PLUGIN_PATH (a
 * colon-separated list of plugin files or folders), or loaded explicitly with
 * graft_plugin_load. An adapter is immutable and reference-counted: share it between sessions
 * and threads; a session keeps what it uses alive, so freeing an adapter that a session still
 * uses is safe.
 * ------------------------------------------------------------------------------------------ */
typedef struct graft_adapter graft_adapter;

/* Loads the adapter plugin at `path` (a shared object exporting graft_plugin_entry) unless
 * it is loaded already. Plugins are never unloaded.
 * Returns: GRAFT_STATUS_OK; GRAFT_STATUS_INVALID_ARGUMENT (NULL path, no entry symbol, a
 *   malformed table); GRAFT_STATUS_UNSUPPORTED (another plugin ABI major: the message names
 *   both versions); GRAFT_STATUS_IO (the file cannot be loaded).
 * Thread safety: any thread. */
GRAFT_API graft_status graft_plugin_load(const char *path);

/* Number of loaded plugins (after discovery beside libgraft.so and in GRAFT_PLUGIN_PATH).
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT for a NULL count.
 * Thread safety: any thread. */
GRAFT_API graft_status graft_plugin_count(size_t *count);

/* Name, version and one-line description of plugin `index` (load order). Strings stay valid
 * for the life of the process. Any out pointer may be NULL.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT for an index out of range.
 * Thread safety: any thread. */
GRAFT_API graft_status graft_plugin_info(size_t index, const char **name, const char **version,
                                         const char **description);

/* Loads the adapter at `path` (file or directory) for `model`, with the first loaded plugin
 * that claims it.
 * out: receives the adapter; free with graft_adapter_free. Set to NULL on failure.
 * Returns: GRAFT_STATUS_OK; GRAFT_STATUS_INVALID_ARGUMENT (NULL argument; a weight naming a
 *   layer the model does not have: the message lists the closest sites); GRAFT_STATUS_IO (no
 *   such path); GRAFT_STATUS_UNSUPPORTED (no plugin claims the path, or the plugin refuses a
 *   feature, e.g. DoRA); GRAFT_STATUS_INVALID_DATA (corrupt safetensors or config);
 *   GRAFT_STATUS_SHAPE_MISMATCH (weights that do not fit their layer).
 * Thread safety: any thread; the model may be in use by sessions meanwhile. */
GRAFT_API graft_status graft_adapter_load(const graft_model *model, const char *path,
                                          graft_adapter **out);

/* Releases the caller's reference. NULL is a no-op. Sessions that use the adapter keep it.
 * Thread safety: any thread. */
GRAFT_API void graft_adapter_free(graft_adapter *adapter);

/* The adapter's name (the plugin's choice; by default the last path component). Valid while
 * the adapter lives. Returns "" for NULL.
 * Thread safety: any thread. */
GRAFT_API const char *graft_adapter_name(const graft_adapter *adapter);

/* Binds adapters to a session for every following run, replacing what was bound (count 0:
 * the base model). The output is W x + sum_k scales[k] * (adapter k's terms).
 * adapters: `count` adapters loaded for the session's model.
 * scales: `count` finite scales, or NULL for 1.0 each.
 * merged: 0 to evaluate the terms at each layer per run (swapping is pointer work, well under
 *   a millisecond); 1 to fold low-rank terms into session-private copies of the weights
 *   (slower to bind, no per-run cost; for one static adapter over whole batches; gated or
 *   non-linear terms cannot be merged). Both give the same outputs within float tolerance.
 * Returns: GRAFT_STATUS_OK; GRAFT_STATUS_INVALID_ARGUMENT (NULL session, NULL adapters with
 *   count > 0, an adapter loaded for another model, a non-finite scale, session busy);
 *   GRAFT_STATUS_UNSUPPORTED (merging an adapter that cannot be merged).
 * Thread safety: one thread at a time per session (as graft_session_run). */
GRAFT_API graft_status graft_session_set_adapters(graft_session *session,
                                                  graft_adapter *const *adapters,
                                                  const float *scales, size_t count,
                                                  int32_t merged);

/* Names one adapter per batch row for runs with these options (a mixed batch): row b uses
 * adapters[b] at scale 1, or the base model where adapters[b] is NULL. count must equal the
 * batch size of the run; count 0 clears it. The options keep the adapters alive.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT (NULL options, NULL adapters
 *   with count > 0).
 * Thread safety: one thread at a time per options object. */
GRAFT_API graft_status graft_run_options_set_row_adapters(graft_run_options *options,
                                                          graft_adapter *const *adapters,
                                                          size_t count);

/* Gives one modality id per token for runs with these options, for adapters that act only on
 * the tokens of some modalities (e.g. LoRA on image tokens only): ids holds batch × sequence
 * values, row-major, each in 0...31 (ids above 31 match no adapter). count 0 clears them. A
 * modality-gated adapter run without ids fails with GRAFT_STATUS_INVALID_ARGUMENT; ids whose
 * count differs from the tokens a gated layer sees fail with GRAFT_STATUS_SHAPE_MISMATCH.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT (NULL options, NULL ids with
 *   count > 0).
 * Thread safety: one thread at a time per options object. */
GRAFT_API graft_status graft_run_options_set_modalities(graft_run_options *options,
                                                        const uint8_t *ids, size_t count);

/* ------------------------------------------------------------------------------------------
 * Auxiliary inputs and generated weights (VLoRA)
 *
 * Some adapters (GRAFT_VLORA directories, docs/ADAPTERS.md) carry a generator: an ONNX model
 * that turns a request's auxiliary input — e.g. an image's visual features [N_v, d_v], named
 * "image_features" — into low-rank weights at the model's linear layers. The weights exist for
 * one run (graft_run_options_set_aux) or for a request adapter the caller keeps across decode
 * steps (graft_adapter_generate); they never reach other runs or sessions.
 * ------------------------------------------------------------------------------------------ */

/* How a run applies generated low-rank weights (graft_run_options_set_merge). Unmerged costs
 * r*(in+out) multiply-adds per token at a layer; merging (W' = W + s*B*A in a run-private copy
 * of W) costs r*in*out once. AUTO merges one image's weights when the run's tokens make the
 * unmerged terms the costlier, summed over the adapter's layers. */
enum {
    GRAFT_MERGE_AUTO = 0,
    GRAFT_MERGE_UNMERGED = 1,
    GRAFT_MERGE_MERGED = 2
};

/* Gives auxiliary tensors by name for runs with these options (count 0 clears them). Every
 * generator adapter of the run — bound with graft_session_set_adapters or named per row —
 * generates its weights from the tensor named by its auxiliary input
 * (graft_adapter_aux_input): either one image's features, shaped as the generator's input
 * (e.g. [N_v, d_v]), used by every row; or one image per batch row, with a leading batch axis
 * ([batch, N_v, d_v]). With per-row adapters, rows whose adapter is NULL (the base model) or
 * not a generator do not read their slice. The tensors are copied; the caller's buffers may be
 * freed after the call. A run whose generator adapters lack their auxiliary input, with a
 * tensor no adapter of the run reads, or with a dtype or shape the generator does not accept
 * fails with GRAFT_STATUS_INVALID_ARGUMENT or GRAFT_STATUS_SHAPE_MISMATCH naming the input.
 * aux: `count` tensors with non-NULL names, each name once (struct_size as for inputs).
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT (NULL options, NULL aux with
 *   count > 0, a NULL or repeated name, bad struct_size, byte_size or dtype).
 * Thread safety: one thread at a time per options object. */
GRAFT_API graft_status graft_run_options_set_aux(graft_run_options *options, const graft_tensor *aux,
                                                 size_t count);

/* How runs with these options apply generated weights: GRAFT_MERGE_AUTO (the default),
 * GRAFT_MERGE_UNMERGED or GRAFT_MERGE_MERGED. Both give the same outputs within float
 * tolerance. A generator bound merged (graft_session_set_adapters with merged 1) is merged under
 * AUTO. Merging needs one image for the whole batch and no per-row adapters: otherwise
 * GRAFT_MERGE_MERGED fails the run with GRAFT_STATUS_UNSUPPORTED (AUTO then runs unmerged).
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT (NULL options, unknown mode).
 * Thread safety: one thread at a time per options object. */
GRAFT_API graft_status graft_run_options_set_merge(graft_run_options *options, int32_t mode);

/* Runs `adapter`'s generator on `aux` (one image: its auxiliary input shaped as the
 * generator's input) and returns a request adapter: an ordinary adapter holding the generated
 * weights (plus the adapter's fixed ones). Bind it with graft_session_set_adapters (merged or
 * not, together with other adapters) or name it per row with graft_run_options_set_row_adapters
 * for as many runs as the request lasts (decode steps), then free it.
 * aux, count: the auxiliary tensors by name (read during the call, not retained).
 * threads: threads the generator may use, 1...256.
 * out: receives the new adapter; free with graft_adapter_free. Set to NULL on failure.
 * Returns: GRAFT_STATUS_OK; GRAFT_STATUS_INVALID_ARGUMENT (NULL argument, an adapter without a
 *   generator, a missing or unknown auxiliary tensor, wrong dtype, bad thread count);
 *   GRAFT_STATUS_SHAPE_MISMATCH (features or generated factors of the wrong shape).
 * Thread safety: any thread; the adapter may be in use meanwhile. */
GRAFT_API graft_status graft_adapter_generate(const graft_adapter *adapter, const graft_tensor *aux,
                                              size_t count, int32_t threads, graft_adapter **out);

/* One adapter that is the sum of `count` adapters, each at a scale: binding it equals binding
 * them together (channel scales of several adapters at one layer multiply; caller scales apply
 * to low-rank terms). Its terms share the parts' weights (no copy). Use it to give one batch
 * row several adapters, e.g. an image's request adapter (graft_adapter_generate) and a task
 * LoRA, with graft_run_options_set_row_adapters. Generator adapters themselves cannot be
 * composed: compose their request adapters.
 * scales: `count` finite scales, or NULL for 1.0 each.
 * out: receives the new adapter (name "a+b"); free with graft_adapter_free. NULL on failure.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT (NULL argument, count 0, a NULL
 *   entry, adapters of different models, a non-finite scale, a generator adapter).
 * Thread safety: any thread. */
GRAFT_API graft_status graft_adapter_compose(graft_adapter *const *adapters, const float *scales, size_t count,
                                             graft_adapter **out);

/* The auxiliary input `adapter`'s generator reads (e.g. "image_features"), valid while the
 * adapter lives; NULL for an adapter without a generator (and for NULL).
 * Thread safety: any thread. */
GRAFT_API const char *graft_adapter_aux_input(const graft_adapter *adapter);

/* ------------------------------------------------------------------------------------------
 * Routed experts: naming routers, controlling them per request, reading routing decisions
 *
 * A mixture adapter (MoE-LoRA, ModalityGate, ...) has routers: per site, a gate that weighs
 * its experts per token. A router is named by its adapter and its index there, 0...count-1
 * in the order the plugin added them (MoE-LoRA: one router per adapted module, in the order of
 * the weight file); graft_adapter_find_router gives the index of the router at a named site.
 * Controls are per request: they live in run options and apply to the runs made with them.
 * docs/ADAPTERS.md ("Controlling routed experts") gives the exact semantics.
 * ------------------------------------------------------------------------------------------ */

/* Number of routers of an adapter (0 for an adapter without routing).
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT for NULL arguments.
 * Thread safety: any thread. */
GRAFT_API graft_status graft_adapter_router_count(const graft_adapter *adapter, size_t *count);

/* Router `index` of an adapter: the index of its site (graft_model_site_info names it) and its
 * number of experts E. Out pointers may be NULL.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT for a NULL adapter or an index
 *   out of range.
 * Thread safety: any thread. */
GRAFT_API graft_status graft_adapter_router_info(const graft_adapter *adapter, size_t index,
                                                 size_t *site, size_t *experts);

/* The index of the adapter's router at the site whose module name equals `site` or ends with
 * "." + site.
 * Returns: GRAFT_STATUS_OK; GRAFT_STATUS_INVALID_ARGUMENT (NULL argument; no router at such a
 *   site, or several: the message lists the adapter's router sites).
 * Thread safety: any thread. */
GRAFT_API graft_status graft_adapter_find_router(const graft_adapter *adapter, const char *site,
                                                 size_t *index);

/* Expert mask kinds for graft_run_options_set_experts. */
enum {
    /* The router chooses among these experts only: the others get logit -inf before the gate,
     * so softmax and renormalisation run over the allowed ones and top-k keeps
     * min(k, allowed) of them. */
    GRAFT_EXPERTS_ALLOW = 0,
    /* The router never chooses these experts (the complement of ALLOW). ALLOW and DENY may
     * both be set: the router chooses among allowed and not denied experts. */
    GRAFT_EXPERTS_DENY = 1,
    /* The router is bypassed: every forced expert gets weight 1 on every token and the others
     * 0 (one forced expert is exactly that expert's LoRA). Cannot be combined with another
     * control of the same router. */
    GRAFT_EXPERTS_FORCE = 2
};

/* Sets an expert mask of router `router` of `adapter` for runs with these options: mask holds
 * one byte per expert (non-zero: the expert is in the set); count must equal the router's E.
 * mask NULL with count 0 clears that kind of mask. The adapter must be bound (or named in the
 * row adapters) in the runs, else the run fails with GRAFT_STATUS_INVALID_ARGUMENT.
 * Returns: GRAFT_STATUS_OK; GRAFT_STATUS_INVALID_ARGUMENT (NULL options or adapter; no such
 *   router; an unknown mode; count differing from E; a mask naming no expert, or ALLOW and
 *   DENY together leaving none; FORCE with another control of the router or the reverse). A
 *   run in which the masks and a token's modality group (ModalityGate) leave the token no
 *   expert fails with GRAFT_STATUS_INVALID_ARGUMENT.
 * Thread safety: one thread at a time per options object. */
GRAFT_API graft_status graft_run_options_set_experts(graft_run_options *options,
                                                     const graft_adapter *adapter, size_t router,
                                                     int32_t mode, const uint8_t *mask,
                                                     size_t count);

/* Replaces the output of router `router` of `adapter` for runs with these options: weights
 * [tokens x experts], row-major, one row per token the router's site sees (batch x sequence),
 * used as they are (no gate, no renormalisation). weights NULL with tokens 0 clears it.
 * Returns: GRAFT_STATUS_OK; GRAFT_STATUS_INVALID_ARGUMENT (NULL options or adapter; no such
 *   router; a non-finite weight; another control of the same router); GRAFT_STATUS_SHAPE_MISMATCH
 *   (experts differing from the router's E). A run whose site sees another number of tokens
 *   fails with GRAFT_STATUS_SHAPE_MISMATCH.
 * Thread safety: one thread at a time per options object. */
GRAFT_API graft_status graft_run_options_set_routing(graft_run_options *options,
                                                     const graft_adapter *adapter, size_t router,
                                                     const float *weights, size_t tokens,
                                                     size_t experts);

/* Routing decisions of a run: filled by graft_session_run when the run's options carry it
 * (graft_run_options_set_routing_record), replaced by each such run. */
typedef struct graft_routing_record graft_routing_record;

/* Creates an empty record; free with graft_routing_record_free.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT when out is NULL. */
GRAFT_API graft_status graft_routing_record_create(graft_routing_record **out);

/* Frees a record. NULL is a no-op. Options that carry it keep it alive until they drop it. */
GRAFT_API void graft_routing_record_free(graft_routing_record *record);

/* Makes runs with these options write their routing decisions into `record` (NULL: stop).
 * The options keep the record alive.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT for NULL options.
 * Thread safety: one thread at a time per options object and record. */
GRAFT_API graft_status graft_run_options_set_routing_record(graft_run_options *options,
                                                            graft_routing_record *record);

/* One router evaluation of the recorded run (library-filled; the caller sets struct_size). */
typedef struct graft_routing_entry {
    uint32_t struct_size;   /* set by the caller: sizeof(graft_routing_entry) */
    uint32_t router;        /* the router's index in its adapter */
    const char *adapter;    /* the adapter's name */
    size_t site;            /* the router's site index */
    size_t tokens;          /* rows the site saw (batch x sequence; with row adapters, every
                               row of the batch, including other adapters' rows) */
    size_t experts;         /* E */
    const float *weights;   /* [tokens x experts] row-major: each token's final expert weights
                               (after masks, forcing, override and the gate); an expert was
                               chosen for a token when its weight is non-zero */
} graft_routing_entry;

/* Number of router evaluations in the record (0 before any run).
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT for NULL arguments.
 * Thread safety: not during a run that writes the record. */
GRAFT_API graft_status graft_routing_record_count(const graft_routing_record *record, size_t *count);

/* Entry `index` (in the order the run evaluated the routers). Strings and weights stay valid
 * until the next run that writes the record or until it is freed.
 * Returns: GRAFT_STATUS_OK; GRAFT_STATUS_INVALID_ARGUMENT (NULL argument, index out of range,
 *   struct_size smaller than this version's graft_routing_entry).
 * Thread safety: not during a run that writes the record. */
GRAFT_API graft_status graft_routing_record_entry(const graft_routing_record *record, size_t index,
                                                  graft_routing_entry *entry);

/* Number of adapter sites (linear layers adapters can attach to) of a model.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT for NULL arguments.
 * Thread safety: any thread. */
GRAFT_API graft_status graft_model_site_count(const graft_model *model, size_t *count);

/* Site `index`: its source module name (e.g. "encoder.layer.0.attention.self.query", valid
 * while the model lives) and its in/out features. Out pointers may be NULL.
 * Returns: GRAFT_STATUS_OK, or GRAFT_STATUS_INVALID_ARGUMENT for NULL model or an index out
 *   of range.
 * Thread safety: any thread. */
GRAFT_API graft_status graft_model_site_info(const graft_model *model, size_t index,
                                             const char **name, int64_t *in_features,
                                             int64_t *out_features);

#ifdef __cplusplus
} /* extern "C" */
#endif

/* Frozen layouts (LP64 targets). */
#if defined(__LP64__) || defined(_LP64)
#ifdef __cplusplus
#define GRAFT_STATIC_ASSERT static_assert
#else
#define GRAFT_STATIC_ASSERT _Static_assert
#endif
GRAFT_STATIC_ASSERT(sizeof(graft_tensor) == 48, "graft_tensor layout");
GRAFT_STATIC_ASSERT(offsetof(graft_tensor, struct_size) == 0, "graft_tensor layout");
GRAFT_STATIC_ASSERT(offsetof(graft_tensor, dtype) == 4, "graft_tensor layout");
GRAFT_STATIC_ASSERT(offsetof(graft_tensor, name) == 8, "graft_tensor layout");
GRAFT_STATIC_ASSERT(offsetof(graft_tensor, rank) == 16, "graft_tensor layout");
GRAFT_STATIC_ASSERT(offsetof(graft_tensor, shape) == 24, "graft_tensor layout");
GRAFT_STATIC_ASSERT(offsetof(graft_tensor, data) == 32, "graft_tensor layout");
GRAFT_STATIC_ASSERT(offsetof(graft_tensor, byte_size) == 40, "graft_tensor layout");
GRAFT_STATIC_ASSERT(sizeof(graft_value_info) == 24, "graft_value_info layout");
GRAFT_STATIC_ASSERT(offsetof(graft_value_info, struct_size) == 0, "graft_value_info layout");
GRAFT_STATIC_ASSERT(offsetof(graft_value_info, dtype) == 4, "graft_value_info layout");
GRAFT_STATIC_ASSERT(offsetof(graft_value_info, name) == 8, "graft_value_info layout");
GRAFT_STATIC_ASSERT(offsetof(graft_value_info, rank) == 16, "graft_value_info layout");
#undef GRAFT_STATIC_ASSERT
#endif

#endif /* GRAFT_H */
