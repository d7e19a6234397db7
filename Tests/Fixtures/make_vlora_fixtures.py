#!/usr/bin/env python3
"""Build the VLoRA (per-image generated low-rank weights) test fixtures for Graft.

Run by hand (tests never need torch), after make_fixtures.py:

    /work/venv/bin/python Tests/Fixtures/make_vlora_fixtures.py

Needs: torch transformers onnx safetensors numpy (and make_fixtures.py next to it).
Writes only under Tests/Fixtures/vlora/ (other scripts' outputs are left alone).

The decoder is the tiny Llama of make_fixtures.py (same class, same seed: the weights of
llama_torchscript / llama_dynamo).  The generator is a small PyTorch module with fixed-seed
weights (nothing is trained):

    image_features F [N_v, d_v]
    K = F W_kᵀ + b_k, V = F W_vᵀ + b_v                     [N_v, d_h]
    P = softmax(Q Kᵀ / √d_h)                              [n_q, N_v]   Q: learned queries [n_q, d_h]
    h = flatten(P V)                                      [n_q · d_h]
    for each generated factor f: f = reshape(W_f h + b_f) [r, in] (A) or [out, r] (B)

exported with torch.onnx.export (TorchScript exporter, opset 17) to

    vlora/llama_qv_r4/generator.onnx            outputs named <module>.lora_A / <module>.lora_B
    vlora/llama_qv_r4/adapter_model.safetensors the fixed learned factor (layer 1 v_proj's B)
    vlora/llama_qv_r4/adapter_config.json       ties outputs to sites, with rank and scale

At each targeted linear layer the image adds  y += scale · B (A x), i.e. W' = W + scale · B A.
References are PyTorch with these deltas MERGED into the weights (W' per image):

    vlora/refs/features/img<k>.npy              [N_v, d_v] float32 visual features
    vlora/refs/factors/img0/<output>.npy        the generator's outputs for img0 (PyTorch)
    vlora/refs/single/logits.npy                basic inputs (llama_torchscript/basic), img0
    vlora/refs/mixed/inputs/*.npy               3 rows: img1, no image, img2
    vlora/refs/mixed/per_row/logits.npy         each row run alone with its merged weights
    vlora/refs/mixed/base/logits.npy            the whole batch on the base model
    vlora/refs/compose/logits.npy               basic inputs, img0 + the PEFT LoRA
                                                adapters/llama/lora_qvo_r8 (scale 1)
    vlora/manifest.json

The script asserts: the ONNX generator (run by onnxruntime) equals PyTorch's outputs; every
case moves the logits by >= 1e-2; a zero generator gives the base model; merged == unmerged
(hooks adding scale·B(Ax)) in PyTorch to 1e-5.
"""

import collections
import json
import math
import os
import shutil
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402

from safetensors.numpy import load_file, save_file  # noqa: E402

warnings.filterwarnings("ignore")

HERE = mf.HERE
OUT = os.path.join(HERE, "vlora")
ADAPTER = os.path.join(OUT, "llama_qv_r4")
REFS = os.path.join(OUT, "refs")
TOLERANCE = 1e-4
CHECK_TOL = 1e-5
MIN_DELTA = 1e-2

GEN_SEED = 31        # generator weights
FEATURE_SEED = 32    # visual features
FIXED_SEED = 33      # the fixed learned factor
MIXED_SEED = 606     # mixed-batch token ids

N_V, D_V = 12, 24    # features per image
N_Q, D_H = 2, 8      # learned queries, attention width
RANK = 4
LAYERS = 2
# (module, rank, scale, A source, B source): "gen" = generated, "fixed" = learned, fixed.
TARGETS = [
    (f"model.layers.{layer}.self_attn.{proj}", RANK, 0.5 if proj == "q_proj" else 0.25,
     "gen", "fixed" if (layer, proj) == (1, "v_proj") else "gen")
    for layer in range(LAYERS) for proj in ("q_proj", "v_proj")
]
AUX_INPUT = "image_features"
LORA_PATH = os.path.join(HERE, "adapters", "llama", "lora_qvo_r8")


def decoder():
    """The tiny Llama of make_fixtures.py (LlamaForCausalLM inside), exactly its weights."""
    mf.seed_all()
    return mf.MODELS["llama"]["cls"]().eval()


def linear(model, module):
    m = model.model
    for part in module.split("."):
        m = getattr(m, part)
    return m


class Generator(torch.nn.Module):
    """Learned queries attend to the image features; one linear head per generated factor."""

    def __init__(self, shapes):
        super().__init__()
        g = torch.Generator().manual_seed(GEN_SEED)
        self.queries = torch.nn.Parameter(torch.randn(N_Q, D_H, generator=g))
        self.k = torch.nn.Linear(D_V, D_H)
        self.v = torch.nn.Linear(D_V, D_H)
        self.names = list(shapes)
        self.shapes = [shapes[n] for n in self.names]
        self.heads = torch.nn.ModuleList(torch.nn.Linear(N_Q * D_H, math.prod(s)) for s in self.shapes)
        with torch.no_grad():
            for p in [self.k.weight, self.k.bias, self.v.weight, self.v.bias]:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            for h in self.heads:
                h.weight.copy_(torch.randn(h.weight.shape, generator=g) * 0.15)
                h.bias.copy_(torch.randn(h.bias.shape, generator=g) * 0.05)

    def forward(self, image_features):
        k = self.k(image_features)                                    # [N_v, d_h]
        v = self.v(image_features)                                    # [N_v, d_h]
        p = torch.softmax(self.queries @ k.t() / math.sqrt(D_H), -1)  # [n_q, N_v]
        h = (p @ v).reshape(-1)                                       # [n_q·d_h]
        return tuple(head(h).reshape(s) for head, s in zip(self.heads, self.shapes))


def factor_shapes(model):
    """Generator outputs in order: <module>.lora_A [r, in], <module>.lora_B [out, r]."""
    shapes = collections.OrderedDict()
    for module, r, _, a_src, b_src in TARGETS:
        lin = linear(model, module)
        if a_src == "gen":
            shapes[f"{module}.lora_A"] = (r, lin.in_features)
        if b_src == "gen":
            shapes[f"{module}.lora_B"] = (lin.out_features, r)
    return shapes


def fixed_factors(model):
    g = torch.Generator().manual_seed(FIXED_SEED)
    out = collections.OrderedDict()
    for module, r, _, a_src, b_src in TARGETS:
        lin = linear(model, module)
        if a_src == "fixed":
            out[f"{module}.lora_A"] = (torch.randn(r, lin.in_features, generator=g) * 0.3).numpy()
        if b_src == "fixed":
            out[f"{module}.lora_B"] = (torch.randn(lin.out_features, r, generator=g) * 0.3).numpy()
    return out


def generate(gen, fixed, features):
    """{module: (A, B, scale)} for one image (A, B as torch tensors)."""
    with torch.no_grad():
        outs = dict(zip(gen.names, gen(torch.from_numpy(features))))
    deltas = collections.OrderedDict()
    for module, _, scale, _, _ in TARGETS:
        a = outs.get(f"{module}.lora_A")
        b = outs.get(f"{module}.lora_B")
        a = a if a is not None else torch.from_numpy(fixed[f"{module}.lora_A"])
        b = b if b is not None else torch.from_numpy(fixed[f"{module}.lora_B"])
        deltas[module] = (a, b, scale)
    return deltas, outs


def lora_deltas():
    """The PEFT LoRA lora_qvo_r8 as {module: (A, B, scale)} (scale lora_alpha / r)."""
    with open(os.path.join(LORA_PATH, "adapter_config.json")) as f:
        cfg = json.load(f)
    s = cfg["lora_alpha"] / cfg["r"]
    w = load_file(os.path.join(LORA_PATH, "adapter_model.safetensors"))
    out = collections.OrderedDict()
    for k in sorted(w):
        if k.endswith(".lora_A.weight"):
            module = k[len("base_model.model."):-len(".lora_A.weight")]
            b = w[k.replace(".lora_A.", ".lora_B.")]
            out[module] = (torch.from_numpy(w[k]), torch.from_numpy(b), s)
    return out


def run(model, feeds):
    kw = {n: torch.from_numpy(feeds[n]) for n in mf.MODELS["llama"]["inputs"]}
    with torch.no_grad():
        return model(**kw)[0].numpy().astype(np.float32)


def merged(model, *delta_sets):
    """A copy of the decoder with W' = W + Σ scale · B A for every delta."""
    m = decoder()
    m.load_state_dict(model.state_dict())
    with torch.no_grad():
        for deltas in delta_sets:
            for module, (a, b, s) in deltas.items():
                linear(m, module).weight += s * (b @ a)
    return m.eval()


def unmerged(model, deltas, feeds):
    """The decoder with hooks adding scale · B (A x) after each target (checks merging)."""
    hooks = []
    for module, (a, b, s) in deltas.items():
        def hook(_, inp, out, a=a, b=b, s=s):
            return out + s * (inp[0] @ a.t()) @ b.t()
        hooks.append(linear(model, module).register_forward_hook(hook))
    try:
        return run(model, feeds)
    finally:
        for h in hooks:
            h.remove()


def load_inputs(folder):
    return collections.OrderedDict(
        (f[:-4], np.load(os.path.join(folder, f))) for f in sorted(os.listdir(folder)) if f.endswith(".npy"))


def rel(p):
    return os.path.relpath(p, HERE)


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(ADAPTER)

    base_model = decoder()
    shapes = factor_shapes(base_model)
    gen = Generator(shapes).eval()
    fixed = fixed_factors(base_model)

    # --- the adapter directory
    onnx_path = os.path.join(ADAPTER, "generator.onnx")
    example = torch.zeros(N_V, D_V)
    torch.onnx.export(gen, (example,), onnx_path, dynamo=False, opset_version=17,
                      input_names=[AUX_INPUT], output_names=list(shapes),
                      dynamic_axes={AUX_INPUT: {0: "patches"}}, do_constant_folding=True)
    save_file(fixed, os.path.join(ADAPTER, "adapter_model.safetensors"))
    targets = []
    for module, r, scale, a_src, b_src in TARGETS:
        t = collections.OrderedDict(module=module, r=r, scale=scale)
        t["lora_A"] = f"{module}.lora_A" if a_src == "gen" else {"fixed": f"{module}.lora_A"}
        t["lora_B"] = f"{module}.lora_B" if b_src == "gen" else {"fixed": f"{module}.lora_B"}
        targets.append(t)
    config = collections.OrderedDict(peft_type="GRAFT_VLORA", generator="generator.onnx",
                                     aux_input=AUX_INPUT, targets=targets)
    with open(os.path.join(ADAPTER, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")

    # --- features
    rng = np.random.default_rng(FEATURE_SEED)
    feats = [rng.standard_normal((N_V, D_V)).astype(np.float32) for _ in range(3)]
    for i, x in enumerate(feats):
        mf.save_npy(os.path.join(REFS, "features", f"img{i}.npy"), x)

    # --- the ONNX generator equals PyTorch's (onnxruntime)
    import onnxruntime as ort
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    d_onnx = 0.0
    for x in feats + [rng.standard_normal((5, D_V)).astype(np.float32)]:
        got = sess.run(None, {AUX_INPUT: x})
        with torch.no_grad():
            want = gen(torch.from_numpy(x))
        d_onnx = max(d_onnx, max(float(np.max(np.abs(g - w.numpy()))) for g, w in zip(got, want)))
    assert d_onnx <= CHECK_TOL, d_onnx

    deltas = [generate(gen, fixed, x) for x in feats]
    for name, t in deltas[0][1].items():
        mf.save_npy(os.path.join(REFS, "factors", "img0", f"{name}.npy"), t.numpy())

    checks = collections.OrderedDict(max_abs_diff_onnxruntime_generator_vs_torch=d_onnx)
    cases = []

    # --- single image over the basic inputs (both rows use img0)
    basic_dir = os.path.join(HERE, "llama_torchscript", "basic", "inputs")
    basic = load_inputs(basic_dir)
    base = run(base_model, basic)
    ref = mf.MODELS["llama"]
    torch_ref = np.load(os.path.join(HERE, "llama_torchscript", "basic", "torch", "logits.npy"))
    assert float(np.max(np.abs(base - torch_ref))) <= 1e-6
    single = run(merged(base_model, deltas[0][0]), basic)
    d_unmerged = float(np.max(np.abs(unmerged(base_model, deltas[0][0], basic) - single)))
    assert d_unmerged <= CHECK_TOL, d_unmerged
    delta = float(np.max(np.abs(single - base)))
    assert delta >= MIN_DELTA, delta
    mf.save_npy(os.path.join(REFS, "single", "logits.npy"), single)
    cases.append(collections.OrderedDict(
        case="single", inputs=rel(basic_dir), images=["img0", "img0"], outputs={"logits": rel(os.path.join(REFS, "single", "logits.npy"))},
        max_abs_delta_vs_base=delta, max_abs_diff_merged_vs_unmerged=d_unmerged))
    checks["single_merged_vs_unmerged"] = d_unmerged

    # --- zero generator == base (the heads all zero)
    zero = Generator(shapes).eval()
    with torch.no_grad():
        for h in zero.heads:
            h.weight.zero_()
            h.bias.zero_()
    zdeltas, _ = generate(zero, fixed, feats[0])
    d_zero = float(np.max(np.abs(run(merged(base_model, zdeltas), basic) - base)))
    assert d_zero == 0.0, d_zero
    checks["zero_generator_vs_base"] = d_zero

    # --- mixed batch: img1, no image, img2
    mrng = np.random.default_rng(MIXED_SEED)
    ids = mf.text_ids(mrng, 3, 7)
    mask = np.ones((3, 7), dtype=np.int64)
    mixed = collections.OrderedDict(attention_mask=mask, input_ids=ids, position_ids=mf.llama_position_ids(mask))
    mixed_dir = os.path.join(REFS, "mixed", "inputs")
    for k, v in mixed.items():
        mf.save_npy(os.path.join(mixed_dir, f"{k}.npy"), v)
    images = ["img1", None, "img2"]
    rows = []
    for i, img in enumerate(images):
        feeds = collections.OrderedDict((k, np.ascontiguousarray(v[i:i + 1])) for k, v in mixed.items())
        m = base_model if img is None else merged(base_model, deltas[int(img[3:])][0])
        rows.append(run(m, feeds))
    per_row = np.concatenate(rows, axis=0)
    mixed_base = run(base_model, mixed)
    row_delta = [float(np.max(np.abs(per_row[i] - mixed_base[i]))) for i in range(3)]
    assert row_delta[1] <= CHECK_TOL and row_delta[0] >= MIN_DELTA and row_delta[2] >= MIN_DELTA, row_delta
    mf.save_npy(os.path.join(REFS, "mixed", "per_row", "logits.npy"), per_row)
    mf.save_npy(os.path.join(REFS, "mixed", "base", "logits.npy"), mixed_base)
    cases.append(collections.OrderedDict(
        case="mixed", inputs=rel(mixed_dir), images=images,
        outputs={"logits": rel(os.path.join(REFS, "mixed", "per_row", "logits.npy"))},
        base_outputs={"logits": rel(os.path.join(REFS, "mixed", "base", "logits.npy"))},
        max_abs_delta_vs_base_per_row=row_delta))

    # --- composition with a task LoRA (PEFT's lora_qvo_r8 at scale 1) on the same sites
    lora = lora_deltas()
    assert set(m for m, *_ in TARGETS) & set(lora), "the task LoRA must share sites with the image delta"
    compose = run(merged(base_model, lora, deltas[0][0]), basic)
    lora_only = run(merged(base_model, lora), basic)
    d_vs_lora = float(np.max(np.abs(compose - lora_only)))
    assert d_vs_lora >= MIN_DELTA and float(np.max(np.abs(compose - single))) >= MIN_DELTA
    mf.save_npy(os.path.join(REFS, "compose", "logits.npy"), compose)
    cases.append(collections.OrderedDict(
        case="compose", inputs=rel(basic_dir), images=["img0", "img0"], lora=rel(LORA_PATH), lora_scale=1.0,
        outputs={"logits": rel(os.path.join(REFS, "compose", "logits.npy"))},
        max_abs_delta_vs_lora_only=d_vs_lora))

    manifest = collections.OrderedDict(
        generator="Tests/Fixtures/make_vlora_fixtures.py",
        paths_relative_to="Tests/Fixtures",
        versions=collections.OrderedDict(torch=torch.__version__, numpy=np.__version__),
        tolerance=TOLERANCE,
        decoder="llama_torchscript / llama_dynamo (make_fixtures.py, same seed)",
        adapter=rel(ADAPTER),
        aux_input=AUX_INPUT,
        feature_shape=[N_V, D_V],
        features={f"img{i}": rel(os.path.join(REFS, "features", f"img{i}.npy")) for i in range(3)},
        factors_img0={n: rel(os.path.join(REFS, "factors", "img0", f"{n}.npy")) for n in shapes},
        targets=[collections.OrderedDict(module=m, r=r, scale=s, lora_A=a, lora_B=b) for m, r, s, a, b in TARGETS],
        formula="at each target: y = W x + b + scale * B (A x); references merge W' = W + scale * B A (PyTorch)",
        cases=cases,
        checks=checks,
    )
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(json.dumps(checks, indent=1))
    for c in cases:
        print(c["case"], {k: v for k, v in c.items() if k.startswith("max")})


if __name__ == "__main__":
    sys.exit(main())
