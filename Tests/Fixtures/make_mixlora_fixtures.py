#!/usr/bin/env python3
"""MixLoRA fixtures (block-level mixtures of LoRA experts) on the tiny llama fixture.

The reference is the `mixlora` package itself (PyPI, 0.2.3: /work/venv/bin/pip install mixlora==0.2.3).
For each adapter below the script

  1. writes the checkpoint the package loads -- adapter_config.json (peft_type MIXLORA,
     routing_strategy mixlora, num_experts, top_k, act_fn, r, lora_alpha, ...) and
     adapter_model.bin, a torch.save'd dict with keys
         mixlora.layers.{i}.mlp.moe_gate.weight                       [E, hidden]
         mixlora.layers.{i}.mlp.{proj}.experts.{e}.lora_A/B.weight    [r, in] / [out, r]
         mixlora.layers.{i}.self_attn.{proj}.lora_A/B.weight          [r, in] / [out, r]
     -- into a temporary directory (the package has no save function, so the dict and config are
     written by hand), all weights fixed-seed random;
  2. loads it with the package's own mixlora.load_adapter_weights + inject_adapter_in_model into
     make_fixtures.py's llama (same class, same seed: the same weights as llama_torchscript /
     llama_dynamo), model.eval() *and every expert LoraLinear in eval mode* (the package keeps the
     experts in a plain dict, so model.eval() misses them and their dropout stays on);
  3. commits the checkpoint with the weights converted to adapter_model.safetensors (the
     conversion docs/ADAPTERS.md gives; Graft refuses pickles) and the package's outputs on the
     llama `basic` and `leftpad` inputs as references.

Everything goes under mixlora/ (its own manifest.json), NOT adapters/: make_adapter_fixtures.py
deletes adapters/ when re-run. Run after make_fixtures.py:

    /work/venv/bin/python Tests/Fixtures/make_mixlora_fixtures.py

Checks asserted here and recorded in the manifest: two runs give identical outputs (experts in
eval mode); with the experts left in train mode the outputs differ (the package quirk is real);
the references of the base model equal make_fixtures.py's torch references; every case moves the
logits by >= 1e-2; no top-k routing decision is within 1e-3 of a tie (router logits) (so float32 rounding
elsewhere cannot flip an expert choice); and the plain-PyTorch formula of docs/ADAPTERS.md
(shared W_d applied once to the weighted mean of the experts' hidden states) matches the
package to 1e-5.
"""

import collections
import json
import os
import shutil
import sys
import tempfile
import warnings

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402

import mixlora  # noqa: E402
from mixlora.model import MixLoraSparseMoe  # noqa: E402

warnings.filterwarnings("ignore")

HERE = mf.HERE
OUT = os.path.join(HERE, "mixlora")
TOLERANCE = 1e-4
CHECK_TOL = 1e-5
MIN_DELTA = 1e-2
MIN_MARGIN = 1e-3
CASES = ["basic", "leftpad"]
ATTN = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP = ["gate_proj", "up_proj", "down_proj"]

SPECS = collections.OrderedDict(
    # E 4, top-2, SiLU (the llama's own act), LoRA on every attention and MLP projection.
    mixlora_e4_top2=dict(seed=41, num_experts=4, top_k=2, act_fn="silu", r=4, lora_alpha=8, use_rslora=False,
                         targets=ATTN + MLP, gate_std=0.3, lora_std=0.15),
    # E 3, top-1, GELU (replacing the llama's SiLU, as the package does), rsLoRA, no up_proj delta,
    # attention LoRA on q/v only.
    mixlora_e3_top1_gelu=dict(seed=42, num_experts=3, top_k=1, act_fn="gelu", r=2, lora_alpha=4, use_rslora=True,
                              targets=["q_proj", "v_proj", "gate_proj", "down_proj"], gate_std=0.3, lora_std=0.2),
)


def base_model():
    """LlamaForCausalLM with exactly the weights make_fixtures.py exported."""
    mf.seed_all()
    return mf.MODELS["llama"]["cls"]().eval().model.eval()


def load_inputs(folder):
    return collections.OrderedDict(
        (f[:-4], np.load(os.path.join(folder, f))) for f in sorted(os.listdir(folder)) if f.endswith(".npy"))


def run(model, feeds):
    kw = {n: torch.from_numpy(feeds[n]) for n in mf.MODELS["llama"]["inputs"]}
    with torch.no_grad():
        out = model(**kw, use_cache=False, return_dict=True)
    return collections.OrderedDict(logits=out.logits.detach().numpy().astype(np.float32))


def max_diff(a, b):
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def config(spec):
    return collections.OrderedDict(
        bias="none", peft_type="MIXLORA", task_type="CAUSAL_LM", base_model_name_or_path="graft-tiny-llama",
        r=spec["r"], lora_alpha=spec["lora_alpha"], lora_dropout=0.05, use_rslora=spec["use_rslora"],
        target_modules=spec["targets"], routing_strategy="mixlora", num_experts=spec["num_experts"],
        top_k=spec["top_k"], act_fn=spec["act_fn"])


def weights(spec, model):
    """The checkpoint dict in the package's key layout, fixed-seed random."""
    gen = torch.Generator().manual_seed(spec["seed"])
    cfg = model.config
    hidden, inter = cfg.hidden_size, cfg.intermediate_size
    head = hidden // cfg.num_attention_heads
    shapes = dict(q_proj=(hidden, hidden), k_proj=(hidden, cfg.num_key_value_heads * head),
                  v_proj=(hidden, cfg.num_key_value_heads * head), o_proj=(hidden, hidden),
                  gate_proj=(hidden, inter), up_proj=(hidden, inter), down_proj=(inter, hidden))
    r, std = spec["r"], spec["lora_std"]
    t = collections.OrderedDict()
    for i in range(cfg.num_hidden_layers):
        for proj in ATTN:
            if proj in spec["targets"]:
                n_in, n_out = shapes[proj]
                p = f"mixlora.layers.{i}.self_attn.{proj}"
                t[p + ".lora_A.weight"] = torch.randn(r, n_in, generator=gen) * std
                t[p + ".lora_B.weight"] = torch.randn(n_out, r, generator=gen) * std
        t[f"mixlora.layers.{i}.mlp.moe_gate.weight"] = torch.randn(spec["num_experts"], hidden, generator=gen) * spec["gate_std"]
        for proj in MLP:
            if proj in spec["targets"]:
                n_in, n_out = shapes[proj]
                for e in range(spec["num_experts"]):
                    p = f"mixlora.layers.{i}.mlp.{proj}.experts.{e}"
                    t[p + ".lora_A.weight"] = torch.randn(r, n_in, generator=gen) * std
                    t[p + ".lora_B.weight"] = torch.randn(n_out, r, generator=gen) * std
    return t


def moe_layers(model):
    return [m for layer in model.model.layers for m in layer.mlp.mixlora_moes.values()]


def set_experts_training(model, training):
    for moe in moe_layers(model):
        for expert in moe.experts_.values():
            expert.train(training)


def with_package(folder):
    """The llama with the checkpoint in `folder` loaded by the package itself, experts in eval mode."""
    cfg, w = mixlora.load_adapter_weights(folder, adapter_name="default", device="cpu", dtype=torch.float32)
    model = base_model()
    mixlora.inject_adapter_in_model(model, cfg, w)
    model.eval()
    set_experts_training(model, False)
    return model


def routing_margins(model, feeds, top_k):
    """Smallest gap between the k-th and (k+1)-th router logit over all tokens and layers."""
    margins = []
    hooks = []
    for layer in model.model.layers:
        moe = next(iter(layer.mlp.mixlora_moes.values()))

        def pre(_m, args, moe=moe):
            x = args[0].reshape(-1, args[0].shape[-1]).float()
            # Softmax is monotone: the decision is made on the logits; compare those.
            s = torch.sort(x @ moe.gate_.T, dim=-1, descending=True).values
            if s.shape[-1] > top_k:
                margins.append(float((s[:, top_k - 1] - s[:, top_k]).min()))
        hooks.append(layer.mlp.register_forward_pre_hook(pre))
    run(model, feeds)
    for h in hooks:
        h.remove()
    return min(margins) if margins else None


def act(name):
    return dict(silu=torch.nn.functional.silu, gelu=lambda v: torch.nn.functional.gelu(v))[name]


def controlled_weights(logits, spec, control):
    """Dense router weights [T, E] under one router's per-request control (docs/ADAPTERS.md,
    "Controlling routed experts"): allow/deny set the logits of excluded experts to -inf before
    softmax and top-min(k, allowed) with renormalisation; force gives each forced expert weight 1;
    an override is used as it is. Also returns the smallest top-k margin among allowed experts."""
    e, k = spec["num_experts"], spec["top_k"]
    if "override" in control:
        return torch.from_numpy(control["override"]), None
    if "force" in control:
        return torch.tensor([[1.0 if i in control["force"] else 0.0 for i in range(e)]]).expand(logits.shape[0], e), None
    allowed = [i for i in range(e) if i in control.get("allow", range(e)) and i not in control.get("deny", [])]
    z = torch.full_like(logits, float("-inf"))
    z[:, allowed] = logits[:, allowed]
    k = min(k, len(allowed))
    w, sel = torch.topk(torch.softmax(z, dim=-1), k, dim=-1)
    w = w / w.sum(-1, keepdim=True)
    dense = torch.zeros_like(logits).scatter(1, sel, w)
    s = torch.sort(logits[:, allowed], dim=-1, descending=True).values
    margin = float((s[:, k - 1] - s[:, k]).min()) if len(allowed) > k else None
    return dense, margin


def formula_output(spec, tensors, feeds, controls=None):
    """docs/ADAPTERS.md's formula in plain PyTorch, with W_d applied once to sum_e w_e h_e.
    `controls`: {layer: {allow|deny|force: [experts], override: [T, E] array}}. Returns the
    outputs, the dense router weights [T, E] of every layer, and the smallest routing margin."""
    model = base_model()
    s = spec["lora_alpha"] / (spec["r"] ** 0.5 if spec["use_rslora"] else spec["r"])
    f = act(spec["act_fn"])
    routing, margins = [], []

    def delta(prefix, v):
        a, b = tensors.get(prefix + ".lora_A.weight"), tensors.get(prefix + ".lora_B.weight")
        return 0 if a is None else s * (v @ a.T) @ b.T

    for i, layer in enumerate(model.model.layers):
        for proj in ATTN:
            lin = getattr(layer.self_attn, proj)
            p = f"mixlora.layers.{i}.self_attn.{proj}"
            lin.forward = (lambda v, lin=lin, p=p: torch.nn.functional.linear(v, lin.weight) + delta(p, v))
        mlp = layer.mlp

        def mlp_forward(x, i=i, mlp=mlp):
            shape = x.shape
            x = x.reshape(-1, shape[-1])
            logits = x @ tensors[f"mixlora.layers.{i}.mlp.moe_gate.weight"].T
            w, margin = controlled_weights(logits, spec, (controls or {}).get(i, {}))
            routing.append(w.clone().numpy().astype(np.float32))
            if margin is not None:
                margins.append(margin)
            g, u = x @ mlp.gate_proj.weight.T, x @ mlp.up_proj.weight.T
            hbar = torch.zeros_like(g)
            dd = torch.zeros(x.shape[0], shape[-1])
            for e in range(spec["num_experts"]):
                we = w[:, e:e + 1]                                  # 0 for tokens not routed to e
                pre = f"mixlora.layers.{i}.mlp.%s.experts.{e}"
                h = f(g + delta(pre % "gate_proj", x)) * (u + delta(pre % "up_proj", x))
                hbar = hbar + we * h
                dd = dd + we * delta(pre % "down_proj", h)
            return (hbar @ mlp.down_proj.weight.T + dd).reshape(shape)
        mlp.forward = mlp_forward
    out = run(model, feeds)
    return out, routing, (min(margins) if margins else None)


def control_cases(spec, tokens):
    """Per-request routing controls on mixlora_e4_top2 (layer -> control), made once with a fixed seed."""
    gen = np.random.default_rng(7)
    override = np.zeros((tokens, spec["num_experts"]), np.float32)
    for t in range(tokens):   # two experts per token, weights in [0.2, 1.2) not summing to 1
        override[t, gen.choice(spec["num_experts"], 2, replace=False)] = gen.uniform(0.2, 1.2, 2)
    return collections.OrderedDict(
        allow_deny={0: dict(allow=[0, 2, 3]), 1: dict(deny=[1, 3])},
        force_one={0: dict(force=[1]), 1: dict(force=[1])},
        force_two={0: dict(force=[0, 3])},
        override={1: dict(override=override)},
    )


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(os.path.join(OUT, "llama", "refs"))
    feeds = {c: load_inputs(os.path.join(HERE, "llama_torchscript", c, "inputs")) for c in CASES}
    adapters, cases, checks = [], [], collections.OrderedDict()

    base = base_model()
    for c in CASES:
        out = run(base, feeds[c])
        for ex in ("torchscript", "dynamo"):
            ref = np.load(os.path.join(HERE, f"llama_{ex}", c, "torch", "logits.npy"))
            assert float(np.max(np.abs(out["logits"] - ref))) <= CHECK_TOL, (c, ex)
    base_out = {c: run(base, feeds[c]) for c in CASES}

    for name, spec in SPECS.items():
        target = os.path.join(OUT, "llama", name)
        os.makedirs(target)
        cfg = config(spec)
        tensors = weights(spec, base)
        with tempfile.TemporaryDirectory() as tmp:
            # What the package loads: adapter_config.json + a pickled adapter_model.bin.
            with open(os.path.join(tmp, "adapter_config.json"), "w") as f:
                json.dump(cfg, f, indent=2)
            torch.save(dict(tensors), os.path.join(tmp, "adapter_model.bin"))
            model = with_package(tmp)
            # The conversion docs/ADAPTERS.md gives, run on the package's file.
            converted = torch.load(os.path.join(tmp, "adapter_model.bin"), weights_only=True)
        with open(os.path.join(target, "adapter_config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        save_file({k: v.contiguous() for k, v in converted.items()}, os.path.join(target, "adapter_model.safetensors"),
                  metadata={"format": "pt"})
        back = load_file(os.path.join(target, "adapter_model.safetensors"))
        assert sorted(back) == sorted(tensors) and all(torch.equal(back[k], tensors[k]) for k in tensors)

        info = collections.OrderedDict()
        for c in CASES:
            out = run(model, feeds[c])
            again = run(model, feeds[c])
            assert max_diff(out, again) == 0.0, "experts in eval mode must be deterministic"
            set_experts_training(model, True)
            noisy = run(model, feeds[c])
            set_experts_training(model, False)
            train_diff = max_diff(out, noisy)
            assert train_diff > MIN_DELTA / 10, "with experts in train mode, dropout should change the outputs"
            delta = max_diff(out, base_out[c])
            assert delta >= MIN_DELTA, (name, c, delta)
            margin = routing_margins(model, feeds[c], spec["top_k"])
            assert margin is None or margin >= MIN_MARGIN, (name, c, margin)
            formula, routing, _ = formula_output(spec, tensors, feeds[c])
            fdiff = max_diff(out, formula)
            assert fdiff <= CHECK_TOL, (name, c, fdiff)
            refdir = os.path.join(OUT, "llama", "refs", name, c)
            os.makedirs(refdir)
            np.save(os.path.join(refdir, "logits.npy"), out["logits"])
            for i, w in enumerate(routing):   # what a routing record of this run holds, per block router
                np.save(os.path.join(refdir, f"router_weights_layer{i}.npy"), w)
            cases.append(collections.OrderedDict(
                model="llama", case=f"{name}/{c}", adapter=name,
                inputs=f"llama_torchscript/{c}/inputs", outputs=dict(logits=os.path.relpath(os.path.join(refdir, "logits.npy"), HERE)),
                applies_to=["llama_torchscript", "llama_dynamo"]))
            info[c] = collections.OrderedDict(
                max_abs_delta_vs_base=delta, max_abs_diff_experts_in_train_mode=train_diff,
                min_routing_margin=margin, max_abs_diff_formula_vs_package=fdiff)
        checks[name] = info
        adapters.append(collections.OrderedDict(
            model="llama", name=name, path=os.path.relpath(target, HERE), config=cfg,
            tensors=collections.OrderedDict((k, list(v.shape)) for k, v in tensors.items())))
        print(name, json.dumps(info))

    # Per-request routing control of the block routers: references from the formula above (which
    # matches the package on every uncontrolled case, checked in the loop) with the control applied
    # to the router weights.
    controls = []
    name, c = "mixlora_e4_top2", CASES[0]
    spec = SPECS[name]
    tensors = load_file(os.path.join(OUT, "llama", name, "adapter_model.safetensors"))
    tokens = int(np.prod(feeds[c]["input_ids"].shape))
    plain = np.load(os.path.join(OUT, "llama", "refs", name, c, "logits.npy"))
    for cname, control in control_cases(spec, tokens).items():
        out, _, margin = formula_output(spec, tensors, feeds[c], control)
        assert margin is None or margin >= MIN_MARGIN, (cname, margin)
        moved = float(np.max(np.abs(out["logits"] - plain)))
        assert moved >= MIN_DELTA, (cname, moved)
        refdir = os.path.join(OUT, "llama", "refs", "controls", cname)
        os.makedirs(refdir)
        np.save(os.path.join(refdir, "logits.npy"), out["logits"])
        entry = collections.OrderedDict()
        for layer, ctl in control.items():
            e = collections.OrderedDict()
            for kind, v in ctl.items():
                if kind == "override":
                    np.save(os.path.join(refdir, f"override_layer{layer}.npy"), v)
                    e[kind] = os.path.relpath(os.path.join(refdir, f"override_layer{layer}.npy"), HERE)
                else:
                    e[kind] = v
            entry[str(layer)] = e
        controls.append(collections.OrderedDict(
            name=cname, adapter=name, inputs=f"llama_torchscript/{c}/inputs", controls=entry,
            outputs=dict(logits=os.path.relpath(os.path.join(refdir, "logits.npy"), HERE)),
            max_abs_delta_vs_uncontrolled=moved, min_routing_margin=margin))
        print("control", cname, moved, margin)

    import transformers
    manifest = collections.OrderedDict(
        generator="Tests/Fixtures/make_mixlora_fixtures.py",
        paths_relative_to="Tests/Fixtures",
        versions=collections.OrderedDict(torch=torch.__version__, transformers=transformers.__version__,
                                         mixlora="0.2.3", numpy=np.__version__),
        tolerance=TOLERANCE,
        notes=[
            "References are the mixlora package's outputs (load_adapter_weights + inject_adapter_in_model on "
            "make_fixtures.py's llama), float32, eval mode for the model and every expert LoraLinear, no grad.",
            "The package read adapter_model.bin; the committed adapter_model.safetensors holds the same tensors "
            "(torch.load(weights_only=True) then safetensors save_file).",
            "Inputs are llama_torchscript/<case>/inputs (the same as llama_dynamo's).",
            "refs/<adapter>/<case>/router_weights_layer<i>.npy: the block router's final weights [tokens, experts] "
            "(what a routing record holds).",
            "controls: per-request routing control of the block routers (by layer); references from the plain-PyTorch "
            "formula with the control applied to the router weights (the formula matches the package on every "
            "uncontrolled case to 1e-5).",
        ],
        adapters=adapters, cases=cases, checks=checks, controls=controls)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
