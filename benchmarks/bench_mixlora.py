#!/usr/bin/env python3
"""MixLoRA in Graft next to the `mixlora` package in PyTorch (issue 7, block-level mixtures).

One process run, same machine, same thread count, same inputs and weights:

  * a Llama-class decoder (random weights, fixed seed): 4 layers, hidden 768, intermediate 2048,
    12 heads / 4 KV heads, vocab 8000, eager attention; exported with torch.onnx.export
    (TorchScript exporter, opset 17, dynamic batch / sequence);
  * a MixLoRA checkpoint for it (random weights, fixed seed): 8 experts, top-2, SiLU, r 8,
    lora_alpha 16, LoRA on q/k/v/o and expert LoRAs on gate/up/down -- written as the package
    loads it (adapter_model.bin) and converted to adapter_model.safetensors for Graft;
  * four runtimes per case: PyTorch base, PyTorch + the package (mixlora.load_adapter_weights +
    inject_adapter_in_model; model and experts in eval mode), Graft base, Graft + the checkpoint
    (the MoE-LoRA plugin); outputs are checked to agree (Graft vs the package, max |diff|) before
    anything is timed; timing interleaves the runtimes (bench.py's `interleaved`).

    swift build -c release --scratch-path .build-bench
    /work/venv/bin/python benchmarks/bench_mixlora.py --build-dir .build-bench/release [--threads 1]

Needs torch, transformers, onnx, numpy, safetensors and mixlora==0.2.3. Models and the checkpoint
are cached outside the repository (default /tmp/graft-bench-mixlora). Not part of CI.
"""

import argparse
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench as B  # noqa: E402  (interleaved, setup_graft_env, log, max_abs; stdlib-only at import)

LLAMA = dict(vocab_size=8000, hidden_size=768, intermediate_size=2048, num_hidden_layers=4,
             num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=512)
MIX = dict(num_experts=8, top_k=2, act_fn="silu", r=8, lora_alpha=16,
           targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
CASES = [(1, 128), (4, 32), (1, 8)]
AGREE_TOL = 1e-3


def make_llama():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(B.SEED)
    cfg = LlamaConfig(**LLAMA, rms_norm_eps=1e-5, tie_word_embeddings=False, use_cache=False, attn_implementation="eager")
    return LlamaForCausalLM(cfg).eval()


class Wrapper:
    """Positional forward (input_ids, attention_mask, position_ids) -> logits, for export."""

    def __new__(cls, model):
        import torch

        class W(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask, position_ids):
                return self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                  use_cache=False, return_dict=True).logits
        return W().eval()


def feeds(batch, seq):
    import numpy as np
    rng = np.random.default_rng(batch * 1000 + seq)
    ids = rng.integers(1, LLAMA["vocab_size"], size=(batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    pos = np.broadcast_to(np.arange(seq, dtype=np.int64), (batch, seq)).copy()
    return dict(input_ids=ids, attention_mask=mask, position_ids=pos)


def export(model, path):
    import torch
    f = feeds(1, 8)
    args = tuple(torch.from_numpy(f[k]) for k in ("input_ids", "attention_mask", "position_ids"))
    dyn = {k: {0: "batch", 1: "sequence"} for k in ("input_ids", "attention_mask", "position_ids")}
    dyn["logits"] = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(Wrapper(model), args, path, input_names=list(f), output_names=["logits"],
                          dynamic_axes=dyn, opset_version=17, dynamo=False)


def checkpoint(model, folder):
    """adapter_config.json + adapter_model.bin (the package's) + adapter_model.safetensors (Graft's)."""
    import torch
    from safetensors.torch import save_file
    gen = torch.Generator().manual_seed(B.SEED + 7)
    cfg = model.config
    head = cfg.hidden_size // cfg.num_attention_heads
    kv = cfg.num_key_value_heads * head
    shapes = dict(q_proj=(cfg.hidden_size, cfg.hidden_size), k_proj=(cfg.hidden_size, kv), v_proj=(cfg.hidden_size, kv),
                  o_proj=(cfg.hidden_size, cfg.hidden_size), gate_proj=(cfg.hidden_size, cfg.intermediate_size),
                  up_proj=(cfg.hidden_size, cfg.intermediate_size), down_proj=(cfg.intermediate_size, cfg.hidden_size))
    r, t = MIX["r"], {}
    for i in range(cfg.num_hidden_layers):
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            n_in, n_out = shapes[proj]
            t[f"mixlora.layers.{i}.self_attn.{proj}.lora_A.weight"] = torch.randn(r, n_in, generator=gen) * 0.02
            t[f"mixlora.layers.{i}.self_attn.{proj}.lora_B.weight"] = torch.randn(n_out, r, generator=gen) * 0.02
        t[f"mixlora.layers.{i}.mlp.moe_gate.weight"] = torch.randn(MIX["num_experts"], cfg.hidden_size, generator=gen) * 0.05
        for proj in ("gate_proj", "up_proj", "down_proj"):
            n_in, n_out = shapes[proj]
            for e in range(MIX["num_experts"]):
                p = f"mixlora.layers.{i}.mlp.{proj}.experts.{e}"
                t[p + ".lora_A.weight"] = torch.randn(r, n_in, generator=gen) * 0.02
                t[p + ".lora_B.weight"] = torch.randn(n_out, r, generator=gen) * 0.02
    config = dict(bias="none", peft_type="MIXLORA", task_type="CAUSAL_LM", base_model_name_or_path="bench-llama",
                  r=r, lora_alpha=MIX["lora_alpha"], lora_dropout=0.05, target_modules=MIX["targets"],
                  routing_strategy="mixlora", num_experts=MIX["num_experts"], top_k=MIX["top_k"], act_fn=MIX["act_fn"])
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    torch.save(t, os.path.join(folder, "adapter_model.bin"))
    save_file(torch.load(os.path.join(folder, "adapter_model.bin"), weights_only=True),
              os.path.join(folder, "adapter_model.safetensors"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--build-dir", default=os.path.join(REPO, ".build", "release"))
    ap.add_argument("--cache", default="/tmp/graft-bench-mixlora")
    ap.add_argument("--json")
    args = ap.parse_args()
    build_dir = os.path.abspath(args.build_dir)
    B.setup_graft_env(build_dir)

    import torch
    import transformers
    import graft
    import mixlora
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    key = hashlib.sha256(json.dumps([LLAMA, MIX, B.SEED]).encode()).hexdigest()[:12]
    cache = os.path.join(os.path.abspath(args.cache), key)
    onnx_path, adapter = os.path.join(cache, "llama.onnx"), os.path.join(cache, "mixlora")
    base = make_llama()
    if not os.path.exists(onnx_path):
        B.log(f"exporting the model and writing the checkpoint into {cache}")
        os.makedirs(cache, exist_ok=True)
        export(base, onnx_path)
        checkpoint(base, adapter)

    # PyTorch + the package: its own loader on its own file; model and every expert in eval mode.
    cfg, weights = mixlora.load_adapter_weights(adapter, adapter_name="default", device="cpu", dtype=torch.float32)
    mixed = make_llama()
    mixlora.inject_adapter_in_model(mixed, cfg, weights)
    mixed.eval()
    for layer in mixed.model.layers:
        for moe in layer.mlp.mixlora_moes.values():
            for expert in moe.experts_.values():
                expert.eval()

    model = graft.Model(onnx_path)
    g_base, g_mix = model.session(threads=args.threads), model.session(threads=args.threads)
    g_mix.set_adapters([model.load_adapter(adapter)])

    def torch_fn(m, f):
        kw = {k: torch.from_numpy(v) for k, v in f.items()}

        def run():
            with torch.no_grad():
                return m(**kw, use_cache=False, return_dict=True).logits
        return run

    rows, failures = [], []
    for batch, seq in CASES:
        f = feeds(batch, seq)
        tb, tm = torch_fn(base, f), torch_fn(mixed, f)
        d_mix = B.max_abs(g_mix.run(f)["logits"], tm().numpy())
        d_base = B.max_abs(g_base.run(f)["logits"], tb().numpy())
        moved = B.max_abs(tm().numpy(), tb().numpy())
        B.log(f"{batch}x{seq}: graft vs package {d_mix:.2e}, base {d_base:.2e}; the checkpoint moves the logits by {moved:.2e}")
        if d_mix > AGREE_TOL or d_base > AGREE_TOL:
            failures.append(f"{batch}x{seq}: outputs disagree (mixlora {d_mix:.2e}, base {d_base:.2e})")
        res = B.interleaved({"torch_base": tb, "torch_mix": tm, "graft_base": lambda: g_base.run(f),
                             "graft_mix": lambda: g_mix.run(f)}, args.iterations, args.warmup)
        ms = {k: v["median"] * 1e3 for k, v in res.items()}
        rows.append(dict(case=f"{batch}x{seq}", ms=ms, max_abs_graft_vs_package=d_mix, max_abs_base=d_base, moved=moved))

    lines = [f"threads = {args.threads}; median ms of {args.iterations} interleaved runs; torch {torch.__version__}, "
             f"mixlora 0.2.3, graft {graft.version()}",
             "",
             "| batch×seq | PyTorch base | PyTorch + mixlora | Graft base | Graft + MixLoRA | Graft/PyTorch (MixLoRA) | "
             "mixture overhead, PyTorch | mixture overhead, Graft | max abs diff vs package |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["ms"]
        lines.append(f"| {r['case']} | {m['torch_base']:.2f} | {m['torch_mix']:.2f} | {m['graft_base']:.2f} | {m['graft_mix']:.2f} | "
                     f"{m['graft_mix'] / m['torch_mix']:.2f} | {m['torch_mix'] / m['torch_base']:.2f}× | "
                     f"{m['graft_mix'] / m['graft_base']:.2f}× | {r['max_abs_graft_vs_package']:.1e} |")
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(threads=args.threads, llama=LLAMA, mixlora=MIX, rows=rows, failures=failures), fh, indent=2)
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
