"""Per-request control of routed experts for Session.run (graft.h, "Routed experts").

Routers are named by (adapter, router), router being the index in the adapter
(Adapter.routers()) or a site name (Adapter.router(site)). Masks are lists of expert indices;
overrides are float32 arrays [tokens, experts]; the record comes back as RoutingDecision tuples.
"""

import ctypes
from typing import List, NamedTuple

import numpy as np

from . import _capi as _c


class RoutingDecision(NamedTuple):
    """One router evaluation of a run: `weights` [tokens, experts] are every token's final
    expert weights (after masks, forcing, override and the gate); an expert was chosen for a
    token when its weight is non-zero (`chosen`)."""
    adapter: str
    router: int
    site: int
    weights: np.ndarray

    @property
    def chosen(self) -> List[List[int]]:
        """The chosen experts of each token, ascending."""
        return [[int(i) for i in np.flatnonzero(row)] for row in self.weights]


def _router_index(adapter, router) -> int:
    if isinstance(router, str):
        return adapter.router(router)
    if isinstance(router, (int, np.integer)) and not isinstance(router, bool) and router >= 0:
        return int(router)
    raise _c.GraftError(_c.STATUS_INVALID_ARGUMENT,
                        f"a router is named by its index (an int >= 0) or its site name (a str), not {router!r}")


def _items(controls, what):
    if not isinstance(controls, dict):
        raise _c.GraftError(_c.STATUS_INVALID_ARGUMENT, f"{what} must be a dict of (adapter, router) -> value")
    for key, value in controls.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise _c.GraftError(_c.STATUS_INVALID_ARGUMENT, f"{what}: keys are (adapter, router) pairs, not {key!r}")
        adapter, router = key
        if adapter is None or getattr(adapter, "_handle", None) is None:
            raise _c.GraftError(_c.STATUS_INVALID_ARGUMENT, f"{what}: {adapter!r} is not an open graft.Adapter")
        yield adapter, _router_index(adapter, router), value


def apply(opts, allow, deny, force, override) -> list:
    """Sets the controls on run options `opts`; returns objects to keep alive during the run."""
    keep = []
    for controls, mode, what in ((allow, _c.EXPERTS_ALLOW, "allow_experts"), (deny, _c.EXPERTS_DENY, "deny_experts"),
                                 (force, _c.EXPERTS_FORCE, "force_experts")):
        if controls is None:
            continue
        for adapter, router, experts in _items(controls, what):
            n = ctypes.c_size_t()
            _c.graft_adapter_router_info(adapter._handle, router, None, ctypes.byref(n))
            mask = np.zeros(n.value, dtype=np.uint8)
            for e in experts:
                if not isinstance(e, (int, np.integer)) or isinstance(e, bool) or not 0 <= e < n.value:
                    raise _c.GraftError(_c.STATUS_INVALID_ARGUMENT,
                                        f"{what}: expert {e!r} is out of range for router {router} of adapter "
                                        f"'{adapter.name}' ({n.value} experts)")
                mask[e] = 1
            keep.append(mask)
            _c.graft_run_options_set_experts(opts, adapter._handle, router, mode,
                                             mask.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)), mask.size)
    if override is not None:
        for adapter, router, weights in _items(override, "routing_override"):
            w = np.asarray(weights)
            if w.ndim != 2:
                raise _c.GraftError(_c.STATUS_SHAPE_MISMATCH,
                                    f"routing_override for router {router} of adapter '{adapter.name}' must be "
                                    f"[tokens, experts], got shape {w.shape}")
            w = np.ascontiguousarray(w, dtype=np.float32)
            keep.append(w)
            _c.graft_run_options_set_routing(opts, adapter._handle, router,
                                             w.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), w.shape[0], w.shape[1])
    return keep


def modality_ids(modalities) -> np.ndarray:
    """Modality ids as the C API takes them (uint8, flattened); anything that is not an integer
    array with values in 0...255 is refused rather than wrapped or truncated."""
    a = np.asarray(modalities)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a).reshape(-1)
    if a.dtype.kind not in "iu" and a.size > 0:
        raise _c.GraftError(_c.STATUS_INVALID_ARGUMENT,
                            f"modalities must be integer modality ids (0...255), got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() > 255):
        raise _c.GraftError(_c.STATUS_INVALID_ARGUMENT,
                            f"modality ids must be in 0...255 (ids above 31 match no adapter), got values in "
                            f"{int(a.min())}...{int(a.max())}")
    return np.ascontiguousarray(a, dtype=np.uint8).reshape(-1)


def read(record) -> List[RoutingDecision]:
    """Copies a record's entries out as RoutingDecision tuples."""
    n = ctypes.c_size_t()
    _c.graft_routing_record_count(record, ctypes.byref(n))
    out = []
    for i in range(n.value):
        e = _c.RoutingEntry()
        e.struct_size = ctypes.sizeof(_c.RoutingEntry)
        _c.graft_routing_record_entry(record, i, ctypes.byref(e))
        count = e.tokens * e.experts
        w = np.ctypeslib.as_array(e.weights, shape=(count,)).copy() if count else np.zeros(0, np.float32)
        out.append(RoutingDecision(e.adapter.decode(), e.router, e.site, w.reshape(e.tokens, e.experts)))
    return out
