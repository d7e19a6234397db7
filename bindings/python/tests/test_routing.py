"""Per-request control of routed experts through the Python binding (run(allow_experts=...,
deny_experts=..., force_experts=..., routing_override=..., routing_dump=True)), against the
plain PyTorch references of Tests/Fixtures/make_routing_fixtures.py (max |delta| <= 1e-4)."""
import json
import os

import numpy as np
import pytest

import graft
from conftest import FIXTURES

TOL = 1e-4
BERT = os.path.join(FIXTURES, "bert_dynamo", "model.onnx")
MOE = os.path.join(FIXTURES, "adapters", "bert", "moe_topk2")
CONTROL = os.path.join(FIXTURES, "moe_control")
BASIC = os.path.join(FIXTURES, "bert_torchscript", "basic", "inputs")


def inputs():
    return {n: np.load(os.path.join(BASIC, f"{n}.npy")) for n in ("input_ids", "attention_mask", "token_type_ids")}


@pytest.fixture(scope="module")
def cases():
    with open(os.path.join(CONTROL, "cases.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def model():
    with graft.Model(BERT) as m:
        yield m


def test_controls_match_pytorch(model, cases):
    moe = model.load_adapter(MOE)
    assert [e for _, e in moe.routers()] == [4, 4, 4, 4]
    with model.session() as s:
        s.set_adapters([moe])
        for name, case in cases["cases"].items():
            kw = {"allow_experts": {}, "deny_experts": {}, "force_experts": {}, "routing_override": {}}
            for router, controls in case["controls"].items():
                for kind, value in controls.items():
                    if kind == "override":
                        kw["routing_override"][(moe, int(router))] = np.load(os.path.join(FIXTURES, value))
                    else:
                        kw[f"{kind}_experts"][(moe, int(router))] = value
            out = s.run(inputs(), **kw)
            for k, path in case["outputs"].items():
                d = float(np.max(np.abs(out[k] - np.load(os.path.join(FIXTURES, path)))))
                assert d <= TOL, (name, k, d)


def test_dump_and_site_names(model):
    moe = model.load_adapter(MOE)
    assert moe.router("layer.0.attention.self.value") == 1
    with model.session() as s:
        s.set_adapters([moe])
        out, dump = s.run(inputs(), force_experts={(moe, "layer.1.attention.self.query"): [3]}, routing_dump=True)
        assert [(d.adapter, d.router) for d in dump] == [("moe_topk2", i) for i in range(4)]
        want = np.load(os.path.join(CONTROL, "router0_gates.npy"))
        assert np.max(np.abs(dump[0].weights - want)) <= TOL
        assert all(c == [3] for c in dump[2].chosen)
        assert all(len(c) == 2 for c in dump[0].chosen)
        plain = s.run(inputs())
        assert isinstance(plain, dict) and np.max(np.abs(plain["last_hidden_state"] - out["last_hidden_state"])) > 1e-3


def test_bad_controls(model):
    moe = model.load_adapter(MOE)
    lora = model.load_adapter(os.path.join(FIXTURES, "adapters", "bert", "lora_qv_r8"))
    with model.session() as s:
        s.set_adapters([moe])
        bad = [
            (dict(allow_experts={(moe, 0): []}), "names no expert"),
            (dict(allow_experts={(moe, 0): [0]}, deny_experts={(moe, 0): [0]}), "leave no expert"),
            (dict(force_experts={(moe, 0): [7]}), "out of range"),
            (dict(force_experts={(moe, 9): [0]}), "no router 9"),
            (dict(force_experts={(moe, "nowhere"): [0]}), "no router at a site named 'nowhere'"),
            (dict(force_experts={(lora, 0): [0]}), "no router 0"),
            (dict(routing_override={(moe, 0): np.ones((14, 3))}), "has 4"),
            (dict(routing_override={(moe, 0): np.ones((13, 4))}), "covers 13 tokens"),
            (dict(routing_override={(moe, 0): np.ones(4)}), "[tokens, experts]"),
            (dict(force_experts={(moe, 0): [1]}, routing_override={(moe, 0): np.ones((14, 4))}), "cannot be combined"),
            (dict(modalities=np.zeros((2, 7), dtype=np.float32)), "integer modality ids"),
            (dict(modalities=np.full((2, 7), 300)), "0...255"),
        ]
        for kw, fragment in bad:
            with pytest.raises(graft.GraftError) as e:
                s.run(inputs(), **kw)
            assert fragment in str(e.value), (kw, str(e.value))
        s.set_adapters([lora])
        with pytest.raises(graft.GraftError, match="does not use"):
            s.run(inputs(), force_experts={(moe, 0): [1]})


def test_mixlora_block_routers():
    """MixLoRA's block routers (one per layer, at gate_proj) take the same controls: each case of
    Tests/Fixtures/mixlora/manifest.json "controls" matches its reference, and the dump holds
    each block router's weights as make_mixlora_fixtures.py computed them."""
    root = os.path.join(FIXTURES, "mixlora")
    with open(os.path.join(root, "manifest.json")) as f:
        controls = json.load(f)["controls"]
    assert sorted(c["name"] for c in controls) == ["allow_deny", "force_one", "force_two", "override"]
    with graft.Model(os.path.join(FIXTURES, "llama_dynamo", "model.onnx")) as llama:
        mix = llama.load_adapter(os.path.join(root, "llama", "mixlora_e4_top2"))
        folder = os.path.join(FIXTURES, "llama_torchscript", "basic", "inputs")
        feeds = {f[:-4]: np.load(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(".npy")}
        with llama.session() as s:
            s.set_adapters([mix])
            for case in controls:
                kw = {"allow_experts": {}, "deny_experts": {}, "force_experts": {}, "routing_override": {}}
                for layer, kinds in case["controls"].items():
                    router = (mix, f"layers.{layer}.mlp.gate_proj")
                    for kind, value in kinds.items():
                        if kind == "override":
                            kw["routing_override"][router] = np.load(os.path.join(FIXTURES, value))
                        else:
                            kw[f"{kind}_experts"][router] = value
                out = s.run(feeds, **kw)
                d = float(np.max(np.abs(out["logits"] - np.load(os.path.join(FIXTURES, case["outputs"]["logits"])))))
                assert d <= TOL, (case["name"], d)
            _, dump = s.run(feeds, routing_dump=True)
            assert [d.router for d in dump] == [mix.router(f"layers.{i}.mlp.gate_proj") for i in (0, 1)]
            for i, d in enumerate(dump):
                want = np.load(os.path.join(root, "llama", "refs", "mixlora_e4_top2", "basic", f"router_weights_layer{i}.npy"))
                assert d.weights.shape == want.shape and float(np.max(np.abs(d.weights - want))) <= TOL
