#!/usr/bin/env python3
"""MoE-LoRA overhead over the base model (issue 7), Graft next to a plain-PyTorch reference.

One process run, same machine, same inputs: the MiniLM-class encoder of bench.py (BERT, 6
layers, hidden 384) with a GRAFT_MOE_LORA adapter of 8 rank-8 experts, top-2 renormalised, on
query and value of every layer (12 routed sites), at batch 1 x 128:

  * Graft: base session, MoE-LoRA session, a plain rank-8 LoRA on the same sites (context:
    one expert's cost), the MoE-LoRA session recording its routing (routing_dump=True), and the
    same experts under a softmax gate (every expert on every token: what top-2 would cost if
    every expert were evaluated densely);
  * PyTorch: the base BertModel and the same model with a plain-PyTorch MoE-LoRA module around
    each target nn.Linear (the formula of docs/ADAPTERS.md), for context and as the reference
    the Graft output is checked against before timing.

Overheads are medians of per-round paired ratios (bench.paired: every round runs each session
once, order rotating), with a second base session against the first as the noise floor.

    swift build -c release --scratch-path .build-bench
    /work/venv/bin/python benchmarks/bench_moe.py [--threads 1,2] [--rounds 100]

Exports go to --cache (default /tmp/graft-bench-moe), never into the repository.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (model, export, timing helpers)

EXPERTS, RANK, ALPHA, TOP_K = 8, 8, 16, 2
TARGETS = ["query", "value"]
ROUTER_STD, LORA_STD = 0.05, 0.05
SEQ = 128


def moe_modules(base):
    import torch
    return [n for n, m in base.named_modules()
            if isinstance(m, torch.nn.Linear) and any(n.endswith("." + t) for t in TARGETS)]


class MoELoRALinear:
    """y = W x + b + sum_e g_e(x) (alpha/r) B_e A_e x, g = top-2 of softmax(W_r x), renormalised."""

    @staticmethod
    def wrap(linear, weights):
        import torch

        class M(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.base = linear
                self.wr = weights["router"]
                self.a = weights["a"]      # [E, r, in]
                self.b = weights["b"]      # [E, out, r]

            def forward(self, x):
                p = torch.softmax(x @ self.wr.T, dim=-1)
                vals, idx = torch.topk(p, TOP_K, dim=-1)
                g = torch.zeros_like(p).scatter(-1, idx, vals / vals.sum(-1, keepdim=True))
                u = torch.einsum("...i,eri->...er", x, self.a)
                d = torch.einsum("...er,eor->...eo", u, self.b)
                return self.base(x) + (ALPHA / RANK) * (g.unsqueeze(-1) * d).sum(-2)
        return M()


def prepare(cache):
    import torch
    from safetensors.torch import save_file
    key = bench.config_key(dict(encoder=bench.ENCODER, moe=[EXPERTS, RANK, ALPHA, TOP_K, TARGETS, ROUTER_STD, LORA_STD], v=2))
    folder = os.path.join(cache, key)
    paths = dict(encoder=os.path.join(folder, "encoder.onnx"), moe=os.path.join(folder, "moe_e8_r8_top2"),
                 lora=os.path.join(folder, "lora_r8_expert0"), soft=os.path.join(folder, "moe_e8_r8_softmax"),
                 weights=os.path.join(folder, "moe_weights.pt"))
    if os.path.exists(os.path.join(folder, "DONE")):
        bench.log(f"using cached exports in {folder}")
        return paths
    os.makedirs(folder, exist_ok=True)
    import warnings
    warnings.filterwarnings("ignore")
    bench.log(f"exporting the encoder to {paths['encoder']} ...")
    bench.export_encoder(bench.make_encoder("eager"), paths["encoder"])
    base = bench.make_encoder("eager").model
    g = torch.Generator().manual_seed(77)
    moe, lora, weights = {}, {}, {}
    for n in moe_modules(base):
        lin = base.get_submodule(n)
        w = dict(router=torch.randn(EXPERTS, lin.in_features, generator=g) * ROUTER_STD,
                 a=torch.randn(EXPERTS, RANK, lin.in_features, generator=g) * LORA_STD,
                 b=torch.randn(EXPERTS, lin.out_features, RANK, generator=g) * LORA_STD)
        weights[n] = w
        p = f"base_model.model.{n}."
        moe[p + "router.weight"] = w["router"].contiguous()
        for e in range(EXPERTS):
            moe[p + f"experts.{e}.lora_A.weight"] = w["a"][e].contiguous()
            moe[p + f"experts.{e}.lora_B.weight"] = w["b"][e].contiguous()
        lora[p + "lora_A.weight"] = w["a"][0].contiguous()
        lora[p + "lora_B.weight"] = w["b"][0].contiguous()
    for d, tensors, cfg in ((paths["moe"], moe, dict(peft_type="GRAFT_MOE_LORA", r=RANK, lora_alpha=ALPHA, num_experts=EXPERTS,
                                                         router=dict(gate="topk", top_k=TOP_K, renormalize=True, bias=False),
                                                         target_modules=TARGETS)),
                            (paths["soft"], moe, dict(peft_type="GRAFT_MOE_LORA", r=RANK, lora_alpha=ALPHA, num_experts=EXPERTS,
                                                      router=dict(gate="softmax", bias=False), target_modules=TARGETS)),
                            (paths["lora"], lora, dict(peft_type="LORA", r=RANK, lora_alpha=ALPHA, target_modules=TARGETS))):
        os.makedirs(d, exist_ok=True)
        save_file(tensors, os.path.join(d, "adapter_model.safetensors"))
        with open(os.path.join(d, "adapter_config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
    torch.save(weights, paths["weights"])
    with open(os.path.join(folder, "DONE"), "w") as f:
        f.write("ok\n")
    return paths


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir")
    ap.add_argument("--cache", default="/tmp/graft-bench-moe")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.path.abspath(args.cache).startswith(bench.REPO):
        sys.exit("error: --cache must be outside the repository")
    build = bench.find_build_dir(args.build_dir)
    bench.setup_graft_env(build)
    paths = prepare(args.cache)

    import numpy as np
    import torch
    import graft
    torch.set_num_threads(1)
    weights = torch.load(paths["weights"])
    base_t = bench.make_encoder("sdpa").model.eval()
    moe_t = bench.make_encoder("sdpa").model.eval()
    for n in moe_modules(moe_t):
        parent, _, child = n.rpartition(".")
        setattr(moe_t.get_submodule(parent), child, MoELoRALinear.wrap(moe_t.get_submodule(n), weights[n]))
    feeds = bench.encoder_inputs(1, SEQ, 1)
    kw = {k: torch.from_numpy(v) for k, v in feeds.items()}

    def torch_fn(m):
        def f():
            with torch.inference_mode():
                return m(**kw).last_hidden_state
        return f

    model = graft.Model(paths["encoder"])
    moe = model.load_adapter(paths["moe"])
    lora = model.load_adapter(paths["lora"])
    soft = model.load_adapter(paths["soft"])
    results = dict(build=build, seq=SEQ, experts=EXPERTS, rank=RANK, top_k=TOP_K, sites=len(moe.routers()), runs={})
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        s_base, s_base2, s_moe, s_lora, s_soft = (model.session(threads=threads) for _ in range(5))
        s_moe.set_adapters([moe])
        s_lora.set_adapters([lora])
        s_soft.set_adapters([soft])
        ref = torch_fn(moe_t)().numpy()
        got = s_moe.run(feeds)["last_hidden_state"]
        base_out = s_base.run(feeds)["last_hidden_state"]
        r = dict(diff_vs_torch=float(np.max(np.abs(got - ref))), moe_effect=float(np.max(np.abs(got - base_out))))
        _, dump = s_moe.run(feeds, routing_dump=True)
        r["experts_per_token"] = float(np.mean([(d.weights != 0).sum(1).mean() for d in dump]))
        bench.log(f"[threads {threads}] Graft vs PyTorch MoE-LoRA max|Δ| {r['diff_vs_torch']:.2e}; timing ...")
        res = bench.paired({"base": lambda: s_base.run(feeds), "moe": lambda: s_moe.run(feeds),
                            "lora": lambda: s_lora.run(feeds),
                            "moe_dump": lambda: s_moe.run(feeds, routing_dump=True),
                            "soft": lambda: s_soft.run(feeds),
                            "base2": lambda: s_base2.run(feeds)}, args.rounds, args.warmup, "base")
        for k, v in res.items():
            r[f"{k}_ms"] = v["median"] * 1e3
            r[f"{k}_overhead"] = v["paired_ratio"] - 1
        pt = bench.paired({"torch_base": torch_fn(base_t), "torch_moe": torch_fn(moe_t)},
                          max(30, args.rounds // 2), args.warmup, "torch_base")
        for k, v in pt.items():
            r[f"{k}_ms"] = v["median"] * 1e3
        r["torch_moe_overhead"] = pt["torch_moe"]["paired_ratio"] - 1
        results["runs"][threads] = r
        for s in (s_base, s_base2, s_moe, s_lora, s_soft):
            s.close()

    print(f"\nMoE-LoRA, {EXPERTS} experts x rank {RANK}, top-{TOP_K} renormalised, on {', '.join(TARGETS)} "
          f"({results['sites']} sites); encoder 1x{SEQ}; medians of {args.rounds} paired rounds\n")
    cols = sorted(results["runs"])
    print("| measure | " + " | ".join(f"threads = {t}" for t in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    rows = [("base 1x128 (ms)", lambda r: f"{r['base_ms']:.2f}"),
            ("MoE-LoRA 1x128 (ms)", lambda r: f"{r['moe_ms']:.2f}"),
            ("**MoE-LoRA overhead** over base (target ≤ 15%)", lambda r: f"**{100 * r['moe_overhead']:+.1f}%**"),
            ("plain LoRA r8 (one expert's cost) overhead", lambda r: f"{100 * r['lora_overhead']:+.1f}%"),
            ("MoE-LoRA with routing_dump=True overhead", lambda r: f"{100 * r['moe_dump_overhead']:+.1f}%"),
            ("same 8 experts, softmax gate (all experts dense) overhead", lambda r: f"{100 * r['soft_overhead']:+.1f}%"),
            ("noise floor: second base session over base", lambda r: f"{100 * r['base2_overhead']:+.1f}%"),
            ("PyTorch base / + MoE-LoRA module (ms)", lambda r: f"{r['torch_base_ms']:.2f} / {r['torch_moe_ms']:.2f} ({100 * r['torch_moe_overhead']:+.1f}%)"),
            ("experts with non-zero weight per token (routing dump)", lambda r: f"{r['experts_per_token']:.2f}"),
            ("max abs diff Graft vs PyTorch MoE-LoRA", lambda r: f"{r['diff_vs_torch']:.1e} (MoE moves outputs by {r['moe_effect']:.2f})")]
    for name, f in rows:
        print(f"| {name} | " + " | ".join(f(results["runs"][t]) for t in cols) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
