"""Adapters through the Python binding, against the PyTorch + PEFT references made by
Tests/Fixtures/make_adapter_fixtures.py (max |delta| <= 1e-4; merged vs unmerged <= 1e-5).
The LoRA and (IA)3 plugins are found through GRAFT_PLUGIN_PATH (scripts/abi-tests.sh sets it
to the build folder) or beside the library."""
import os

import numpy as np
import pytest

import graft
from conftest import FIXTURES

TOL = 1e-4
BERT = os.path.join(FIXTURES, "bert_dynamo", "model.onnx")
ADAPTERS = os.path.join(FIXTURES, "adapters", "bert")
REFS = os.path.join(ADAPTERS, "refs")


def inputs(folder):
    return {n: np.load(os.path.join(folder, f"{n}.npy")) for n in ("input_ids", "attention_mask", "token_type_ids")}


BASIC = os.path.join(FIXTURES, "bert_torchscript", "basic", "inputs")


def ref(case, name="last_hidden_state"):
    return np.load(os.path.join(REFS, case, f"{name}.npy"))


@pytest.fixture(scope="module")
def model():
    with graft.Model(BERT) as m:
        yield m


def test_plugins_are_found():
    names = [p[0] for p in graft.plugins()]
    assert "lora" in names and "ia3" in names, names


def test_sites(model):
    sites = model.sites
    assert len(sites) == 13
    assert sites[0][0].endswith("encoder.layer.0.attention.self.query") and sites[0][1:] == (64, 64)


def test_each_adapter_matches_peft(model):
    with model.session() as s:
        for case in ("lora_qv_r8", "rslora_r16", "ia3"):
            a = model.load_adapter(os.path.join(ADAPTERS, case))
            assert a.name == case
            s.set_adapters([a])
            out = s.run(inputs(BASIC))
            for name in ("last_hidden_state", "pooler_output"):
                assert np.abs(out[name] - ref(case, name)).max() <= TOL, (case, name)
            a.close()   # the session keeps it alive while bound
            again = s.run(inputs(BASIC))
            assert np.array_equal(again["last_hidden_state"], out["last_hidden_state"])


def test_two_adapters_with_scales_and_merged(model):
    a = model.load_adapter(os.path.join(ADAPTERS, "lora_qv_r8"))
    b = model.load_adapter(os.path.join(ADAPTERS, "rslora_r16"))
    with model.session() as s:
        s.set_adapters([a, b], scales=[1.0, 0.5])
        unmerged = s.run(inputs(BASIC))["last_hidden_state"]
        assert np.abs(unmerged - ref("two_adapters")).max() <= TOL
        s.set_adapters([a, b], scales=[1.0, 0.5], merged=True)
        merged = s.run(inputs(BASIC))["last_hidden_state"]
        assert np.abs(merged - unmerged).max() <= 1e-5
        s.set_adapters([])
        assert np.abs(s.run(inputs(BASIC))["last_hidden_state"] - ref("base")).max() <= TOL


def test_mixed_batch(model):
    a = model.load_adapter(os.path.join(ADAPTERS, "lora_qv_r8"))
    b = model.load_adapter(os.path.join(ADAPTERS, "rslora_r16"))
    with model.session() as s:
        out = s.run(inputs(os.path.join(REFS, "mixed", "inputs")), row_adapters=[a, None, b])
        assert np.abs(out["last_hidden_state"] - ref("mixed")).max() <= TOL


def test_errors(model, tmp_path):
    with pytest.raises(graft.GraftError) as e:
        model.load_adapter(tmp_path / "missing")
    assert "does not exist" in e.value.message
    with pytest.raises(graft.GraftError) as e:
        model.load_adapter(tmp_path)
    assert "no plugin claims" in e.value.message
    a = model.load_adapter(os.path.join(ADAPTERS, "lora_qv_r8"))
    with model.session() as s:
        with pytest.raises(graft.GraftError):
            s.set_adapters([a], scales=[1.0, 2.0])
        with pytest.raises(graft.GraftError) as e:
            s.run(inputs(BASIC), row_adapters=[a, None, a])
        assert "batch has 2" in e.value.message
    with pytest.raises(graft.GraftError):
        graft.load_plugin(tmp_path / "nope.so")
