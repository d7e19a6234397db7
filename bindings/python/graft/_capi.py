"""The C API of graft.h through ctypes: library loading, the ABI check, and one binding per C
function with its prototype echoed above it. Functions returning graft_status raise
GraftError through `errcheck`."""

import ctypes
import ctypes.util
import os

ABI_VERSION = 1  # GRAFT_ABI_VERSION this module was written against


class GraftError(Exception):
    """A failed Graft call: `code` is the graft_status (see STATUS_*), `message` the library's
    description of the problem."""

    def __init__(self, code, message):
        super().__init__(code, message)
        self.code = int(code)
        self.message = message

    def __str__(self):
        return f"{self.message} (status {self.code})"


GraftError.__module__ = "graft"


# graft_status values (graft.h), stable and only ever appended to.
STATUS_OK = 0
STATUS_INVALID_ARGUMENT = 1
STATUS_INVALID_MODEL = 2
STATUS_UNSUPPORTED = 3
STATUS_IO = 4
STATUS_SHAPE_MISMATCH = 5
STATUS_LIMIT_EXCEEDED = 6
STATUS_INVALID_DATA = 7
STATUS_INTERNAL = 8

# graft_dtype values (ONNX numbering).
DTYPE_FLOAT32 = 1
DTYPE_UINT8 = 2
DTYPE_INT8 = 3
DTYPE_INT32 = 6
DTYPE_INT64 = 7
DTYPE_BOOL = 9
DTYPE_FLOAT16 = 10
DTYPE_FLOAT64 = 11
DTYPE_BFLOAT16 = 16

_LIB_NAMES = ("libgraft.so", "libGraftC.so")


def _load():
    tried = []
    override = os.environ.get("GRAFT_LIBRARY")
    if override:
        try:
            return ctypes.CDLL(override)
        except OSError as e:
            raise ImportError(f"graft: GRAFT_LIBRARY={override!r} could not be loaded: {e}") from None
    here = os.path.dirname(os.path.abspath(__file__))
    for name in _LIB_NAMES:
        path = os.path.join(here, name)
        tried.append(path)
        if os.path.exists(path):
            return ctypes.CDLL(path)
    candidates = [n for n in (ctypes.util.find_library("graft"),) if n] + ["libgraft.so"]
    for name in candidates:
        tried.append(name)
        try:
            return ctypes.CDLL(name)
        except OSError:
            pass
    raise ImportError(
        "graft: libgraft.so not found (tried " + ", ".join(tried) + "). Build it with "
        "`swift build -c release --product GraftC` and set GRAFT_LIBRARY to the built "
        "libGraftC.so, or install it with `scripts/install.sh PREFIX` and put PREFIX/lib on "
        "the library path (LD_LIBRARY_PATH)."
    )


lib = _load()

# ---------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------

graft_status = ctypes.c_int32
graft_dtype = ctypes.c_int32
c_size_p = ctypes.POINTER(ctypes.c_size_t)
c_int64_p = ctypes.POINTER(ctypes.c_int64)
handle = ctypes.c_void_p
handle_p = ctypes.POINTER(ctypes.c_void_p)


# typedef struct graft_tensor {
#     uint32_t struct_size; graft_dtype dtype; const char *name; size_t rank;
#     const int64_t *shape; void *data; size_t byte_size;
# } graft_tensor;
class Tensor(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("dtype", graft_dtype),
        ("name", ctypes.c_char_p),
        ("rank", ctypes.c_size_t),
        ("shape", c_int64_p),
        ("data", ctypes.c_void_p),
        ("byte_size", ctypes.c_size_t),
    ]


# typedef struct graft_value_info {
#     uint32_t struct_size; graft_dtype dtype; const char *name; int64_t rank;
# } graft_value_info;
class ValueInfo(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("dtype", graft_dtype),
        ("name", ctypes.c_char_p),
        ("rank", ctypes.c_int64),
    ]


assert ctypes.sizeof(Tensor) == 48 and ctypes.sizeof(ValueInfo) == 24, "graft.h layouts changed"


def _check(status, func, args):
    if status != STATUS_OK:
        raise GraftError(status, lib.graft_last_error().decode("utf-8", "replace"))
    return status


def _bind(name, restype, argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = argtypes
    if restype is graft_status:
        f.errcheck = _check
    return f


# ---------------------------------------------------------------------------------------
# Functions (prototypes from graft.h)
# ---------------------------------------------------------------------------------------

# const char *graft_version(void);
graft_version = _bind("graft_version", ctypes.c_char_p, [])
# uint32_t graft_abi_version(void);
graft_abi_version = _bind("graft_abi_version", ctypes.c_uint32, [])
# const char *graft_status_string(graft_status status);
graft_status_string = _bind("graft_status_string", ctypes.c_char_p, [graft_status])
# const char *graft_last_error(void);
graft_last_error = _bind("graft_last_error", ctypes.c_char_p, [])
# size_t graft_dtype_size(graft_dtype dtype);
graft_dtype_size = _bind("graft_dtype_size", ctypes.c_size_t, [graft_dtype])

# graft_status graft_model_options_create(graft_model_options **out);
graft_model_options_create = _bind("graft_model_options_create", graft_status, [handle_p])
# void graft_model_options_free(graft_model_options *options);
graft_model_options_free = _bind("graft_model_options_free", None, [handle])
# graft_status graft_model_options_set_external_data(graft_model_options *options, int32_t allow);
graft_model_options_set_external_data = _bind(
    "graft_model_options_set_external_data", graft_status, [handle, ctypes.c_int32])
# graft_status graft_model_options_set_site_map(graft_model_options *options, const char *path);
graft_model_options_set_site_map = _bind(
    "graft_model_options_set_site_map", graft_status, [handle, ctypes.c_char_p])
# graft_limit values (graft.h): caps a model, its sessions and its adapters obey.
LIMIT_TENSOR_BYTES = 1
LIMIT_WEIGHT_BYTES = 2
LIMIT_ADAPTER_RANK = 3
LIMIT_ADAPTER_TERMS = 4
LIMIT_ADAPTER_BYTES = 5
LIMIT_BOUND_ADAPTERS = 6
# graft_status graft_model_options_set_limit(graft_model_options *options, graft_limit limit, uint64_t value);
graft_model_options_set_limit = _bind(
    "graft_model_options_set_limit", graft_status, [handle, ctypes.c_int32, ctypes.c_uint64])
# graft_status graft_model_load(const char *path, const graft_model_options *options, graft_model **out);
graft_model_load = _bind("graft_model_load", graft_status, [ctypes.c_char_p, handle, handle_p])
# graft_status graft_model_load_from_memory(const void *data, size_t size,
#                                           const graft_model_options *options, graft_model **out);
graft_model_load_from_memory = _bind(
    "graft_model_load_from_memory", graft_status, [ctypes.c_void_p, ctypes.c_size_t, handle, handle_p])
# void graft_model_free(graft_model *model);
graft_model_free = _bind("graft_model_free", None, [handle])
# graft_status graft_model_input_count(const graft_model *model, size_t *count);
graft_model_input_count = _bind("graft_model_input_count", graft_status, [handle, c_size_p])
# graft_status graft_model_output_count(const graft_model *model, size_t *count);
graft_model_output_count = _bind("graft_model_output_count", graft_status, [handle, c_size_p])
# graft_status graft_model_input_info(const graft_model *model, size_t index, graft_value_info *info);
graft_model_input_info = _bind(
    "graft_model_input_info", graft_status, [handle, ctypes.c_size_t, ctypes.POINTER(ValueInfo)])
# graft_status graft_model_output_info(const graft_model *model, size_t index, graft_value_info *info);
graft_model_output_info = _bind(
    "graft_model_output_info", graft_status, [handle, ctypes.c_size_t, ctypes.POINTER(ValueInfo)])
# graft_status graft_model_input_dim(const graft_model *model, size_t index, size_t axis,
#                                    int64_t *size, const char **symbol);
graft_model_input_dim = _bind(
    "graft_model_input_dim", graft_status,
    [handle, ctypes.c_size_t, ctypes.c_size_t, c_int64_p, ctypes.POINTER(ctypes.c_char_p)])
# graft_status graft_model_output_dim(const graft_model *model, size_t index, size_t axis,
#                                     int64_t *size, const char **symbol);
graft_model_output_dim = _bind(
    "graft_model_output_dim", graft_status,
    [handle, ctypes.c_size_t, ctypes.c_size_t, c_int64_p, ctypes.POINTER(ctypes.c_char_p)])

# graft_status graft_session_options_create(graft_session_options **out);
graft_session_options_create = _bind("graft_session_options_create", graft_status, [handle_p])
# void graft_session_options_free(graft_session_options *options);
graft_session_options_free = _bind("graft_session_options_free", None, [handle])
# graft_status graft_session_options_set_threads(graft_session_options *options, int32_t threads);
graft_session_options_set_threads = _bind(
    "graft_session_options_set_threads", graft_status, [handle, ctypes.c_int32])
# graft_status graft_session_create(const graft_model *model, const graft_session_options *options,
#                                   graft_session **out);
graft_session_create = _bind("graft_session_create", graft_status, [handle, handle, handle_p])
# void graft_session_free(graft_session *session);
graft_session_free = _bind("graft_session_free", None, [handle])
# graft_status graft_run_options_create(graft_run_options **out);
graft_run_options_create = _bind("graft_run_options_create", graft_status, [handle_p])
# void graft_run_options_free(graft_run_options *options);
graft_run_options_free = _bind("graft_run_options_free", None, [handle])
# graft_status graft_session_output_shape(graft_session *session, const graft_tensor *inputs,
#                                         size_t n_inputs, size_t output_index, graft_dtype *dtype,
#                                         size_t *rank, int64_t *dims, size_t dims_capacity);
graft_session_output_shape = _bind(
    "graft_session_output_shape", graft_status,
    [handle, ctypes.POINTER(Tensor), ctypes.c_size_t, ctypes.c_size_t, ctypes.POINTER(graft_dtype),
     c_size_p, c_int64_p, ctypes.c_size_t])
# graft_status graft_session_run(graft_session *session, const graft_tensor *inputs, size_t n_inputs,
#                                graft_tensor *outputs, size_t n_outputs,
#                                const graft_run_options *run_options);
graft_session_run = _bind(
    "graft_session_run", graft_status,
    [handle, ctypes.POINTER(Tensor), ctypes.c_size_t, ctypes.POINTER(Tensor), ctypes.c_size_t, handle])

# graft_status graft_plugin_load(const char *path);
graft_plugin_load = _bind("graft_plugin_load", graft_status, [ctypes.c_char_p])
# graft_status graft_plugin_count(size_t *count);
graft_plugin_count = _bind("graft_plugin_count", graft_status, [c_size_p])
# graft_status graft_plugin_info(size_t index, const char **name, const char **version,
#                                const char **description);
graft_plugin_info = _bind(
    "graft_plugin_info", graft_status,
    [ctypes.c_size_t, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p),
     ctypes.POINTER(ctypes.c_char_p)])
# graft_status graft_adapter_load(const graft_model *model, const char *path, graft_adapter **out);
graft_adapter_load = _bind("graft_adapter_load", graft_status, [handle, ctypes.c_char_p, handle_p])
# void graft_adapter_free(graft_adapter *adapter);
graft_adapter_free = _bind("graft_adapter_free", None, [handle])
# const char *graft_adapter_name(const graft_adapter *adapter);
graft_adapter_name = _bind("graft_adapter_name", ctypes.c_char_p, [handle])
# graft_status graft_session_set_adapters(graft_session *session, graft_adapter *const *adapters,
#                                         const float *scales, size_t count, int32_t merged);
graft_session_set_adapters = _bind(
    "graft_session_set_adapters", graft_status,
    [handle, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, ctypes.c_int32])
# graft_status graft_run_options_set_row_adapters(graft_run_options *options,
#                                                 graft_adapter *const *adapters, size_t count);
graft_run_options_set_row_adapters = _bind(
    "graft_run_options_set_row_adapters", graft_status, [handle, ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t])
# graft_status graft_run_options_set_modalities(graft_run_options *options, const uint8_t *ids,
#                                               size_t count);
graft_run_options_set_modalities = _bind(
    "graft_run_options_set_modalities", graft_status, [handle, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t])
# graft_status graft_run_options_set_aux(graft_run_options *options, const graft_tensor *aux,
#                                        size_t count);
graft_run_options_set_aux = _bind(
    "graft_run_options_set_aux", graft_status, [handle, ctypes.POINTER(Tensor), ctypes.c_size_t])
# graft_status graft_run_options_set_merge(graft_run_options *options, int32_t mode);
graft_run_options_set_merge = _bind("graft_run_options_set_merge", graft_status, [handle, ctypes.c_int32])
# graft_status graft_adapter_generate(const graft_adapter *adapter, const graft_tensor *aux,
#                                     size_t count, int32_t threads, graft_adapter **out);
graft_adapter_generate = _bind(
    "graft_adapter_generate", graft_status, [handle, ctypes.POINTER(Tensor), ctypes.c_size_t, ctypes.c_int32, handle_p])
# graft_status graft_adapter_compose(graft_adapter *const *adapters, const float *scales, size_t count,
#                                    graft_adapter **out);
graft_adapter_compose = _bind(
    "graft_adapter_compose", graft_status,
    [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, handle_p])
# const char *graft_adapter_aux_input(const graft_adapter *adapter);
graft_adapter_aux_input = _bind("graft_adapter_aux_input", ctypes.c_char_p, [handle])
# Routed experts (graft.h, "Routed experts").
EXPERTS_ALLOW, EXPERTS_DENY, EXPERTS_FORCE = 0, 1, 2


class RoutingEntry(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("router", ctypes.c_uint32), ("adapter", ctypes.c_char_p),
                ("site", ctypes.c_size_t), ("tokens", ctypes.c_size_t), ("experts", ctypes.c_size_t),
                ("weights", ctypes.POINTER(ctypes.c_float))]


# graft_status graft_adapter_router_count(const graft_adapter *adapter, size_t *count);
graft_adapter_router_count = _bind("graft_adapter_router_count", graft_status, [handle, c_size_p])
# graft_status graft_adapter_router_info(const graft_adapter *adapter, size_t index, size_t *site,
#                                        size_t *experts);
graft_adapter_router_info = _bind(
    "graft_adapter_router_info", graft_status, [handle, ctypes.c_size_t, c_size_p, c_size_p])
# graft_status graft_adapter_find_router(const graft_adapter *adapter, const char *site, size_t *index);
graft_adapter_find_router = _bind("graft_adapter_find_router", graft_status, [handle, ctypes.c_char_p, c_size_p])
# graft_status graft_run_options_set_experts(graft_run_options *options, const graft_adapter *adapter,
#                                            size_t router, int32_t mode, const uint8_t *mask, size_t count);
graft_run_options_set_experts = _bind(
    "graft_run_options_set_experts", graft_status,
    [handle, handle, ctypes.c_size_t, ctypes.c_int32, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t])
# graft_status graft_run_options_set_routing(graft_run_options *options, const graft_adapter *adapter,
#                                            size_t router, const float *weights, size_t tokens, size_t experts);
graft_run_options_set_routing = _bind(
    "graft_run_options_set_routing", graft_status,
    [handle, handle, ctypes.c_size_t, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, ctypes.c_size_t])
# graft_status graft_routing_record_create(graft_routing_record **out);
graft_routing_record_create = _bind("graft_routing_record_create", graft_status, [handle_p])
# void graft_routing_record_free(graft_routing_record *record);
graft_routing_record_free = _bind("graft_routing_record_free", None, [handle])
# graft_status graft_run_options_set_routing_record(graft_run_options *options, graft_routing_record *record);
graft_run_options_set_routing_record = _bind(
    "graft_run_options_set_routing_record", graft_status, [handle, handle])
# graft_status graft_routing_record_count(const graft_routing_record *record, size_t *count);
graft_routing_record_count = _bind("graft_routing_record_count", graft_status, [handle, c_size_p])
# graft_status graft_routing_record_entry(const graft_routing_record *record, size_t index,
#                                         graft_routing_entry *entry);
graft_routing_record_entry = _bind(
    "graft_routing_record_entry", graft_status, [handle, ctypes.c_size_t, ctypes.POINTER(RoutingEntry)])
# graft_status graft_model_site_count(const graft_model *model, size_t *count);
graft_model_site_count = _bind("graft_model_site_count", graft_status, [handle, c_size_p])
# graft_status graft_model_site_info(const graft_model *model, size_t index, const char **name,
#                                    int64_t *in_features, int64_t *out_features);
graft_model_site_info = _bind(
    "graft_model_site_info", graft_status,
    [handle, ctypes.c_size_t, ctypes.POINTER(ctypes.c_char_p), c_int64_p, c_int64_p])

# The ABI check: refuse a library built from another ABI of graft.h.
_abi = graft_abi_version()
if _abi != ABI_VERSION:
    raise ImportError(
        f"graft: {getattr(lib, '_name', 'libgraft')} has ABI version {_abi}, but this Python "
        f"package needs ABI version {ABI_VERSION}; install matching versions")
