"""VLoRA (per-image generated low-rank weights) through the Python binding, against the
PyTorch references of Tests/Fixtures/make_vlora_fixtures.py (max |delta| <= 1e-4): features as
session.run(inputs, aux={"image_features": feats}), request adapters from Adapter.generate,
mixed batches with a no-image row, merged vs unmerged, composition with a PEFT LoRA, and the
errors of bad auxiliary inputs. The VLoRA plugin is found as in test_adapters.py."""
import os

import numpy as np
import pytest

import graft
from conftest import FIXTURES

TOL = 1e-4
LLAMA = os.path.join(FIXTURES, "llama_dynamo", "model.onnx")
VLORA = os.path.join(FIXTURES, "vlora", "llama_qv_r4")
REFS = os.path.join(FIXTURES, "vlora", "refs")
BASIC = os.path.join(FIXTURES, "llama_torchscript", "basic", "inputs")


def inputs(folder):
    return {n: np.load(os.path.join(folder, f"{n}.npy")) for n in ("input_ids", "attention_mask", "position_ids")}


def feats(name):
    return np.load(os.path.join(REFS, "features", f"{name}.npy"))


def ref(case):
    return np.load(os.path.join(REFS, case, "logits.npy"))


@pytest.fixture(scope="module")
def model():
    with graft.Model(LLAMA) as m:
        yield m


@pytest.fixture(scope="module")
def vlora(model):
    a = model.load_adapter(VLORA)
    yield a
    a.close()


def test_vlora_plugin_is_found(vlora):
    assert "vlora" in [p[0] for p in graft.plugins()]
    assert vlora.aux_input == "image_features"


@pytest.mark.parametrize("merge", [None, "auto", "unmerged", "merged"])
def test_single_image_matches_reference(model, vlora, merge):
    with model.session() as s:
        s.set_adapters([vlora])
        out = s.run(inputs(BASIC), aux={"image_features": feats("img0")}, merge=merge)["logits"]
        assert np.max(np.abs(out - ref("single"))) <= TOL
        # The generated weights lived for that run only.
        s.set_adapters([])
        assert np.array_equal(s.run(inputs(BASIC))["logits"], model.run(inputs(BASIC))["logits"])


def test_mixed_batch_with_a_no_image_row(model, vlora):
    x = inputs(os.path.join(REFS, "mixed", "inputs"))
    per_image = np.stack([feats("img1"), np.zeros_like(feats("img1")), feats("img2")])
    with model.session() as s:
        a = s.run(x, row_adapters=[vlora, None, vlora], aux={"image_features": per_image})["logits"]
        g1, g2 = vlora.generate({"image_features": feats("img1")}), vlora.generate({"image_features": feats("img2")})
        assert g1.aux_input is None
        b = s.run(x, row_adapters=[g1, None, g2])["logits"]
        base = s.run(x)["logits"]
    for out in (a, b):
        assert np.max(np.abs(out - ref("mixed/per_row"))) <= TOL
        assert np.array_equal(out[1], base[1])   # the no-image row is the base model exactly


def test_request_adapter_composes_with_a_task_lora(model, vlora):
    lora = model.load_adapter(os.path.join(FIXTURES, "adapters", "llama", "lora_qvo_r8"))
    request = vlora.generate({"image_features": feats("img0")}, threads=2)
    with model.session() as s:
        for merged in (False, True):
            s.set_adapters([lora, request], merged=merged)
            for _ in range(2):   # e.g. decode steps with the same request adapter
                assert np.max(np.abs(s.run(inputs(BASIC))["logits"] - ref("compose"))) <= TOL
        s.set_adapters([lora, vlora])
        out = s.run(inputs(BASIC), aux={"image_features": feats("img0")})["logits"]
        assert np.max(np.abs(out - ref("compose"))) <= TOL


def test_composed_adapter_per_row(model, vlora):
    lora = model.load_adapter(os.path.join(FIXTURES, "adapters", "llama", "lora_qvo_r8"))
    both = graft.compose([vlora.generate({"image_features": feats("img0")}), lora])
    assert both.name == "llama_qv_r4+lora_qvo_r8"
    with model.session() as s:
        out = s.run(inputs(BASIC), row_adapters=[both, None])["logits"]
        base = s.run(inputs(BASIC))["logits"]
    assert np.max(np.abs(out[0] - ref("compose")[0])) <= TOL
    assert np.array_equal(out[1], base[1])
    with pytest.raises(graft.GraftError, match="request adapter"):
        graft.compose([vlora, lora])


def test_bad_auxiliary_inputs(model, vlora):
    with model.session() as s:
        s.set_adapters([vlora])
        with pytest.raises(graft.GraftError, match="auxiliary input 'image_features'") as e:
            s.run(inputs(BASIC))
        assert e.value.code == graft.STATUS_INVALID_ARGUMENT
        with pytest.raises(graft.GraftError, match=r"\[12, 23\]") as e:
            s.run(inputs(BASIC), aux={"image_features": np.zeros((12, 23), np.float32)})
        assert e.value.code == graft.STATUS_SHAPE_MISMATCH
        with pytest.raises(graft.GraftError, match="must be float32"):
            s.run(inputs(BASIC), aux={"image_features": np.zeros((12, 24), np.int64)})
        with pytest.raises(graft.GraftError, match="'pixels' is not an auxiliary input"):
            s.run(inputs(BASIC), aux={"image_features": feats("img0"), "pixels": feats("img0")})
        with pytest.raises(graft.GraftError, match="merge must be one of"):
            s.run(inputs(BASIC), aux={"image_features": feats("img0")}, merge="sometimes")
    with pytest.raises(graft.GraftError, match="has no generator"):
        model.load_adapter(os.path.join(FIXTURES, "adapters", "llama", "lora_qvo_r8")).generate({"image_features": feats("img0")})
