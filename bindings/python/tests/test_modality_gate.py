"""ModalityGate adapters (peft_type GRAFT_MODALITY_GATE) through the Python binding, against the
plain PyTorch references of Tests/Fixtures/make_modality_fixtures.py (max |delta| <= 1e-4)."""
import json
import os

import numpy as np
import pytest

import graft
from conftest import FIXTURES

TOL = 1e-4
ROOT = os.path.join(FIXTURES, "modality_gate")
BASIC = os.path.join(FIXTURES, "bert_torchscript", "basic", "inputs")


def inputs():
    return {n: np.load(os.path.join(BASIC, f"{n}.npy")) for n in ("input_ids", "attention_mask", "token_type_ids")}


@pytest.mark.parametrize("exporter", ["bert_torchscript", "bert_dynamo", "llama_torchscript", "llama_dynamo"])
def test_cases_match_pytorch(exporter):
    with open(os.path.join(ROOT, "manifest.json")) as f:
        manifest = json.load(f)
    cases = {k: c for k, c in manifest["cases"].items() if exporter.startswith(c["model"] + "_")}
    assert len(cases) == (8 if exporter.startswith("bert") else 2)
    with graft.Model(os.path.join(FIXTURES, exporter, "model.onnx")) as model:
        adapters = {k: model.load_adapter(os.path.join(FIXTURES, manifest["adapters"][k]))
                    for c in cases.values() for k in c["adapters"]}
        with model.session() as s:
            for name, case in cases.items():
                s.set_adapters([adapters[a] for a in case["adapters"]])
                ids = np.load(os.path.join(FIXTURES, case["ids"]))
                feeds = {i.name: np.load(os.path.join(FIXTURES, case["inputs"], f"{i.name}.npy")) for i in model.inputs}
                out = s.run(feeds, modalities=ids)
                for k, path in case["outputs"].items():
                    d = float(np.max(np.abs(out[k] - np.load(os.path.join(FIXTURES, path)))))
                    assert d <= TOL, (exporter, name, k, d)


def test_modality_ids_are_checked():
    with graft.Model(os.path.join(FIXTURES, "bert_dynamo", "model.onnx")) as model:
        moma = model.load_adapter(os.path.join(ROOT, "mg_moma_top1"))
        with model.session() as s:
            s.set_adapters([moma])
            with pytest.raises(graft.GraftError, match="modality id per token"):
                s.run(inputs())
            with pytest.raises(graft.GraftError, match="modality ids cover 7 tokens"):
                s.run(inputs(), modalities=np.zeros(7, dtype=np.uint8))
            with pytest.raises(graft.GraftError, match="integer modality ids"):
                s.run(inputs(), modalities=np.zeros((2, 7), dtype=np.float64))
            with pytest.raises(graft.GraftError, match="0...255"):
                s.run(inputs(), modalities=-np.ones((2, 7), dtype=np.int64))
            out, dump = s.run(inputs(), modalities=np.load(os.path.join(ROOT, "ids.npy")), routing_dump=True)
            ids = np.load(os.path.join(ROOT, "ids.npy")).reshape(-1)
            for t, chosen in enumerate(dump[0].chosen):   # top-1 within the token's group
                want = {0: [[0], [1]], 1: [[2], [3]]}.get(int(ids[t]), [[]])
                assert chosen in want, (t, ids[t], chosen)
