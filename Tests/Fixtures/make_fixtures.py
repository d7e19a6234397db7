#!/usr/bin/env python3
"""Build the ONNX test fixtures for Graft.

Run by hand (tests never need torch):

    /work/venv/bin/python Tests/Fixtures/make_fixtures.py [--only NAME ...]

Needs: torch transformers onnx onnxruntime onnxscript safetensors numpy.

For each tiny random-weight model (bert, llama, vit) and each exporter
(TorchScript, opset 17; dynamo, opset 18 with external data) it writes

    <model>_<exporter>/model.onnx
    <model>_<exporter>/model.onnx.data                 (dynamo only)
    <model>_<exporter>/<case>/inputs/<input>.npy
    <model>_<exporter>/<case>/ort/<output>.npy         onnxruntime CPU reference
    <model>_<exporter>/<case>/torch/<output>.npy       PyTorch eager reference

and manifest.json describing all of them.  Everything is seeded; the script
overwrites its outputs and is deterministic (single-threaded torch and ORT).
"""

import argparse
import collections
import json
import os
import random
import shutil
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
TOLERANCE = 1e-4
SEED = 1234

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()


def seed_all(seed=SEED):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------
# Models.  Each wrapper has a fixed positional signature whose parameter
# names are the ONNX input names, and returns a tuple of output tensors.
# --------------------------------------------------------------------------


class BertWrapper(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from transformers import BertConfig, BertModel

        cfg = BertConfig(
            vocab_size=256,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            max_position_embeddings=64,
            type_vocab_size=2,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            attn_implementation="eager",
        )
        self.model = BertModel(cfg, add_pooling_layer=True)

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            return_dict=True,
        )
        return out.last_hidden_state, out.pooler_output


class LlamaWrapper(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg = LlamaConfig(
            vocab_size=256,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            tie_word_embeddings=False,
            use_cache=False,
            attn_implementation="eager",
        )
        self.model = LlamaForCausalLM(cfg)

    def forward(self, input_ids, attention_mask, position_ids):
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
            return_dict=True,
        )
        return (out.logits,)


class ViTWrapper(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from transformers import ViTConfig, ViTModel

        cfg = ViTConfig(
            image_size=32,
            patch_size=8,
            num_channels=3,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            attn_implementation="eager",
        )
        self.model = ViTModel(cfg, add_pooling_layer=True)

    def forward(self, pixel_values):
        out = self.model(pixel_values=pixel_values, return_dict=True)
        return out.last_hidden_state, out.pooler_output


# --------------------------------------------------------------------------
# Cases (deterministic inputs).
# --------------------------------------------------------------------------


def text_ids(rng, batch, seq, vocab=256):
    return rng.integers(1, vocab, size=(batch, seq), dtype=np.int64)


def bert_cases():
    rng = np.random.default_rng(101)
    cases = collections.OrderedDict()
    ids = text_ids(rng, 2, 7)
    mask = np.ones((2, 7), dtype=np.int64)
    mask[1, 4:] = 0  # second row right-padded
    ids[1, 4:] = 0  # pad token id
    tt = np.zeros((2, 7), dtype=np.int64)
    tt[0, 4:] = 1
    tt[1, 2:4] = 1
    cases["basic"] = {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}
    cases["seq1"] = {
        "input_ids": text_ids(rng, 1, 1),
        "attention_mask": np.ones((1, 1), dtype=np.int64),
        "token_type_ids": np.zeros((1, 1), dtype=np.int64),
    }
    return cases


def llama_position_ids(mask):
    pos = np.cumsum(mask, axis=-1) - 1
    pos[mask == 0] = 1  # what HF generate() does for padded slots
    return pos.astype(np.int64)


def llama_cases():
    rng = np.random.default_rng(202)
    cases = collections.OrderedDict()
    ids = text_ids(rng, 2, 7)
    mask = np.ones((2, 7), dtype=np.int64)
    cases["basic"] = {"input_ids": ids, "attention_mask": mask, "position_ids": llama_position_ids(mask)}
    ids1 = text_ids(rng, 1, 1)
    mask1 = np.ones((1, 1), dtype=np.int64)
    cases["seq1"] = {"input_ids": ids1, "attention_mask": mask1, "position_ids": llama_position_ids(mask1)}
    ids2 = text_ids(rng, 2, 7)
    mask2 = np.ones((2, 7), dtype=np.int64)
    mask2[1, :3] = 0  # second row left-padded
    ids2[1, :3] = 0
    cases["leftpad"] = {"input_ids": ids2, "attention_mask": mask2, "position_ids": llama_position_ids(mask2)}
    return cases


def vit_cases():
    rng = np.random.default_rng(303)
    cases = collections.OrderedDict()
    cases["basic"] = {"pixel_values": rng.standard_normal((2, 3, 32, 32)).astype(np.float32)}
    cases["seq1"] = {"pixel_values": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)}
    return cases


MODELS = collections.OrderedDict(
    bert=dict(
        cls=BertWrapper,
        inputs=["input_ids", "attention_mask", "token_type_ids"],
        outputs=["last_hidden_state", "pooler_output"],
        out_dyn={"last_hidden_state": {0: "batch", 1: "sequence"}, "pooler_output": {0: "batch"}},
        dyn={"input_ids": {0: "batch", 1: "sequence"},
             "attention_mask": {0: "batch", 1: "sequence"},
             "token_type_ids": {0: "batch", 1: "sequence"}},
        cases=bert_cases,
    ),
    llama=dict(
        cls=LlamaWrapper,
        inputs=["input_ids", "attention_mask", "position_ids"],
        outputs=["logits"],
        out_dyn={"logits": {0: "batch", 1: "sequence"}},
        dyn={"input_ids": {0: "batch", 1: "sequence"},
             "attention_mask": {0: "batch", 1: "sequence"},
             "position_ids": {0: "batch", 1: "sequence"}},
        cases=llama_cases,
    ),
    vit=dict(
        cls=ViTWrapper,
        inputs=["pixel_values"],
        outputs=["last_hidden_state", "pooler_output"],
        out_dyn={"last_hidden_state": {0: "batch"}, "pooler_output": {0: "batch"}},
        dyn={"pixel_values": {0: "batch"}},
        cases=vit_cases,
    ),
)

# --------------------------------------------------------------------------
# Export.
# --------------------------------------------------------------------------


def export_torchscript(model, spec, example, path):
    args = tuple(torch.from_numpy(example[n]) for n in spec["inputs"])
    dyn_axes = dict(spec["dyn"])
    dyn_axes.update(spec["out_dyn"])
    torch.onnx.export(
        model, args, path,
        dynamo=False,
        opset_version=17,
        input_names=spec["inputs"],
        output_names=spec["outputs"],
        dynamic_axes=dyn_axes,
        do_constant_folding=True,
    )
    return {"dynamic": True}


def export_dynamo(model, spec, example, path):
    args = tuple(torch.from_numpy(example[n]) for n in spec["inputs"])
    Dim = torch.export.Dim
    batch = Dim("batch", min=1, max=64)
    seq = Dim("sequence", min=1, max=64)
    dims = {"batch": batch, "sequence": seq}
    dynamic_shapes = {n: {ax: dims[name] for ax, name in spec["dyn"][n].items()} for n in spec["inputs"]}
    info = {"dynamic": True}
    try:
        prog = torch.onnx.export(
            model, args, dynamo=True, opset_version=18,
            input_names=spec["inputs"], output_names=spec["outputs"],
            dynamic_shapes=dynamic_shapes, optimize=True,
        )
    except Exception as e:  # fall back to static shapes
        print(f"  dynamo export with dynamic shapes failed ({type(e).__name__}: {str(e)[:300]}); "
              f"falling back to static shapes", flush=True)
        info["dynamic"] = False
        info["dynamic_error"] = f"{type(e).__name__}: {str(e)[:300]}"
        prog = torch.onnx.export(
            model, args, dynamo=True, opset_version=18,
            input_names=spec["inputs"], output_names=spec["outputs"], optimize=True,
        )
    proto = prog.model_proto
    data = path + ".data"
    for p in (path, data):
        if os.path.exists(p):
            os.remove(p)
    save_with_external_data(proto, path, os.path.basename(data))
    return info


def save_with_external_data(proto, path, location):
    """Save with every floating-point initializer (whatever its size) in `location`.

    onnx.save_model(..., size_threshold=0) would also move the tiny int64
    constants (Unsqueeze axes, Reshape shapes, ...) out of the file, and
    onnxruntime then refuses the model ("Cannot parse data from external
    tensors" during shape inference).  So integer/bool tensors smaller than
    1 KiB stay inline; everything else goes to the .data file.
    """
    from onnx import external_data_helper as edh

    edh.convert_model_to_external_data(proto, all_tensors_to_one_file=True, location=location,
                                       size_threshold=0, convert_attribute=False)
    float_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
                   onnx.TensorProto.DOUBLE}
    kept_inline = 0
    for t in proto.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL and t.data_type not in float_types \
                and len(t.raw_data) < 1024:
            del t.external_data[:]
            t.data_location = onnx.TensorProto.DEFAULT
            kept_inline += 1
    proto = edh.write_external_data_tensors(proto, os.path.dirname(os.path.abspath(path)))
    onnx.save_model(proto, path)
    n_ext = sum(1 for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL)
    print(f"  saved {n_ext} initializers to {location}, kept {kept_inline} small integer ones inline",
          flush=True)


# --------------------------------------------------------------------------
# Analysis helpers.
# --------------------------------------------------------------------------


def op_histogram(model):
    hist = collections.Counter()

    def walk(graph):
        for node in graph.node:
            hist[f"{node.domain or 'ai.onnx'}::{node.op_type}"] += 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for g in attr.graphs:
                        walk(g)

    walk(model.graph)
    for fn in model.functions:
        for node in fn.node:
            hist[f"{node.domain or 'ai.onnx'}::{node.op_type}"] += 1
    return dict(sorted(hist.items()))


def main_opset(model):
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return None


def ort_session(path):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def save_npy(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arr = np.ascontiguousarray(arr)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    with open(path, "wb") as f:
        np.lib.format.write_array(f, arr, version=(1, 0), allow_pickle=False)


# --------------------------------------------------------------------------


def build(model_name, exporter, report):
    spec = MODELS[model_name]
    name = f"{model_name}_{exporter}"
    outdir = os.path.join(HERE, name)
    print(f"== {name}", flush=True)
    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)

    seed_all()
    model = spec["cls"]().eval()
    cases = spec["cases"]()
    example = cases["basic"]
    path = os.path.join(outdir, "model.onnx")
    with torch.no_grad():
        if exporter == "torchscript":
            info = export_torchscript(model, spec, example, path)
        else:
            info = export_dynamo(model, spec, example, path)

    m = onnx.load(path, load_external_data=False)
    g_inputs = [i.name for i in m.graph.input]
    g_outputs = [o.name for o in m.graph.output]
    init_names = {t.name for t in m.graph.initializer}
    g_inputs = [n for n in g_inputs if n not in init_names]
    ops = op_histogram(m)
    sess = ort_session(path)
    sess_inputs = [i.name for i in sess.get_inputs()]
    sess_outputs = [o.name for o in sess.get_outputs()]
    assert sess_inputs == g_inputs, (sess_inputs, g_inputs)

    diffs = {}
    case_names = []
    for cname, feeds in cases.items():
        feeds = {k: v for k, v in feeds.items() if k in g_inputs}
        missing = [n for n in g_inputs if n not in feeds]
        assert not missing, f"{name}: graph wants inputs {missing}"
        ort_out = sess.run(sess_outputs, feeds)
        with torch.no_grad():
            t_out = model(*[torch.from_numpy(cases[cname][n]) for n in spec["inputs"]])
        t_out = dict(zip(spec["outputs"], [t.detach().numpy().astype(np.float32) for t in t_out]))
        case_diff = {}
        for oname, o in zip(sess_outputs, ort_out):
            t = t_out[oname]
            assert o.shape == t.shape, (name, cname, oname, o.shape, t.shape)
            d = float(np.max(np.abs(o.astype(np.float32) - t)))
            case_diff[oname] = d
            print(f"  {cname:8s} {oname:18s} shape={tuple(o.shape)} max|ort-torch|={d:.3e}", flush=True)
            assert d <= TOLERANCE, f"{name}/{cname}/{oname}: ORT vs torch diff {d} > {TOLERANCE}"
        cdir = os.path.join(outdir, cname)
        for k in g_inputs:
            save_npy(os.path.join(cdir, "inputs", f"{k}.npy"), feeds[k])
        for oname, o in zip(sess_outputs, ort_out):
            save_npy(os.path.join(cdir, "ort", f"{oname}.npy"), o.astype(np.float32))
            save_npy(os.path.join(cdir, "torch", f"{oname}.npy"), t_out[oname])
        diffs[cname] = case_diff
        case_names.append(cname)

    # Not saved: check the graph really is dynamic by running a shape that
    # no saved case uses (batch 3, sequence 5) against torch.
    probe_rng = np.random.default_rng(999)
    probe = {}
    for n in spec["inputs"]:
        shape = list(example[n].shape)
        shape[0] = 3
        if "sequence" in spec["dyn"][n].values():
            shape[1] = 5
        if n == "pixel_values":
            probe[n] = probe_rng.standard_normal(shape).astype(np.float32)
        elif n == "input_ids":
            probe[n] = probe_rng.integers(1, 256, size=shape, dtype=np.int64)
        elif n == "attention_mask":
            probe[n] = np.ones(shape, dtype=np.int64)
        elif n == "position_ids":
            probe[n] = np.broadcast_to(np.arange(shape[1], dtype=np.int64), shape).copy()
        else:
            probe[n] = np.zeros(shape, dtype=np.int64)
    try:
        p_out = sess.run(sess_outputs, {k: probe[k] for k in g_inputs})
        with torch.no_grad():
            t_probe = model(*[torch.from_numpy(probe[n]) for n in spec["inputs"]])
        pd = max(float(np.max(np.abs(a - b.numpy()))) for a, b in zip(p_out, t_probe))
        print(f"  probe (batch 3, seq 5, not saved) max|ort-torch|={pd:.3e}", flush=True)
        assert pd <= TOLERANCE
        info["probe_ok"] = True
    except Exception as e:
        print(f"  probe (batch 3, seq 5) FAILED: {type(e).__name__}: {str(e)[:200]}", flush=True)
        info["probe_ok"] = False

    entry = collections.OrderedDict(
        name=name,
        model=f"{name}/model.onnx",
        exporter=exporter,
        opset=main_opset(m),
        ir_version=m.ir_version,
        external_data=exporter == "dynamo",
        inputs=g_inputs,
        outputs=sess_outputs,
        cases=case_names,
        tolerance=TOLERANCE,
    )
    if exporter == "dynamo":
        entry["data"] = f"{name}/model.onnx.data"
    entry["dynamic_shapes"] = info["dynamic"] and info["probe_ok"]
    entry["opset_imports"] = {(i.domain or "ai.onnx"): i.version for i in m.opset_import}
    entry["max_abs_diff_ort_vs_torch"] = diffs
    entry["ops"] = ops
    report.append(entry)
    print(f"  ir_version={m.ir_version} opsets={entry['opset_imports']} functions={len(m.functions)} "
          f"dynamic={info['dynamic']}", flush=True)
    return entry


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="fixture names to (re)build, e.g. bert_dynamo")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    manifest_path = os.path.join(HERE, "manifest.json")
    previous = {}
    if args.only and os.path.exists(manifest_path):
        with open(manifest_path) as f:
            previous = {e["name"]: e for e in json.load(f)["fixtures"]}

    entries = []
    for model_name in MODELS:
        for exporter in ("torchscript", "dynamo"):
            name = f"{model_name}_{exporter}"
            if args.only and name not in args.only:
                if name in previous:
                    entries.append(previous[name])
                continue
            build(model_name, exporter, entries)

    manifest = collections.OrderedDict(
        generator="Tests/Fixtures/make_fixtures.py",
        versions=collections.OrderedDict(
            torch=torch.__version__,
            onnx=onnx.__version__,
            onnxruntime=ort.__version__,
            transformers=transformers.__version__,
            onnxscript=__import__("onnxscript").__version__,
            numpy=np.__version__,
        ),
        fixtures=entries,
    )
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")

    allops = collections.Counter()
    for e in entries:
        allops.update(e["ops"].keys())
    print("op types used across fixtures:", ", ".join(sorted(allops)))


if __name__ == "__main__":
    sys.exit(main())
