#!/usr/bin/env python3
"""VLoRA benchmark: per-image generated low-rank weights in Graft, next to PyTorch.

    swift build -c release && /work/venv/bin/python benchmarks/vlora_bench.py --threads 1

Per request: a 576×1024 visual feature map (LLaVA-1.5's CLIP ViT-L/336 grid: 576 patches of
width 1024) goes through a generator (learned queries attend to the features; one linear head
per factor) that outputs rank-8 A and B for q_proj and v_proj of every layer of a Llama
decoder (bench.py's: 6 layers, hidden 768, 12 heads / 4 KV heads, intermediate 2048, vocab
32000; exported without a KV cache, so a run is a prefill of T tokens). Measured, each a median
of --iterations calls (paired rounds, order rotating; machine load hits all variants alike):

- generation: Graft `adapter.generate({"image_features": F})` (the ONNX generator run by Graft,
  plus building the request adapter) vs the PyTorch generator module on the same features;
- merge: binding the request adapter merged (W' = W + s·B·A copies for 12 layers);
- runs at T = 16 and 512 tokens (batch 1): base model; the image's weights unmerged (request
  adapter bound unmerged: r·(in+out) per token); merged (bound merged: no per-token cost);
  one-shot requests `run(aux=..., merge=auto|unmerged|merged)` that generate, merge if chosen,
  and run; and PyTorch base / with the image's weights merged, for context.

Outputs are checked first: Graft's logits with the generated weights vs PyTorch's with the
same weights merged (max |Δ|), and the generated factors vs PyTorch's. The models and the
generator are written to --cache (default /tmp/graft-vlora-bench, never the repository).
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (find_build_dir, setup_graft_env, paired, seed_all, machine_facts)

N_V, D_V = 576, 1024
RANK = 8
D_H = 256            # generator attention width
TARGETS = ("q_proj", "v_proj")
TOKENS = (16, 512)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def make_generator(layers, dims):
    """Learned queries (one per factor row) attend to the features; per-factor linear heads."""
    import torch

    class Generator(torch.nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(77)
            self.factors = []   # (output name, rows, width, transpose)
            for layer in range(layers):
                for proj in TARGETS:
                    inF, outF = dims[proj]
                    m = f"model.layers.{layer}.self_attn.{proj}"
                    self.factors += [(f"{m}.lora_A", RANK, inF, False), (f"{m}.lora_B", RANK, outF, True)]
            self.queries = torch.nn.Parameter(torch.randn(len(self.factors) * RANK, D_H, generator=g))
            self.k = torch.nn.Linear(D_V, D_H)
            self.v = torch.nn.Linear(D_V, D_H)
            self.heads = torch.nn.ModuleList(torch.nn.Linear(D_H, w) for _, _, w, _ in self.factors)
            with torch.no_grad():
                for p in [self.k.weight, self.v.weight]:
                    p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(D_V))
                for h in self.heads:
                    h.weight.copy_(torch.randn(h.weight.shape, generator=g) * (0.05 / math.sqrt(D_H)))
                    h.bias.zero_()

        def forward(self, image_features):                                    # [576, 1024]
            k, v = self.k(image_features), self.v(image_features)             # [576, 256]
            p = torch.softmax(self.queries @ k.t() / math.sqrt(D_H), -1)      # [Q, 576]
            h = p @ v                                                         # [Q, 256]
            outs = []
            for i, ((_, rows, _, transpose), head) in enumerate(zip(self.factors, self.heads)):
                f = head(h[i * rows:(i + 1) * rows])                          # [r, width]
                outs.append(f.t().contiguous() if transpose else f)           # A [r, in], B [out, r]
            return tuple(outs)

    return Generator().eval()


def prepare(cache):
    """Exports the decoder (no KV cache) and the generator, writes the VLoRA directory."""
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    os.makedirs(cache, exist_ok=True)
    bench.seed_all()
    cfg = LlamaConfig(**bench.LLAMA, rms_norm_eps=1e-5, tie_word_embeddings=False, use_cache=False,
                      attn_implementation="eager")
    llama = LlamaForCausalLM(cfg).eval()
    heads, kv = cfg.num_attention_heads, cfg.num_key_value_heads
    hd = cfg.hidden_size // heads
    dims = {"q_proj": (cfg.hidden_size, heads * hd), "v_proj": (cfg.hidden_size, kv * hd)}
    gen = make_generator(cfg.num_hidden_layers, dims)
    paths = dict(model=os.path.join(cache, "llama.onnx"), adapter=os.path.join(cache, "vlora"))
    if not os.path.exists(os.path.join(cache, "done")):
        class Wrapper(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = llama

            def forward(self, input_ids, attention_mask, position_ids):
                return self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                  use_cache=False).logits

        ids = torch.ones(1, 16, dtype=torch.int64)
        log("exporting the decoder ...")
        torch.onnx.export(Wrapper().eval(), (ids, torch.ones_like(ids), torch.arange(16)[None]), paths["model"],
                          dynamo=False, opset_version=17, input_names=["input_ids", "attention_mask", "position_ids"],
                          output_names=["logits"], do_constant_folding=True,
                          dynamic_axes={n: {0: "batch", 1: "sequence"} for n in ["input_ids", "attention_mask", "position_ids", "logits"]})
        os.makedirs(paths["adapter"], exist_ok=True)
        log("exporting the generator ...")
        names = [n for n, *_ in gen.factors]
        torch.onnx.export(gen, (torch.zeros(N_V, D_V),), os.path.join(paths["adapter"], "generator.onnx"), dynamo=False,
                          opset_version=17, input_names=["image_features"], output_names=names, do_constant_folding=True)
        targets = [dict(module=f"model.layers.{l}.self_attn.{p}", r=RANK, scale=1.0)
                   for l in range(cfg.num_hidden_layers) for p in TARGETS]
        with open(os.path.join(paths["adapter"], "adapter_config.json"), "w") as f:
            json.dump(dict(peft_type="GRAFT_VLORA", generator="generator.onnx", aux_input="image_features",
                           targets=targets), f, indent=1)
        with open(os.path.join(cache, "done"), "w") as f:
            f.write("ok\n")
    return llama, gen, paths, np


def llama_feeds(tokens, np):
    rng = np.random.default_rng(tokens)
    ids = rng.integers(1, bench.LLAMA["vocab_size"], size=(1, tokens), dtype=np.int64)
    return dict(input_ids=ids, attention_mask=np.ones_like(ids), position_ids=np.arange(tokens, dtype=np.int64)[None])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=10, help="paired rounds per measurement (default 10)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--build-dir", default=None, help="folder holding libGraftC.so (default: .build/release)")
    ap.add_argument("--cache", default="/tmp/graft-vlora-bench")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if os.path.abspath(args.cache).startswith(bench.REPO + os.sep):
        sys.exit("error: --cache must be outside the repository")
    build = bench.find_build_dir(args.build_dir)
    bench.setup_graft_env(build)
    import torch
    import graft

    torch.set_num_threads(args.threads)
    llama, gen, paths, np = prepare(args.cache)
    rng = np.random.default_rng(5)
    feats = rng.standard_normal((N_V, D_V)).astype(np.float32)

    model = graft.Model(paths["model"])
    vlora = model.load_adapter(paths["adapter"])
    aux = {"image_features": feats}
    request = vlora.generate(aux, threads=args.threads)

    # PyTorch: the generator's factors and the decoder with the image's weights merged.
    with torch.inference_mode():
        factors = dict(zip([n for n, *_ in gen.factors], gen(torch.from_numpy(feats))))
    import copy
    merged_torch = copy.deepcopy(llama)
    with torch.inference_mode():
        for layer in range(bench.LLAMA["num_hidden_layers"]):
            for p in TARGETS:
                m = f"model.layers.{layer}.self_attn.{p}"
                getattr(merged_torch.model.layers[layer].self_attn, p).weight += factors[f"{m}.lora_B"] @ factors[f"{m}.lora_A"]

    def torch_run(m, feeds):
        with torch.inference_mode():
            return m(**{k: torch.from_numpy(v) for k, v in feeds.items()}, use_cache=False).logits

    results = dict(threads=args.threads, iterations=args.iterations, feature_shape=[N_V, D_V], rank=RANK,
                   decoder=bench.LLAMA, targets=list(TARGETS), checks={}, cases={})

    # Checks before timing.
    base_s = model.session(threads=args.threads)
    un_s = model.session(threads=args.threads)
    un_s.set_adapters([request])
    me_s = model.session(threads=args.threads)
    me_s.set_adapters([request], merged=True)
    one_s = model.session(threads=args.threads)
    one_s.set_adapters([vlora])
    f16 = llama_feeds(16, np)
    want = torch_run(merged_torch, f16).numpy()
    base_out = torch_run(llama, f16).numpy()
    for label, out in [("unmerged", un_s.run(f16)["logits"]), ("merged", me_s.run(f16)["logits"]),
                       ("one-shot auto", one_s.run(f16, aux=aux)["logits"])]:
        results["checks"][f"graft {label} vs torch merged (16 tokens)"] = float(np.max(np.abs(out - want)))
    results["checks"]["image delta: torch merged vs base (16 tokens)"] = float(np.max(np.abs(want - base_out)))
    log("checks:", json.dumps(results["checks"], indent=1))

    # Generation and merge cost.
    def gen_torch():
        with torch.inference_mode():
            gen(torch.from_numpy(feats))

    def merge_bind():
        me_s.set_adapters([request], merged=True)

    t = bench.paired({"graft generate": lambda: vlora.generate(aux, threads=args.threads), "torch generator": gen_torch,
                      "graft merge (bind merged)": merge_bind}, args.iterations, args.warmup, "torch generator")
    results["generation"] = {k: v["median"] for k, v in t.items()}
    log("generation:", json.dumps(results["generation"], indent=1))

    for tokens in TOKENS:
        feeds = llama_feeds(tokens, np)
        fns = {
            "graft base": lambda: base_s.run(feeds),
            "graft unmerged": lambda: un_s.run(feeds),
            "graft merged": lambda: me_s.run(feeds),
            "graft one-shot auto": lambda: one_s.run(feeds, aux=aux),
            "graft one-shot unmerged": lambda: one_s.run(feeds, aux=aux, merge="unmerged"),
            "graft one-shot merged": lambda: one_s.run(feeds, aux=aux, merge="merged"),
            "torch base": lambda: torch_run(llama, feeds),
            "torch merged": lambda: torch_run(merged_torch, feeds),
        }
        r = bench.paired(fns, args.iterations, args.warmup, "graft base")
        results["cases"][tokens] = {k: dict(median=v["median"], vs_graft_base=v["paired_ratio"]) for k, v in r.items()}
        log(f"{tokens} tokens:", json.dumps(results["cases"][tokens], indent=1))

    # Which mode auto picks (the cost rule): q 768→768, v 768→256, r 8, 6 layers.
    per_token = sum(RANK * (i + o) for i, o in [(768, 768), (768, 256)]) * 6
    merging = sum(RANK * i * o for i, o in [(768, 768), (768, 256)]) * 6
    results["auto_threshold_tokens"] = merging / per_token

    print(f"\n## VLoRA (threads={args.threads}, median of {args.iterations} paired rounds)\n")
    g = results["generation"]
    print(f"Features {N_V}×{D_V}, rank {RANK} on {', '.join(TARGETS)} of {bench.LLAMA['num_hidden_layers']} layers "
          f"(hidden {bench.LLAMA['hidden_size']}); auto merges above {results['auto_threshold_tokens']:.0f} tokens.\n")
    print("| per image | ms |\n|---|---|")
    for k in ("graft generate", "torch generator", "graft merge (bind merged)"):
        print(f"| {k} | {g[k] * 1e3:.1f} |")
    print("\n| run | " + " | ".join(f"{t} tokens: ms (× Graft base)" for t in TOKENS) + " |")
    print("|---|" + "---|" * len(TOKENS))
    for k in results["cases"][TOKENS[0]]:
        cells = [f"{results['cases'][t][k]['median'] * 1e3:.1f} (×{results['cases'][t][k]['vs_graft_base']:.2f})" for t in TOKENS]
        print(f"| {k} | " + " | ".join(cells) + " |")
    print("\nchecks (max |Δ|): " + "; ".join(f"{k}: {v:.2e}" for k, v in results["checks"].items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
