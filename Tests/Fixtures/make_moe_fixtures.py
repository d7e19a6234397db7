#!/usr/bin/env python3
"""Per-linear MoE-LoRA fixtures (Graft's native format, peft_type GRAFT_MOE_LORA) on the bert fixture.

No library implements this format, so the reference is plain PyTorch written from the formula
(docs/ADAPTERS.md, "MoE-LoRA"):

    z_t = W_r x_t (+ b_r)                                   router logits, one per expert
    g_t = gate(z_t)                                          expert weights per token
    y_t = W x_t + b + sum_e g_t[e] * (lora_alpha / r) * B_e A_e x_t

gate:  softmax   p = softmax(z)
       topk      p = softmax(z), keep the top_k largest, zero the rest; renormalize -> divide by their sum
       threshold p = softmax(z), keep p >= threshold, zero the rest; renormalize -> divide by their sum
       sigmoid   p = sigmoid(z), each expert independently

The base model is make_fixtures.py's bert (same class, same seed, so the same weights as
bert_torchscript / bert_dynamo). Each target nn.Linear is wrapped by MoELoRALinear; all adapter
weights are fixed-seed random. The script writes the adapter directories, the references on the
`basic` inputs, and adds its adapters / cases to adapters/manifest.json (replacing any earlier
moe_* entries), so that AdapterFixtureTests picks them up.

Independent checks (asserted here, recorded in the manifest):
  * E = 1 with a softmax gate (g = 1 for every token) and lora_qv_r8's A/B equals PEFT's output for
    lora_qv_r8 (refs/lora_qv_r8, made by make_adapter_fixtures.py with PEFT);
  * top-k with k = E and no renormalisation equals the softmax gate;
  * the routing decisions are not near a tie (top-k: gap between the k-th and (k+1)-th logit;
    threshold: distance of every probability from the threshold), so float32 rounding elsewhere
    cannot flip an expert choice.

Run after make_adapter_fixtures.py (which deletes adapters/ and rewrites its manifest):
    /work/venv/bin/python Tests/Fixtures/make_moe_fixtures.py
"""

import collections
import json
import os
import shutil
import sys
import warnings

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402

warnings.filterwarnings("ignore")

HERE = mf.HERE
OUT = os.path.join(HERE, "adapters")
MANIFEST = os.path.join(OUT, "manifest.json")
MIN_DELTA = 1e-2     # every case must move every output at least this much
CHECK_TOL = 1e-5     # equivalence checks
MIN_MARGIN = 1e-3    # routing decisions at least this far from a tie / the threshold
PEFT_TYPE = "GRAFT_MOE_LORA"

# name -> spec. Weights: router ~ N(0, router_std^2), A, B ~ N(0, lora_std^2), bias ~ N(0, 0.5^2).
SPECS = collections.OrderedDict(
    moe_topk2=dict(seed=31, targets=["query", "value"], r=4, lora_alpha=8, num_experts=4,
                   router=collections.OrderedDict(gate="topk", top_k=2, renormalize=True, bias=True),
                   router_std=0.5, lora_std=0.15),
    moe_softmax_r1=dict(seed=32, targets=["intermediate.dense"], r=1, lora_alpha=2, num_experts=8,
                        router=collections.OrderedDict(gate="softmax", bias=False),
                        router_std=0.5, lora_std=0.3),
    moe_threshold=dict(seed=35, targets=["key", "attention.output.dense"], r=2, lora_alpha=4, num_experts=4,
                       router=collections.OrderedDict(gate="threshold", threshold=0.3, renormalize=False, bias=True),
                       router_std=0.5, lora_std=0.2),
    moe_sigmoid=dict(seed=34, targets=["output.dense"], r=4, lora_alpha=4, num_experts=3,
                     router=collections.OrderedDict(gate="sigmoid", bias=True),
                     router_std=0.3, lora_std=0.15),
)
# E = 1 over lora_qv_r8's own A/B (r 8, alpha 16): must equal PEFT's lora_qv_r8 output.
E1_NAME = "moe_e1_lora_qv_r8"
E1_SEED = 36


class MoELoRALinear(torch.nn.Module):
    """y = base(x) + sum_e g_e(x) * (alpha / r) * B_e A_e x, the router as the module docstring says."""

    def __init__(self, base, num_experts, r, lora_alpha, router):
        super().__init__()
        self.base = base
        self.num_experts = num_experts
        self.scaling = lora_alpha / r
        self.gate = router["gate"]
        self.top_k = router.get("top_k")
        self.renormalize = bool(router.get("renormalize", False))
        self.threshold = router.get("threshold")
        self.router = torch.nn.Linear(base.in_features, num_experts, bias=bool(router.get("bias", False)))
        self.experts = torch.nn.ModuleList()
        for _ in range(num_experts):
            e = torch.nn.Module()
            e.lora_A = torch.nn.Linear(base.in_features, r, bias=False)
            e.lora_B = torch.nn.Linear(r, base.out_features, bias=False)
            self.experts.append(e)
        self.margins = []   # smallest distance of a routing decision from a tie / the threshold, per call
        self.kept = []      # experts with a non-zero weight, per token

    def gates(self, x):
        z = self.router(x)
        if self.gate == "sigmoid":
            return torch.sigmoid(z)
        p = torch.softmax(z, dim=-1)
        if self.gate == "softmax":
            return p
        if self.gate == "topk":
            k = self.top_k
            # The choice flips only if the k-th and (k+1)-th logits swap: record their smallest gap.
            sorted_z = torch.sort(z, dim=-1, descending=True).values
            if k < self.num_experts:
                self.margins.append(float((sorted_z[..., k - 1] - sorted_z[..., k]).min()))
            vals, idx = torch.topk(p, k, dim=-1)
            g = torch.zeros_like(p).scatter(-1, idx, vals)
        elif self.gate == "threshold":
            self.margins.append(float((p - self.threshold).abs().min()))
            g = torch.where(p >= self.threshold, p, torch.zeros_like(p))
        else:
            raise ValueError(self.gate)
        if self.renormalize:
            s = g.sum(dim=-1, keepdim=True)
            g = torch.where(s > 0, g / torch.where(s > 0, s, torch.ones_like(s)), g)
        return g

    def forward(self, x):
        y = self.base(x)
        g = self.gates(x)
        self.kept.append((g != 0).sum(dim=-1).flatten())
        for e, expert in enumerate(self.experts):
            y = y + g[..., e:e + 1] * self.scaling * expert.lora_B(expert.lora_A(x))
        return y


def base_model():
    """The inner BertModel with exactly the weights make_fixtures.py exported."""
    mf.seed_all()
    return mf.MODELS["bert"]["cls"]().eval().model.eval()


def load_inputs(folder):
    return collections.OrderedDict(
        (f[:-4], np.load(os.path.join(folder, f))) for f in sorted(os.listdir(folder)) if f.endswith(".npy"))


def run(model, feeds):
    kw = {n: torch.from_numpy(feeds[n]) for n in mf.MODELS["bert"]["inputs"]}
    with torch.no_grad():
        out = model(**kw, return_dict=True)
    return collections.OrderedDict(
        (name, getattr(out, name).detach().numpy().astype(np.float32)) for name in mf.MODELS["bert"]["outputs"])


def max_diff(a, b):
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def targeted(model, targets):
    """Module names of the nn.Linear layers PEFT's list matching would pick (name or '.'-suffix)."""
    return [n for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and any(n == t or n.endswith("." + t) for t in targets)]


def attach(model, modules, make):
    for name in modules:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, make(name, getattr(parent, child)))


def randomize(model, modules, spec, gen):
    for name in modules:
        m = model.get_submodule(name)
        with torch.no_grad():
            m.router.weight.normal_(0, spec["router_std"], generator=gen)
            if m.router.bias is not None:
                m.router.bias.normal_(0, 0.5, generator=gen)
            for e in m.experts:
                e.lora_A.weight.normal_(0, spec["lora_std"], generator=gen)
                e.lora_B.weight.normal_(0, spec["lora_std"], generator=gen)


def state(model, modules):
    """The native format's tensors: base_model.model.<module>.router.* / .experts.<e>.lora_A|B.weight."""
    out = collections.OrderedDict()
    for name in modules:
        m = model.get_submodule(name)
        p = f"base_model.model.{name}."
        out[p + "router.weight"] = m.router.weight.detach().clone().contiguous()
        if m.router.bias is not None:
            out[p + "router.bias"] = m.router.bias.detach().clone().contiguous()
        for i, e in enumerate(m.experts):
            out[p + f"experts.{i}.lora_A.weight"] = e.lora_A.weight.detach().clone().contiguous()
            out[p + f"experts.{i}.lora_B.weight"] = e.lora_B.weight.detach().clone().contiguous()
    return out


def config(spec):
    return collections.OrderedDict(
        peft_type=PEFT_TYPE, r=spec["r"], lora_alpha=spec["lora_alpha"], num_experts=spec["num_experts"],
        router=spec["router"], target_modules=spec["targets"])


def save(name, spec, model, modules):
    target = os.path.join(OUT, "bert", name)
    if os.path.isdir(target):
        shutil.rmtree(target)
    os.makedirs(target)
    with open(os.path.join(target, "adapter_config.json"), "w") as f:
        json.dump(config(spec), f, indent=2)
        f.write("\n")
    tensors = state(model, modules)
    save_file(tensors, os.path.join(target, "adapter_model.safetensors"), metadata={"format": "pt"})
    back = load_file(os.path.join(target, "adapter_model.safetensors"))
    assert sorted(back) == sorted(tensors) and all(torch.equal(back[k], tensors[k]) for k in tensors)
    return os.path.relpath(target, HERE), collections.OrderedDict((k, list(v.shape)) for k, v in tensors.items())


def build(spec, modules_from=None):
    """A BertModel with MoE-LoRA wrappers at spec's targets and fixed-seed random weights."""
    model = base_model()
    modules = targeted(model, spec["targets"])
    assert modules, spec["targets"]
    attach(model, modules, lambda _n, lin: MoELoRALinear(lin, spec["num_experts"], spec["r"], spec["lora_alpha"],
                                                         spec["router"]))
    randomize(model, modules, spec, torch.Generator().manual_seed(spec["seed"]))
    return model.eval(), modules


def routing_stats(model, modules):
    margins, kept = [], []
    for name in modules:
        m = model.get_submodule(name)
        margins += m.margins
        kept += m.kept
    k = torch.cat(kept).double()
    return (min(margins) if margins else None), float(k.mean()), int(k.min()), int(k.max())


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    with open(MANIFEST) as f:
        manifest = json.load(f, object_pairs_hook=collections.OrderedDict)
    inputs_rel = "bert_torchscript/basic/inputs"
    feeds = load_inputs(os.path.join(HERE, inputs_rel))
    base = run(base_model(), feeds)
    ref_base = {k: np.load(os.path.join(OUT, "bert", "refs", "base", f"{k}.npy")) for k in base}
    assert max_diff(base, ref_base) <= 1e-6, "bert base differs from refs/base: rebuild make_adapter_fixtures first"

    adapters, cases, checks = [], [], collections.OrderedDict()

    def add(name, spec, model, modules, out, extra=None):
        path, tensors = save(name, spec, model, modules)
        refdir = os.path.join(OUT, "bert", "refs", name)
        if os.path.isdir(refdir):
            shutil.rmtree(refdir)
        for k, v in out.items():
            mf.save_npy(os.path.join(refdir, f"{k}.npy"), v)
        margin, mean_k, min_k, max_k = routing_stats(model, modules)
        if margin is not None:
            assert margin >= MIN_MARGIN, f"{name}: a routing decision is {margin} from a tie; change the seed"
        delta = collections.OrderedDict((k, float(np.max(np.abs(out[k] - base[k])))) for k in out)
        assert min(delta.values()) >= MIN_DELTA, f"{name} moves the outputs too little: {delta}"
        entry = collections.OrderedDict(
            model="bert", name=name, peft_type=PEFT_TYPE, path=path,
            files=["adapter_config.json", "adapter_model.safetensors"], generator="Tests/Fixtures/make_moe_fixtures.py",
            target_modules=spec["targets"], r=spec["r"], lora_alpha=spec["lora_alpha"],
            num_experts=spec["num_experts"], router=spec["router"], mergeable=False,
            weight_init=spec.get("weight_init", f"router.weight N(0, {spec['router_std']}^2), router.bias N(0, 0.5^2), "
                                               f"lora_A/lora_B N(0, {spec['lora_std']}^2), torch.Generator seed "
                                               f"{spec['seed']}"),
            num_tensors=len(tensors),
            resolved_modules=[collections.OrderedDict(
                module=n, in_features=model.get_submodule(n).base.in_features,
                out_features=model.get_submodule(n).base.out_features, r=spec["r"], lora_alpha=spec["lora_alpha"],
                scaling=spec["lora_alpha"] / spec["r"], num_experts=spec["num_experts"]) for n in modules],
            safetensors_metadata={"format": "pt"}, tensors=tensors)
        adapters.append(entry)
        case = collections.OrderedDict(
            model="bert", case=name, folder=os.path.relpath(refdir, HERE),
            adapters=[collections.OrderedDict(name=name, scale=1.0)], inputs=inputs_rel,
            outputs=collections.OrderedDict((k, os.path.relpath(os.path.join(refdir, f"{k}.npy"), HERE)) for k in out),
            max_abs_delta_vs_base=delta,
            routing=collections.OrderedDict(min_margin=margin, experts_per_token_mean=mean_k,
                                            experts_per_token_min=min_k, experts_per_token_max=max_k),
            note="routed MoE-LoRA: not mergeable (the host refuses merged=true with UNSUPPORTED)",
            applies_to=["bert_torchscript", "bert_dynamo"])
        if extra:
            case.update(extra)
        cases.append(case)
        print(f"  {name:20s} max|Δ vs base| {dict(delta)}  margin {margin}  experts/token "
              f"{mean_k:.2f} [{min_k}, {max_k}]", flush=True)

    for name, spec in SPECS.items():
        model, modules = build(spec)
        out = run(model, feeds)
        extra = None
        if spec["router"]["gate"] == "topk":
            # top-k with k = E and no renormalisation equals the softmax gate.
            soft, _ = build(dict(spec, router=collections.OrderedDict(gate="softmax", bias=spec["router"]["bias"])))
            full, _ = build(dict(spec, router=collections.OrderedDict(gate="topk", top_k=spec["num_experts"],
                                                                      renormalize=False, bias=spec["router"]["bias"])))
            d = max_diff(run(soft, feeds), run(full, feeds))
            assert d <= CHECK_TOL, f"top-k with k = E differs from softmax by {d}"
            checks[f"bert/{name}: topk k=E unnormalised vs softmax"] = d
        add(name, spec, model, modules, out, extra)

    # E = 1, softmax (g = 1), lora_qv_r8's A and B: PEFT's lora_qv_r8 output.
    lora = load_file(os.path.join(OUT, "bert", "lora_qv_r8", "adapter_model.safetensors"))
    lcfg = json.load(open(os.path.join(OUT, "bert", "lora_qv_r8", "adapter_config.json")))
    spec = dict(seed=E1_SEED, targets=list(lcfg["target_modules"]), r=lcfg["r"], lora_alpha=lcfg["lora_alpha"],
                num_experts=1, router=collections.OrderedDict(gate="softmax", bias=True), router_std=0.5,
                lora_std=None,
                weight_init=f"router N(0, 0.5^2) / bias N(0, 0.5^2), torch.Generator seed {E1_SEED}; "
                            "expert 0 = lora_qv_r8's lora_A / lora_B")
    model, modules = build(dict(spec, lora_std=0.0))
    for n in modules:
        e = model.get_submodule(n).experts[0]
        with torch.no_grad():
            e.lora_A.weight.copy_(lora[f"base_model.model.{n}.lora_A.weight"])
            e.lora_B.weight.copy_(lora[f"base_model.model.{n}.lora_B.weight"])
    out = run(model, feeds)
    peft_ref = {k: np.load(os.path.join(OUT, "bert", "refs", "lora_qv_r8", f"{k}.npy")) for k in out}
    d = max_diff(out, peft_ref)
    assert d <= CHECK_TOL, f"E = 1 softmax MoE differs from PEFT's LoRA by {d}"
    checks[f"bert/{E1_NAME}: E=1 softmax vs PEFT lora_qv_r8"] = d
    add(E1_NAME, spec, model, modules, out,
        extra={"equals": "adapters/bert/refs/lora_qv_r8 (PEFT), max|Δ| " + repr(d)})

    names = {a["name"] for a in adapters}
    manifest["adapters"] = [a for a in manifest["adapters"] if a["name"] not in names] + adapters
    manifest["cases"] = [c for c in manifest["cases"] if c["case"] not in names] + cases
    manifest.setdefault("checks", collections.OrderedDict())["moe"] = checks
    note = ("MoE-LoRA (peft_type GRAFT_MOE_LORA, Graft's native format; made by make_moe_fixtures.py): references are "
            "plain PyTorch wrappers around each target nn.Linear, y = W x + b + sum_e g_e(x) * (lora_alpha/r) * "
            "B_e A_e x, g from the router z = W_r x + b_r (softmax / top-k / threshold / sigmoid, see docs/ADAPTERS.md).")
    manifest["notes"] = [n for n in manifest["notes"] if not n.startswith("MoE-LoRA")] + [note]
    with open(MANIFEST, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print("checks:", json.dumps(checks, indent=1))


if __name__ == "__main__":
    sys.exit(main())
