#!/usr/bin/env python3
"""References for per-request control of routed experts (docs/ADAPTERS.md, "Controlling routed
experts"), on make_moe_fixtures.py's moe_topk2 adapter (bert, E 4, r 4, lora_alpha 8, top-2
renormalised, router bias, query + value of both layers: routers 0..3 in file order
L0.query, L0.value, L1.query, L1.value).

Plain PyTorch from the formulas, with MoELoRALinear's router and experts:

    allow / deny  z_e = -inf for experts not allowed or denied, then the router's gate
                  (softmax over the rest; top-k keeps min(k, allowed); renormalised as the router)
    force F       g_e = 1 for e in F, else 0 (the router is bypassed)
    override G    g = G [tokens, E] as given (tokens = batch x sequence, row-major)
    y = W x + b + sum_e g_e * (lora_alpha / r) * B_e A_e x

Writes Tests/Fixtures/moe_control/ (outside adapters/, which make_adapter_fixtures.py
rewrites): cases.json, the references per case, the override weights, the router-0 gates of
the uncontrolled run (what a routing record must show), and expert1_lora/ — a PEFT-layout
LORA directory holding expert 1's A and B of every module, which a forced expert 1 must equal
(asserted here against plain s*B A x).

Run after make_moe_fixtures.py:
    /work/venv/bin/python Tests/Fixtures/make_routing_fixtures.py
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
OUT = os.path.join(HERE, "moe_control")
INPUTS = "bert_torchscript/basic/inputs"
CHECK_TOL = 1e-5
MIN_DELTA = 1e-3   # every controlled case must differ from the uncontrolled run


def controlled(m, control):
    """Replaces m.gates with the controlled gate of the module docstring."""
    if not hasattr(m, "plain_gates"):
        m.plain_gates = m.gates
    plain = m.plain_gates

    def gates(x):
        if "force" in control:
            g = torch.zeros(x.shape[:-1] + (m.num_experts,))
            g[..., control["force"]] = 1.0
            return g
        if "override" in control:
            return torch.from_numpy(control["override"]).reshape(x.shape[:-1] + (m.num_experts,))
        keep = torch.ones(m.num_experts, dtype=torch.bool)
        if "allow" in control:
            keep = torch.zeros(m.num_experts, dtype=torch.bool)
            keep[control["allow"]] = True
        if "deny" in control:
            keep[control["deny"]] = False
        z = m.router(x).masked_fill(~keep, float("-inf"))
        p = torch.softmax(z, dim=-1)
        assert m.gate == "topk"
        k = min(m.top_k, int(keep.sum()))
        if k < int(keep.sum()):   # the choice flips only if the k-th and (k+1)-th allowed logits swap
            sz = torch.sort(z, dim=-1, descending=True).values
            assert float((sz[..., k - 1] - sz[..., k]).min()) >= moe.MIN_MARGIN, "a masked routing decision is near a tie"
        vals, idx = torch.topk(p, k, dim=-1)
        g = torch.zeros_like(p).scatter(-1, idx, vals)
        if m.renormalize:
            g = g / g.sum(dim=-1, keepdim=True)
        return g

    m.gates = gates if control else plain


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    feeds = moe.load_inputs(os.path.join(HERE, INPUTS))
    spec = moe.SPECS["moe_topk2"]
    model, modules = moe.build(spec)
    assert modules == ["encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.value",
                       "encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.value"], modules
    tokens = int(np.prod(feeds["input_ids"].shape))
    plain = moe.run(model, feeds)

    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)

    # The uncontrolled router-0 gates: what a routing record must show for router 0.
    m0 = model.get_submodule(modules[0])
    captured = []
    orig = m0.gates
    m0.gates = lambda x: captured.append(orig(x)) or captured[-1]
    moe.run(model, feeds)
    m0.gates = orig
    mf.save_npy(os.path.join(OUT, "router0_gates.npy"), captured[0].reshape(tokens, -1).detach().numpy())

    override = np.random.default_rng(7).uniform(-0.5, 1.5, size=(tokens, spec["num_experts"])).astype(np.float32)
    mf.save_npy(os.path.join(OUT, "override_router1.npy"), override)

    # case -> {router index -> control}
    cases = collections.OrderedDict(
        force_e1={i: {"force": [1]} for i in range(4)},
        allow_03_deny2={0: {"allow": [0, 3]}, 3: {"deny": [2]}},
        allow_1={2: {"allow": [1]}},
        override_router1={1: {"override": override}},
    )
    manifest = collections.OrderedDict(
        adapter="adapters/bert/moe_topk2", model="bert", inputs=INPUTS, tolerance=1e-4, tokens=tokens,
        routers=modules, router0_gates="moe_control/router0_gates.npy", cases=collections.OrderedDict())
    outs = {}
    for name, controls in cases.items():
        for i, n in enumerate(modules):
            controlled(model.get_submodule(n), controls.get(i, {}))
        out = moe.run(model, feeds)
        outs[name] = out
        delta = max(float(np.max(np.abs(out[k] - plain[k]))) for k in out)
        assert delta >= MIN_DELTA, f"{name} barely moves the outputs ({delta})"
        for k, v in out.items():
            mf.save_npy(os.path.join(OUT, name, f"{k}.npy"), v)
        manifest["cases"][name] = collections.OrderedDict(
            controls=collections.OrderedDict(
                (str(i), {kind: ("moe_control/override_router1.npy" if kind == "override" else v)
                          for kind, v in c.items()}) for i, c in controls.items()),
            outputs=collections.OrderedDict((k, f"moe_control/{name}/{k}.npy") for k in out),
            max_abs_delta_vs_uncontrolled=delta)
    for n in modules:
        controlled(model.get_submodule(n), {})

    # expert 1 of every module as a plain LoRA: y = W x + b + (alpha / r) B_1 A_1 x.
    lora_dir = os.path.join(OUT, "expert1_lora")
    os.makedirs(lora_dir)
    tensors = collections.OrderedDict()
    for n in modules:
        e = model.get_submodule(n).experts[1]
        tensors[f"base_model.model.{n}.lora_A.weight"] = e.lora_A.weight.detach().clone().contiguous()
        tensors[f"base_model.model.{n}.lora_B.weight"] = e.lora_B.weight.detach().clone().contiguous()
    save_file(tensors, os.path.join(lora_dir, "adapter_model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(lora_dir, "adapter_config.json"), "w") as f:
        json.dump(collections.OrderedDict(peft_type="LORA", r=spec["r"], lora_alpha=spec["lora_alpha"],
                                          target_modules=spec["targets"], bias="none"), f, indent=2)
        f.write("\n")
    base = moe.base_model()
    moe.attach(base, modules, lambda n, lin: _PlainLoRA(lin, model.get_submodule(n).experts[1],
                                                          spec["lora_alpha"] / spec["r"]))
    d = max(float(np.max(np.abs(moe.run(base.eval(), feeds)[k] - outs["force_e1"][k]))) for k in plain)
    assert d <= CHECK_TOL, f"forced expert 1 differs from expert 1's plain LoRA by {d}"
    manifest["checks"] = {"force_e1 vs expert1_lora (plain s*B A x)": d}
    manifest["expert1_lora"] = "moe_control/expert1_lora"
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(json.dumps({k: v["max_abs_delta_vs_uncontrolled"] for k, v in manifest["cases"].items()}), manifest["checks"])


class _PlainLoRA(torch.nn.Module):
    def __init__(self, base, expert, scaling):
        super().__init__()
        self.base, self.expert, self.scaling = base, expert, scaling

    def forward(self, x):
        return self.base(x) + self.scaling * self.expert.lora_B(self.expert.lora_A(x))


if __name__ == "__main__":
    sys.exit(main())
