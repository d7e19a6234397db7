#!/usr/bin/env python3
"""ModalityGate fixtures (Graft's native format, peft_type GRAFT_MODALITY_GATE, docs/ADAPTERS.md)
on make_fixtures.py's bert, with plain-PyTorch references written from the formulas:

    m_t                  the token's modality id (given per run, [batch, sequence])
    S_e                  the modality ids expert e serves (config "expert_modalities")
    allowed(t, e)        m_t in S_e
    hard gates (no router):   g_t[e] = 1 if allowed(t, e) else 0
    routed (router z_t = W_r x_t + b_r):
        z_t[e] = -inf where not allowed(t, e); then the router's gate over the allowed experts
        (softmax; top-k keeps min(k, #allowed) and renormalises if asked; sigmoid independent);
        a token no expert serves gets g_t = 0 (the base layer)
    y_t = W x_t + b + sum_e g_t[e] * (lora_alpha / r) * B_e A_e x_t

Adapters (query + value of both layers, r 4, lora_alpha 8, fixed seeds):
  mg_hard_image   E 1, [[1]]                   LoRA on image tokens only (hard gate)
  mg_hard_three   E 3, [[0], [1], [2]]         one LoRA per modality, all active in one request
  mg_moma_top1    E 4, [[0], [0], [1], [1]]    top-1 within the token's modality group (MoMa)
  mg_moiie_top2   E 5, [[0], [0], [1], [1], [0, 1]]  top-2 over intra-modality experts plus a
                                               shared inter-modality expert, renormalised (MoIIE)
  mg_slide_soft   E 3, [[0], [1], [0, 1]]      softmax over the token's modality-specific LoRA and
                                               the shared one (Slide-LoRA)
and, for the equivalence "a hard gate over modalities = each modality's LoRA on its own tokens",
llama_mg_moiie_top2 / llama_mg_hard_image (q_proj, v_proj of the llama fixture, its basic
inputs, the same ids), and mg_hard_three's experts as three PEFT-layout LORA directories with "graft_modalities": [m]
(lora_m0, lora_m1, lora_m2).

Modality ids (ids.npy, uint8 [2, 7]): 0 text, 1 image, 2 audio, and 9, which no expert serves
(those tokens stay on the base model at every adapted site). Cases run the bert `basic` inputs
with ids.npy; text_only runs mg_hard_image with every id 0 (must equal the base model) and
moiie_text_only runs mg_moiie_top2 with every id 0 (a request without image tokens).

Writes Tests/Fixtures/modality_gate/ (outside adapters/, which make_adapter_fixtures.py rewrites).
    /work/venv/bin/python Tests/Fixtures/make_modality_fixtures.py
"""

import collections
import json
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402
import make_moe_fixtures as moe  # noqa: E402

HERE = mf.HERE
OUT = os.path.join(HERE, "modality_gate")
INPUTS = "bert_torchscript/basic/inputs"
TARGETS = ["query", "value"]
R, ALPHA = 4, 8
IDS = np.array([[0, 0, 1, 1, 1, 0, 9], [1, 1, 0, 2, 2, 0, 0]], dtype=np.uint8)
MIN_DELTA = 1e-2
MIN_MARGIN = 1e-3
CHECK_TOL = 1e-5

SPECS = collections.OrderedDict(
    mg_hard_image=dict(seed=51, groups=[[1]], router=None),
    mg_hard_three=dict(seed=52, groups=[[0], [1], [2]], router=None),
    mg_moma_top1=dict(seed=53, groups=[[0], [0], [1], [1]],
                      router=collections.OrderedDict(gate="topk", top_k=1, renormalize=True, bias=True)),
    mg_moiie_top2=dict(seed=54, groups=[[0], [0], [1], [1], [0, 1]],
                       router=collections.OrderedDict(gate="topk", top_k=2, renormalize=True, bias=True)),
    mg_slide_soft=dict(seed=55, groups=[[0], [1], [0, 1]],
                       router=collections.OrderedDict(gate="softmax", bias=False)),
    # The decoder: q_proj / v_proj of the llama fixture (causal attention, GQA).
    llama_mg_moiie_top2=dict(seed=56, model="llama", targets=["q_proj", "v_proj"], groups=[[0], [0], [1], [1], [0, 1]],
                             router=collections.OrderedDict(gate="topk", top_k=2, renormalize=True, bias=True)),
    llama_mg_hard_image=dict(seed=57, model="llama", targets=["q_proj", "v_proj"], groups=[[1]], router=None),
)
LLAMA_INPUTS = "llama_torchscript/basic/inputs"


class ModalityGateLinear(torch.nn.Module):
    """The formulas of the module docstring around one nn.Linear; `ids` [batch, seq] set per run."""

    def __init__(self, base, groups, router):
        super().__init__()
        self.base, self.groups, self.cfg = base, groups, router
        self.scaling = ALPHA / R
        self.ids = None
        self.margins = []
        if router is not None:
            self.router = torch.nn.Linear(base.in_features, len(groups), bias=bool(router.get("bias")))
        self.experts = torch.nn.ModuleList()
        for _ in groups:
            e = torch.nn.Module()
            e.lora_A = torch.nn.Linear(base.in_features, R, bias=False)
            e.lora_B = torch.nn.Linear(R, base.out_features, bias=False)
            self.experts.append(e)

    def gates(self, x):
        ids = self.ids.reshape(x.shape[:-1])
        allowed = torch.stack([torch.isin(ids, torch.tensor(g, dtype=ids.dtype)) for g in self.groups], dim=-1)
        if self.cfg is None:
            return allowed.to(x.dtype)
        z = self.router(x)
        flat_z, flat_a = z.reshape(-1, z.shape[-1]), allowed.reshape(-1, z.shape[-1])
        g = torch.zeros_like(flat_z)
        for t in range(flat_z.shape[0]):
            keep = flat_a[t]
            n = int(keep.sum())
            if n == 0:
                continue
            zt = flat_z[t].masked_fill(~keep, float("-inf"))
            gate = self.cfg["gate"]
            if gate == "sigmoid":
                g[t] = torch.where(keep, torch.sigmoid(flat_z[t]), torch.zeros_like(zt))
                continue
            p = torch.softmax(zt, dim=-1)
            if gate == "softmax":
                g[t] = p
                continue
            assert gate == "topk"
            k = min(self.cfg["top_k"], n)
            if k < n:
                s = torch.sort(zt, descending=True).values
                self.margins.append(float(s[k - 1] - s[k]))
            vals, idx = torch.topk(p, k)
            g[t, idx] = vals
            if self.cfg["renormalize"]:
                g[t] = g[t] / g[t].sum()
        return g.reshape(z.shape)

    def forward(self, x):
        y = self.base(x)
        g = self.gates(x)
        for e, ex in enumerate(self.experts):
            y = y + g[..., e:e + 1] * self.scaling * ex.lora_B(ex.lora_A(x))
        return y


def base_model(name):
    """bert: the inner BertModel; llama: LlamaForCausalLM; both with make_fixtures.py's weights."""
    if name == "bert":
        return moe.base_model()
    mf.seed_all()
    return mf.MODELS["llama"]["cls"]().eval().model.eval()


def build(spec):
    model = base_model(spec.get("model", "bert"))
    modules = moe.targeted(model, spec.get("targets", TARGETS))
    moe.attach(model, modules, lambda _n, lin: ModalityGateLinear(lin, spec["groups"], spec["router"]))
    gen = torch.Generator().manual_seed(spec["seed"])
    for n in modules:
        m = model.get_submodule(n)
        with torch.no_grad():
            if spec["router"] is not None:
                m.router.weight.normal_(0, 0.5, generator=gen)
                if m.router.bias is not None:
                    m.router.bias.normal_(0, 0.5, generator=gen)
            for e in m.experts:
                e.lora_A.weight.normal_(0, 0.15, generator=gen)
                e.lora_B.weight.normal_(0, 0.15, generator=gen)
    return model.eval(), modules


def run(model, modules, feeds, ids, name="bert"):
    for n in modules:
        model.get_submodule(n).ids = torch.from_numpy(ids.astype(np.int64))
    if name == "bert":
        return moe.run(model, feeds)
    kw = {n: torch.from_numpy(feeds[n]) for n in mf.MODELS["llama"]["inputs"]}
    with torch.no_grad():
        return collections.OrderedDict(logits=model(**kw).logits.detach().numpy().astype(np.float32))


def save_dir(path, config, tensors):
    os.makedirs(path)
    with open(os.path.join(path, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    save_file({k: v.detach().clone().contiguous() for k, v in tensors.items()},
              os.path.join(path, "adapter_model.safetensors"), metadata={"format": "pt"})


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    feeds = moe.load_inputs(os.path.join(HERE, INPUTS))
    assert feeds["input_ids"].shape == IDS.shape, feeds["input_ids"].shape
    base = moe.run(moe.base_model(), feeds)
    llama_feeds = moe.load_inputs(os.path.join(HERE, LLAMA_INPUTS))
    assert llama_feeds["input_ids"].shape == IDS.shape, llama_feeds["input_ids"].shape
    llama_base = run(base_model("llama"), [], llama_feeds, IDS, "llama")
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    mf.save_npy(os.path.join(OUT, "ids.npy"), IDS)
    manifest = collections.OrderedDict(model="bert", inputs=INPUTS, ids="modality_gate/ids.npy", tolerance=1e-4,
                                       adapters=collections.OrderedDict(), cases=collections.OrderedDict(),
                                       checks=collections.OrderedDict())

    def case(name, adapters, out, ids="modality_gate/ids.npy", model="bert"):
        for k, v in out.items():
            mf.save_npy(os.path.join(OUT, "refs", name, f"{k}.npy"), v)
        ref = base if model == "bert" else llama_base
        delta = max(float(np.max(np.abs(out[k] - ref[k]))) for k in out)
        manifest["cases"][name] = collections.OrderedDict(
            model=model, inputs=INPUTS if model == "bert" else LLAMA_INPUTS, adapters=adapters, ids=ids,
            outputs={k: f"modality_gate/refs/{name}/{k}.npy" for k in out}, max_abs_delta_vs_base=delta)
        return delta

    outs = {}
    for name, spec in SPECS.items():
        model, modules = build(spec)
        which = spec.get("model", "bert")
        out = run(model, modules, feeds if which == "bert" else llama_feeds, IDS, which)
        outs[name] = out
        margins = [x for n in modules for x in model.get_submodule(n).margins]
        assert not margins or min(margins) >= MIN_MARGIN, f"{name}: a routing decision is {min(margins)} from a tie"
        tensors = collections.OrderedDict()
        for n in modules:
            m = model.get_submodule(n)
            p = f"base_model.model.{n}."
            if spec["router"] is not None:
                tensors[p + "router.weight"] = m.router.weight
                if m.router.bias is not None:
                    tensors[p + "router.bias"] = m.router.bias
            for e, ex in enumerate(m.experts):
                tensors[p + f"experts.{e}.lora_A.weight"] = ex.lora_A.weight
                tensors[p + f"experts.{e}.lora_B.weight"] = ex.lora_B.weight
        config = collections.OrderedDict(peft_type="GRAFT_MODALITY_GATE", r=R, lora_alpha=ALPHA,
                                         num_experts=len(spec["groups"]), expert_modalities=spec["groups"])
        if spec["router"] is not None:
            config["router"] = spec["router"]
        config["target_modules"] = spec.get("targets", TARGETS)
        save_dir(os.path.join(OUT, name), config, tensors)
        manifest["adapters"][name] = f"modality_gate/{name}"
        delta = case(name, [name], out, model=which)
        assert delta >= MIN_DELTA, f"{name} moves the outputs too little ({delta})"
        print(f"  {name:16s} max|Δ vs base| {delta:.4f}", flush=True)

        if name == "mg_moiie_top2":
            # No image token in the request: text tokens route within the text group + shared.
            text = run(model, modules, feeds, np.zeros_like(IDS))
            mf.save_npy(os.path.join(OUT, "ids_text.npy"), np.zeros_like(IDS))
            case("moiie_text_only", [name], text, ids="modality_gate/ids_text.npy")
        if name == "mg_hard_image":
            # A text-only request through an image-only adapter is the base model.
            text = run(model, modules, feeds, np.zeros_like(IDS))
            d = max(float(np.max(np.abs(text[k] - base[k]))) for k in text)
            assert d == 0.0, d
            mf.save_npy(os.path.join(OUT, "ids_text.npy"), np.zeros_like(IDS))
            case("text_only", [name], text, ids="modality_gate/ids_text.npy")
            manifest["checks"]["mg_hard_image, text-only ids vs base"] = d
        if name == "mg_hard_three":
            # Each expert as a LORA directory gated to its modality ("graft_modalities").
            for e, g in enumerate(spec["groups"]):
                lora = collections.OrderedDict()
                for n in modules:
                    ex = model.get_submodule(n).experts[e]
                    lora[f"base_model.model.{n}.lora_A.weight"] = ex.lora_A.weight
                    lora[f"base_model.model.{n}.lora_B.weight"] = ex.lora_B.weight
                save_dir(os.path.join(OUT, f"lora_m{g[0]}"),
                         collections.OrderedDict(peft_type="LORA", r=R, lora_alpha=ALPHA, target_modules=TARGETS,
                                                 bias="none", graft_modalities=g), lora)
                manifest["adapters"][f"lora_m{g[0]}"] = f"modality_gate/lora_m{g[0]}"
            case("three_loras", [f"lora_m{g[0]}" for g in spec["groups"]], out)
    # The three hard-gated experts together, summed, are the three LoRAs on their own tokens: the
    # same module, so only the case above records it; the Swift test runs both through Graft.
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print("checks:", dict(manifest["checks"]))


if __name__ == "__main__":
    sys.exit(main())
