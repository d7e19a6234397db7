"""Model(limits=...): each cap (graft.h's GRAFT_LIMIT_*, docs/ROBUSTNESS.md) set below what
the bert_dynamo fixture or its LoRA adapter needs fails with STATUS_LIMIT_EXCEEDED and a
message naming the cap; the defaults load and run them."""
import os

import numpy as np
import pytest

import graft
from conftest import FIXTURES

BERT = os.path.join(FIXTURES, "bert_dynamo", "model.onnx")
LORA = os.path.join(FIXTURES, "adapters", "bert", "lora_qv_r8")
IA3 = os.path.join(FIXTURES, "adapters", "bert", "ia3")
INPUTS = os.path.join(FIXTURES, "bert_dynamo", "basic", "inputs")


def inputs():
    return {n: np.load(os.path.join(INPUTS, f"{n}.npy")) for n in ("input_ids", "attention_mask", "token_type_ids")}


def limit_error(excinfo, name):
    assert excinfo.value.code == graft.STATUS_LIMIT_EXCEEDED, excinfo.value
    assert name in excinfo.value.message, excinfo.value.message


def test_defaults_load_and_run():
    assert set(graft.LIMITS) == {"tensor_bytes", "weight_bytes", "adapter_rank", "adapter_terms",
                                 "adapter_bytes", "bound_adapters"}
    with graft.Model(BERT, limits={}) as m:
        a = m.load_adapter(LORA)
        with m.session() as s:
            s.set_adapters([a])
            assert s.run(inputs())["last_hidden_state"].shape[0] == 2


def test_weight_bytes():
    with pytest.raises(graft.GraftError) as e:
        graft.Model(BERT, limits={"weight_bytes": 1000})
    limit_error(e, "GRAFT_LIMIT_WEIGHT_BYTES")


def test_tensor_bytes():
    with pytest.raises(graft.GraftError) as e:
        with graft.Model(BERT, limits={"tensor_bytes": 4096}) as m:
            m.run(inputs())
    limit_error(e, "GRAFT_LIMIT_TENSOR_BYTES")


def test_tensor_bytes_from_bytes():
    with open(BERT, "rb") as f:
        data = f.read()
    # bert_dynamo keeps its weights in external data, which a model from memory cannot read;
    # the limits still reach the load (an unknown key fails before it).
    with pytest.raises(graft.GraftError) as e:
        graft.Model.from_bytes(data, limits={"no_such_limit": 1})
    assert e.value.code == graft.STATUS_INVALID_ARGUMENT and "no_such_limit" in e.value.message


def test_adapter_rank_terms_and_bytes():
    for limits, name in (({"adapter_rank": 7}, "GRAFT_LIMIT_ADAPTER_RANK"),
                         ({"adapter_terms": 1}, "GRAFT_LIMIT_ADAPTER_TERMS"),
                         ({"adapter_bytes": 1000}, "GRAFT_LIMIT_ADAPTER_BYTES")):
        with graft.Model(BERT, limits=limits) as m:
            with pytest.raises(graft.GraftError) as e:
                m.load_adapter(LORA)
            limit_error(e, name)
    with graft.Model(BERT, limits={"adapter_rank": 8}) as m:
        m.load_adapter(LORA)


def test_bound_adapters():
    with graft.Model(BERT, limits={"bound_adapters": 1}) as m:
        a, b = m.load_adapter(LORA), m.load_adapter(IA3)
        with m.session() as s:
            with pytest.raises(graft.GraftError) as e:
                s.set_adapters([a, b])
            limit_error(e, "GRAFT_LIMIT_BOUND_ADAPTERS")
            with pytest.raises(graft.GraftError) as e:
                s.run(inputs(), row_adapters=[a, b])
            limit_error(e, "GRAFT_LIMIT_BOUND_ADAPTERS")
            s.set_adapters([a])
            s.run(inputs())


def test_bad_values():
    for bad in (0, -1, 1.5, True, "1"):
        with pytest.raises(graft.GraftError) as e:
            graft.Model(BERT, limits={"tensor_bytes": bad})
        assert e.value.code == graft.STATUS_INVALID_ARGUMENT
