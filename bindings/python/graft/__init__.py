"""Graft: CPU inference for ONNX models (Python bindings over libgraft, ctypes + numpy).

    import graft
    with graft.Model("model.onnx") as model:
        print(model.inputs, model.outputs)
        with model.session(threads=2) as session:
            outputs = session.run({"input_ids": ids, "attention_mask": mask})

Threads: a Model may be shared by any number of threads; a Session is used by one thread at a
time (give each thread its own `model.session()`). The library runs without the GIL, so
sessions on different threads run in parallel. `model.run(...)` uses one default session,
serialised by a lock.
"""

import ctypes
import threading
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _capi as _c
from ._capi import GraftError  # noqa: F401  (public)
from . import _routing
from ._routing import RoutingDecision  # noqa: F401  (public)
from ._capi import (  # noqa: F401  (public status codes)
    STATUS_OK, STATUS_INVALID_ARGUMENT, STATUS_INVALID_MODEL, STATUS_UNSUPPORTED, STATUS_IO,
    STATUS_SHAPE_MISMATCH, STATUS_LIMIT_EXCEEDED, STATUS_INVALID_DATA, STATUS_INTERNAL,
)

__all__ = ["Model", "Session", "Adapter", "TensorInfo", "GraftError", "LIMITS", "version", "abi_version", "load_plugin", "plugins",
           "compose"]
__version__ = "0.1.0"

_TO_NUMPY = {
    _c.DTYPE_FLOAT32: np.dtype(np.float32),
    _c.DTYPE_UINT8: np.dtype(np.uint8),
    _c.DTYPE_INT8: np.dtype(np.int8),
    _c.DTYPE_INT32: np.dtype(np.int32),
    _c.DTYPE_INT64: np.dtype(np.int64),
    _c.DTYPE_BOOL: np.dtype(np.bool_),
    _c.DTYPE_FLOAT16: np.dtype(np.float16),
    _c.DTYPE_FLOAT64: np.dtype(np.float64),
}
_FROM_NUMPY = {v: k for k, v in _TO_NUMPY.items()}


def version() -> str:
    """The library's version string."""
    return _c.graft_version().decode()


def abi_version() -> int:
    """The library's ABI version (checked against this package at import)."""
    return int(_c.graft_abi_version())


class TensorInfo(NamedTuple):
    """A declared model input or output. `shape` holds ints for fixed dimensions, strings for
    symbolic ones ("batch"), None for unnamed ones; it is None when the file records no
    shape. `dtype` is a numpy dtype (bfloat16 shows as the string "bfloat16")."""

    name: str
    dtype: Union[np.dtype, str]
    shape: Optional[Tuple[Union[int, str, None], ...]]


def _closed(what):
    return GraftError(_c.STATUS_INVALID_ARGUMENT, f"the {what} is closed")


class _Closeable:
    """What every handle wrapper shares: a context manager, and a finaliser that calls the
    subclass's idempotent close()."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


# Keys of Model(limits=...) -> graft_limit (graft.h; defaults in docs/ROBUSTNESS.md).
LIMITS = {
    "tensor_bytes": _c.LIMIT_TENSOR_BYTES,      # one allocation a graph may cause (16 GiB)
    "weight_bytes": _c.LIMIT_WEIGHT_BYTES,      # all the model's weights (64 GiB)
    "adapter_rank": _c.LIMIT_ADAPTER_RANK,      # rank of one low-rank term (4096)
    "adapter_terms": _c.LIMIT_ADAPTER_TERMS,    # terms one adapter adds (65536)
    "adapter_bytes": _c.LIMIT_ADAPTER_BYTES,    # weights one adapter holds (16 GiB)
    "bound_adapters": _c.LIMIT_BOUND_ADAPTERS,  # adapters bound to a session at once (1024)
}


def _set_limits(opts, limits: Optional[Dict[str, int]]) -> None:
    for key, value in (limits or {}).items():
        if key not in LIMITS:
            raise GraftError(_c.STATUS_INVALID_ARGUMENT, f"unknown limit {key!r} (known: {', '.join(LIMITS)})")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GraftError(_c.STATUS_INVALID_ARGUMENT, f"limit {key!r} must be an integer of at least 1, got {value!r}")
        _c.graft_model_options_set_limit(opts, LIMITS[key], min(value, (1 << 63) - 1))


class Model(_Closeable):
    """An ONNX model loaded, validated and optimised by Graft.

    Model(path, external_data=True, threads=1, site_map=None): `external_data=False` refuses
    models that keep tensors in external files; `threads` is the thread count of the default
    session used by `run`; `site_map` is a JSON file naming adapter sites (node name -> module
    name) where the exporter left no usable names; `limits` caps what the model, its sessions and
    its adapters may allocate, as a dict of LIMITS keys to values (e.g. {"tensor_bytes": 1 << 30};
    unnamed caps keep their defaults, see docs/ROBUSTNESS.md). Raises GraftError (e.g. code STATUS_IO
    for a missing file, STATUS_UNSUPPORTED for an operator Graft does not implement,
    STATUS_LIMIT_EXCEEDED for a model over one of its limits)."""

    def __init__(self, path, *, external_data: bool = True, threads: int = 1, site_map=None,
                 limits: Optional[Dict[str, int]] = None):
        def configure(opts):
            _c.graft_model_options_set_external_data(opts, 1 if external_data else 0)
            if site_map is not None:
                _c.graft_model_options_set_site_map(opts, str(site_map).encode())

        self._load(threads, limits, configure,
                   lambda opts, handle: _c.graft_model_load(str(path).encode(), opts, handle))

    @classmethod
    def from_bytes(cls, data: bytes, *, threads: int = 1, limits: Optional[Dict[str, int]] = None) -> "Model":
        """Loads a model from bytes (external data is not possible); `limits` as for Model()."""
        self = cls.__new__(cls)
        self._load(threads, limits, lambda opts: None,
                   lambda opts, handle: _c.graft_model_load_from_memory(data, len(data), opts, handle))
        return self

    def _load(self, threads: int, limits: Optional[Dict[str, int]], configure, load) -> None:
        """What Model() and from_bytes share: model options made, set by `configure(opts)` and
        then `limits`, passed to `load(opts, byref(handle))` (a graft_model_load* call), and
        freed whatever happens; then the input and output infos are read."""
        self._handle = None
        self._default = None
        self._lock = threading.Lock()
        self._threads = threads
        opts = ctypes.c_void_p()
        _c.graft_model_options_create(ctypes.byref(opts))
        try:
            configure(opts)
            _set_limits(opts, limits)
            handle = ctypes.c_void_p()
            load(opts, ctypes.byref(handle))
            self._handle = handle
        finally:
            _c.graft_model_options_free(opts)
        self.inputs: List[TensorInfo] = self._values(output=False)
        self.outputs: List[TensorInfo] = self._values(output=True)

    def _values(self, output: bool) -> List[TensorInfo]:
        count_fn = _c.graft_model_output_count if output else _c.graft_model_input_count
        info_fn = _c.graft_model_output_info if output else _c.graft_model_input_info
        dim_fn = _c.graft_model_output_dim if output else _c.graft_model_input_dim
        n = ctypes.c_size_t()
        count_fn(self._handle, ctypes.byref(n))
        values = []
        for i in range(n.value):
            info = _c.ValueInfo(struct_size=ctypes.sizeof(_c.ValueInfo))
            info_fn(self._handle, i, ctypes.byref(info))
            shape = None
            if info.rank >= 0:
                dims = []
                for axis in range(info.rank):
                    size, symbol = ctypes.c_int64(), ctypes.c_char_p()
                    dim_fn(self._handle, i, axis, ctypes.byref(size), ctypes.byref(symbol))
                    dims.append(symbol.value.decode() if symbol.value is not None
                                else (size.value if size.value >= 0 else None))
                shape = tuple(dims)
            dtype = _TO_NUMPY.get(info.dtype, "bfloat16" if info.dtype == _c.DTYPE_BFLOAT16 else str(info.dtype))
            values.append(TensorInfo(info.name.decode(), dtype, shape))
        return values

    def load_adapter(self, path) -> "Adapter":
        """Loads the adapter at `path` (a PEFT LoRA or (IA)3 directory, or anything a loaded
        plugin claims) for this model. Raises GraftError when no plugin claims it, when it
        names a layer the model lacks (the message lists the closest), or when it is corrupt."""
        if self._handle is None:
            raise _closed("model")
        handle = ctypes.c_void_p()
        _c.graft_adapter_load(self._handle, str(path).encode(), ctypes.byref(handle))
        return Adapter(handle)

    @property
    def sites(self) -> List[Tuple[str, int, int]]:
        """The layers adapters can attach to: (module name, in_features, out_features)."""
        if self._handle is None:
            raise _closed("model")
        n = ctypes.c_size_t()
        _c.graft_model_site_count(self._handle, ctypes.byref(n))
        out = []
        for i in range(n.value):
            name, fin, fout = ctypes.c_char_p(), ctypes.c_int64(), ctypes.c_int64()
            _c.graft_model_site_info(self._handle, i, ctypes.byref(name), ctypes.byref(fin), ctypes.byref(fout))
            out.append((name.value.decode(), fin.value, fout.value))
        return out

    def session(self, threads: int = 1) -> "Session":
        """A new session for running the model from one thread at a time."""
        if self._handle is None:
            raise _closed("model")
        return Session(self, threads)

    def run(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Runs the model with a default session (created on first use; calls from several
        threads are serialised). See Session.run."""
        with self._lock:
            if self._handle is None:
                raise _closed("model")
            if self._default is None:
                self._default = Session(self, self._threads)
            return self._default.run(inputs)

    def close(self) -> None:
        """Releases the model (and the default session). Sessions already created keep
        working: they hold their own reference. Idempotent."""
        default, self._default = getattr(self, "_default", None), None
        if default is not None:
            default.close()
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            _c.graft_model_free(handle)

    def __repr__(self):
        return f"graft.Model(inputs={self.inputs}, outputs={self.outputs})"


def load_plugin(path) -> None:
    """Loads an adapter plugin (a shared object exporting graft_plugin_entry). Plugins beside
    the library and in GRAFT_PLUGIN_PATH are found automatically."""
    _c.graft_plugin_load(str(path).encode())


def plugins() -> List[Tuple[str, str, str]]:
    """The loaded plugins: (name, version, description)."""
    n = ctypes.c_size_t()
    _c.graft_plugin_count(ctypes.byref(n))
    out = []
    for i in range(n.value):
        name, version, desc = ctypes.c_char_p(), ctypes.c_char_p(), ctypes.c_char_p()
        _c.graft_plugin_info(i, ctypes.byref(name), ctypes.byref(version), ctypes.byref(desc))
        out.append((name.value.decode(), version.value.decode(), desc.value.decode()))
    return out


class Adapter(_Closeable):
    """An adapter loaded for one model (Model.load_adapter). Shareable between sessions and
    threads; sessions keep what they use alive, so close() while bound is safe."""

    def __init__(self, handle):
        self._handle = handle

    @property
    def name(self) -> str:
        return _c.graft_adapter_name(self._handle).decode() if self._handle is not None else ""

    @property
    def aux_input(self) -> Optional[str]:
        """The auxiliary input this adapter's generator reads (e.g. "image_features" for a
        VLoRA adapter), or None for an adapter without a generator."""
        if self._handle is None:
            raise _closed("adapter")
        name = _c.graft_adapter_aux_input(self._handle)
        return name.decode() if name is not None else None

    def generate(self, aux: Dict[str, np.ndarray], threads: int = 1) -> "Adapter":
        """Runs this adapter's generator on one image's auxiliary tensors (e.g.
        {"image_features": feats} with feats [N_v, d_v] float32) and returns a request adapter
        holding the generated weights: bind it with set_adapters (merged or not, beside other
        adapters) or name it in row_adapters for as many runs as the request lasts, then close
        it. Raises GraftError for an adapter without a generator or features of the wrong
        dtype or shape."""
        if self._handle is None:
            raise _closed("adapter")
        tensors, n, _keep = _named_tensors(aux, "aux")
        handle = ctypes.c_void_p()
        _c.graft_adapter_generate(self._handle, tensors, n, int(threads), ctypes.byref(handle))
        return Adapter(handle)

    def routers(self) -> List[Tuple[int, int]]:
        """The adapter's routers, by index: (site index, number of experts) each."""
        if self._handle is None:
            raise _closed("adapter")
        n = ctypes.c_size_t()
        _c.graft_adapter_router_count(self._handle, ctypes.byref(n))
        out = []
        for i in range(n.value):
            site, experts = ctypes.c_size_t(), ctypes.c_size_t()
            _c.graft_adapter_router_info(self._handle, i, ctypes.byref(site), ctypes.byref(experts))
            out.append((site.value, experts.value))
        return out

    def router(self, site: str) -> int:
        """The index of the router at the site named `site` (module name or '.'-suffix)."""
        if self._handle is None:
            raise _closed("adapter")
        i = ctypes.c_size_t()
        _c.graft_adapter_find_router(self._handle, str(site).encode(), ctypes.byref(i))
        return i.value

    def close(self) -> None:
        """Releases this reference. Idempotent."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            _c.graft_adapter_free(handle)

    def __repr__(self):
        return f"graft.Adapter({self.name!r})"


def _named_tensors(arrays, what: str):
    """graft_tensor views of a dict name -> array-like (converted with numpy; C-contiguous
    native arrays are not copied). Returns (tensor array, count, objects to keep alive)."""
    if not isinstance(arrays, dict):
        raise GraftError(_c.STATUS_INVALID_ARGUMENT, f"{what} must be a dict of name -> array")
    n = len(arrays)
    keep = []
    one = what[:-1] if what.endswith("s") else what   # "input 'x'", "aux 'x'"
    tensors = (_c.Tensor * max(n, 1))()
    for i, (name, value) in enumerate(arrays.items()):
        if not isinstance(name, str):
            raise GraftError(_c.STATUS_INVALID_ARGUMENT, f"{one} names must be strings, got {name!r}")
        a = np.asarray(value)
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
        a = np.require(a, requirements=["C", "A"])
        code = _FROM_NUMPY.get(a.dtype)
        if code is None:
            raise GraftError(_c.STATUS_INVALID_ARGUMENT, f"{one} '{name}': numpy dtype {a.dtype} has no Graft equivalent")
        shape = (ctypes.c_int64 * max(a.ndim, 1))(*a.shape)
        bname = name.encode()
        keep += [a, bname, shape]
        tensors[i] = _c.Tensor(ctypes.sizeof(_c.Tensor), code, bname, a.ndim, shape, a.ctypes.data, a.nbytes)
    return tensors, n, keep


_MERGE_MODES = {"auto": 0, "unmerged": 1, "merged": 2}


def compose(adapters: Sequence["Adapter"], scales: Optional[Sequence[float]] = None) -> "Adapter":
    """One adapter that is the sum of `adapters`, each at its scale (default 1): binding it
    equals binding them together. Use it to give one batch row several adapters, e.g. an image's
    request adapter (Adapter.generate) and a task LoRA, in row_adapters. Pointer work."""
    adapters = list(adapters)
    if scales is not None and len(scales) != len(adapters):
        raise GraftError(_c.STATUS_INVALID_ARGUMENT, f"{len(adapters)} adapters but {len(scales)} scales")
    arr = _adapter_array(adapters, allow_none=False)
    sc = (ctypes.c_float * max(len(adapters), 1))(*(scales if scales is not None else [1.0] * len(adapters)))
    handle = ctypes.c_void_p()
    _c.graft_adapter_compose(arr, sc, len(adapters), ctypes.byref(handle))
    return Adapter(handle)


def _adapter_array(adapters, allow_none: bool):
    arr = (ctypes.c_void_p * max(len(adapters), 1))()
    for i, a in enumerate(adapters):
        if a is None:
            if not allow_none:
                raise GraftError(_c.STATUS_INVALID_ARGUMENT, f"adapters[{i}] is None")
            arr[i] = None
        elif not isinstance(a, Adapter):
            raise GraftError(_c.STATUS_INVALID_ARGUMENT, f"adapters[{i}] is not a graft.Adapter")
        elif a._handle is None:
            raise _closed("adapter")
        else:
            arr[i] = a._handle.value
    return arr


class Session(_Closeable):
    """Runs a model; use from one thread at a time. Create with `model.session(threads=...)`."""

    def __init__(self, model: Model, threads: int = 1):
        self._handle = None
        self._output_names = [o.name for o in model.outputs]
        self._input_names = [i.name for i in model.inputs]
        opts = ctypes.c_void_p()
        _c.graft_session_options_create(ctypes.byref(opts))
        try:
            _c.graft_session_options_set_threads(opts, int(threads))
            handle = ctypes.c_void_p()
            _c.graft_session_create(model._handle, opts, ctypes.byref(handle))
            self._handle = handle
        finally:
            _c.graft_session_options_free(opts)

    def set_adapters(self, adapters: Sequence["Adapter"], scales: Optional[Sequence[float]] = None,
                     merged: bool = False) -> None:
        """Binds adapters for every following run: y = W x + sum_k scales[k] * terms_k (scales
        default to 1). merged=True folds low-rank terms into session-private weights (no per-run
        cost, slower to bind). An empty list returns to the base model."""
        if self._handle is None:
            raise _closed("session")
        adapters = list(adapters)
        if scales is not None and len(scales) != len(adapters):
            raise GraftError(_c.STATUS_INVALID_ARGUMENT, f"{len(adapters)} adapters but {len(scales)} scales")
        arr = _adapter_array(adapters, allow_none=False)
        sc = (ctypes.c_float * max(len(adapters), 1))(*(scales if scales is not None else [1.0] * len(adapters)))
        _c.graft_session_set_adapters(self._handle, arr, sc, len(adapters), 1 if merged else 0)
        self._bound = adapters   # keep the Python objects alive while bound

    def run(self, inputs: Dict[str, np.ndarray], row_adapters: Optional[Sequence[Optional["Adapter"]]] = None,
            modalities=None, aux: Optional[Dict[str, np.ndarray]] = None,
            merge: Optional[str] = None, *, allow_experts=None, deny_experts=None, force_experts=None,
            routing_override=None, routing_dump: bool = False):
        """Runs on `inputs` (every declared input, by name; array-likes are converted with
        numpy, C-contiguous native arrays are passed without copying) and returns every output
        as a new numpy array, by name. `row_adapters` names one adapter (or None: the base
        model) per batch row for this run only; `modalities` gives a modality id (0...31) per
        token, shape [batch, sequence], for adapters that act only on some modalities. `aux`
        gives auxiliary tensors by name for generator adapters (VLoRA), bound or per row, e.g.
        {"image_features": feats}: one image's features [N_v, d_v] for every row, or one image
        per row [batch, N_v, d_v]; the generated weights live for this run only. `merge`
        ("auto", the default, "merged" or "unmerged") says how generated weights are applied.
        Raises GraftError for a missing or unknown input, a wrong dtype, rank or dimension, or
        data invalid at run time.

        Routed experts (mixture adapters), per request: `allow_experts`, `deny_experts` and
        `force_experts` map (adapter, router) to expert indices, `routing_override` maps
        (adapter, router) to weights [tokens, experts] that replace the router's output; a
        router is its index in the adapter or its site name (Adapter.router). With
        `routing_dump=True` the result is (outputs, [RoutingDecision, ...])."""
        if self._handle is None:
            raise _closed("session")
        if merge is not None and merge not in _MERGE_MODES:
            raise GraftError(_c.STATUS_INVALID_ARGUMENT, f"merge must be one of {sorted(_MERGE_MODES)}, got {merge!r}")
        controls = (allow_experts, deny_experts, force_experts, routing_override)
        if (row_adapters is None and modalities is None and aux is None and merge is None
                and all(c is None for c in controls) and not routing_dump):
            return self._run(inputs, None)
        opts = ctypes.c_void_p()
        record = ctypes.c_void_p()
        _c.graft_run_options_create(ctypes.byref(opts))
        try:
            keep = _routing.apply(opts, *controls)  # noqa: F841  (alive during the run)
            if routing_dump:
                _c.graft_routing_record_create(ctypes.byref(record))
                _c.graft_run_options_set_routing_record(opts, record)
            if row_adapters is not None:
                rows = list(row_adapters)
                _c.graft_run_options_set_row_adapters(opts, _adapter_array(rows, allow_none=True), len(rows))
            if modalities is not None:
                ids = _routing.modality_ids(modalities)
                _c.graft_run_options_set_modalities(
                    opts, ids.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)), ids.size)
            if aux is not None:
                tensors, n, _keep = _named_tensors(aux, "aux")
                _c.graft_run_options_set_aux(opts, tensors, n)   # copied by the library
            if merge is not None:
                _c.graft_run_options_set_merge(opts, _MERGE_MODES[merge])
            outputs = self._run(inputs, opts)
            return (outputs, _routing.read(record)) if routing_dump else outputs
        finally:
            _c.graft_run_options_free(opts)
            if record.value is not None:
                _c.graft_routing_record_free(record)

    def _run(self, inputs, run_options) -> Dict[str, np.ndarray]:
        tensors, n, shapes = _named_tensors(inputs, "inputs")
        outputs = []
        out_tensors = (_c.Tensor * max(len(self._output_names), 1))()
        for k in range(len(self._output_names)):
            dtype, rank = _c.graft_dtype(), ctypes.c_size_t()
            dims = (ctypes.c_int64 * 16)()
            try:
                _c.graft_session_output_shape(self._handle, tensors, n, k, ctypes.byref(dtype),
                                              ctypes.byref(rank), dims, 16)
            except GraftError as e:
                if e.code != _c.STATUS_LIMIT_EXCEEDED:
                    raise
                dims = (ctypes.c_int64 * rank.value)()
                _c.graft_session_output_shape(self._handle, tensors, n, k, ctypes.byref(dtype),
                                              ctypes.byref(rank), dims, rank.value)
            out = np.empty(tuple(dims[:rank.value]), dtype=_TO_NUMPY[dtype.value])
            outputs.append(out)
            shape = (ctypes.c_int64 * max(out.ndim, 1))(*out.shape)
            shapes.append(shape)
            out_tensors[k] = _c.Tensor(ctypes.sizeof(_c.Tensor), dtype.value, None, out.ndim, shape,
                                       out.ctypes.data, out.nbytes)
        _c.graft_session_run(self._handle, tensors, n, out_tensors, len(outputs), run_options)
        return dict(zip(self._output_names, outputs))

    def close(self) -> None:
        """Frees the session. Idempotent."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            _c.graft_session_free(handle)

