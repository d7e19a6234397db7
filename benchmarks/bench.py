#!/usr/bin/env python3
"""Graft side by side with ONNX Runtime and PyTorch (issues 5 and 6).

One process run, same machine, same thread count, same inputs:

  * latency: a MiniLM-class encoder (BERT, 6 layers, hidden 384, 12 heads, intermediate 1536,
    vocab 30522) at batch 1x128, 8x128 and 1x16, and one decode step of a Llama-class decoder
    (GQA) with a KV cache; Graft (Python binding), ONNX Runtime (CPU EP, ORT_ENABLE_ALL) and
    PyTorch eager; outputs are checked to agree before anything is timed;
  * load: Graft model load -> first result vs ORT session creation -> first result;
  * peak RSS: each runtime in its own subprocess (load + the 8x128 case), VmHWM;
  * adapters: PEFT LoRA rank 8 on query,value: unmerged / merged overhead over the base model,
    hot swap, adapter load, a mixed batch (8 rows x 8 adapters) vs one adapter for the whole
    batch, and PyTorch + PEFT on the same inputs.

Models are random-weight (fixed seed), exported with torch.onnx.export (TorchScript exporter,
opset 17, dynamic batch/sequence) into a cache folder outside the repository (default
/tmp/graft-bench), reused while their configuration is unchanged.

    /work/venv/bin/python benchmarks/bench.py [--threads 2] [--iterations 50] [--json out.json]

See benchmarks/README.md.
"""

import argparse
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SEED = 1234

ENCODER = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
               intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2)
LLAMA = dict(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=6,
             num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=2048)
LLAMA_CONTEXT = 128          # tokens in the cache after the step (127 past + 1 new)
LORA_RANK = 8
LORA_TARGETS = ["query", "value"]
N_ADAPTERS = 8               # distinct adapters for the mixed batch
AGREE_TOL = 1e-3             # Graft vs ORT / PyTorch, max abs difference


# --------------------------------------------------------------------------------------------
# Small helpers (no third-party imports: also used by the RSS children).
# --------------------------------------------------------------------------------------------

def log(*a):
    print(*a, file=sys.stderr, flush=True)


def proc_status(field):
    """A /proc/self/status field in KiB (VmHWM, VmRSS), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def find_build_dir(arg):
    cands = [arg] if arg else [os.path.join(REPO, ".build-bench", "release"),
                               os.path.join(REPO, ".build", "release")]
    for c in cands:
        if c and os.path.exists(os.path.join(c, "libGraftC.so")):
            return os.path.abspath(c)
    sys.exit("error: libGraftC.so not found in %s; build with `swift build -c release` "
             "(or pass --build-dir)" % " or ".join(c for c in cands if c))


def setup_graft_env(build_dir):
    """Point the ctypes binding at this checkout's build (before `import graft`)."""
    os.environ["GRAFT_LIBRARY"] = os.path.join(build_dir, "libGraftC.so")
    os.environ["GRAFT_PLUGIN_PATH"] = build_dir
    sys.path.insert(0, os.path.join(REPO, "bindings", "python"))


# --------------------------------------------------------------------------------------------
# RSS children: `bench.py --rss-child graft|ort MODEL INPUTS.npz THREADS` prints one JSON line.
# Only numpy and the runtime are imported (never torch), so the baselines are comparable.
# --------------------------------------------------------------------------------------------

def rss_child(runtime, model_path, inputs_path, threads, build_dir):
    import numpy as np
    if runtime == "graft":
        setup_graft_env(build_dir)
        import graft  # noqa: F401
    else:
        import onnxruntime as ort
    feeds = dict(np.load(inputs_path))
    base_hwm = proc_status("VmHWM")
    base_rss = proc_status("VmRSS")
    if runtime == "graft":
        model = graft.Model(model_path)
        sess = model.session(threads=threads)
        run = lambda: sess.run(feeds)  # noqa: E731
    else:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        s = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
        run = lambda: s.run(None, feeds)  # noqa: E731
    for _ in range(3):
        run()
    print(json.dumps(dict(runtime=runtime, vm_hwm_kib=proc_status("VmHWM"),
                          ru_maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                          baseline_hwm_kib=base_hwm, baseline_rss_kib=base_rss)), flush=True)


# --------------------------------------------------------------------------------------------
# Models, exports and adapters (cached outside the repository).
# --------------------------------------------------------------------------------------------

def seed_all(seed=SEED):
    import random
    import numpy as np
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_encoder(attn):
    import torch
    from transformers import BertConfig, BertModel

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            cfg = BertConfig(**ENCODER, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                             attn_implementation=attn)
            self.model = BertModel(cfg, add_pooling_layer=False)

        def forward(self, input_ids, attention_mask, token_type_ids):
            return (self.model(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids, return_dict=True).last_hidden_state,)

    seed_all()
    return Encoder().eval()


def make_llama():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.cache_utils import DynamicCache

    n_layers = LLAMA["num_hidden_layers"]

    class Decoder(torch.nn.Module):
        """One step with the KV cache as flat inputs/outputs: past_key_i, past_value_i
        [batch, kv_heads, past, head_dim] -> logits, present_key_i, present_value_i."""

        def __init__(self):
            super().__init__()
            cfg = LlamaConfig(**LLAMA, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                              use_cache=True, attn_implementation="eager")
            self.model = LlamaForCausalLM(cfg)

        def forward(self, input_ids, attention_mask, position_ids, *past):
            cache = DynamicCache()
            for i in range(n_layers):
                cache.update(past[2 * i], past[2 * i + 1], i)
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             past_key_values=cache, use_cache=True, return_dict=True)
            res = [out.logits]
            for layer in out.past_key_values.layers[:n_layers]:
                res += [layer.keys, layer.values]
            return tuple(res)

    seed_all()
    return Decoder().eval()


def llama_io_names():
    n = LLAMA["num_hidden_layers"]
    past = [f"past_{k}_{i}" for i in range(n) for k in ("key", "value")]
    present = [f"present_{k}_{i}" for i in range(n) for k in ("key", "value")]
    return ["input_ids", "attention_mask", "position_ids"] + past, ["logits"] + present


def encoder_inputs(batch, seq, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, ENCODER["vocab_size"], size=(batch, seq), dtype=np.int64)
    ids[:, 0] = 101
    ids[:, -1] = 102
    return dict(input_ids=ids, attention_mask=np.ones((batch, seq), np.int64),
                token_type_ids=np.zeros((batch, seq), np.int64))


def llama_inputs(batch, context, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    past = context - 1
    kv, hd = LLAMA["num_key_value_heads"], LLAMA["hidden_size"] // LLAMA["num_attention_heads"]
    names, _ = llama_io_names()
    feeds = dict(input_ids=rng.integers(1, LLAMA["vocab_size"], size=(batch, 1), dtype=np.int64),
                 attention_mask=np.ones((batch, context), np.int64),
                 position_ids=np.full((batch, 1), past, np.int64))
    for n in names[3:]:
        feeds[n] = rng.standard_normal((batch, kv, past, hd)).astype(np.float32)
    return feeds


def config_key(extra):
    import torch
    import transformers
    blob = json.dumps(dict(extra=extra, seed=SEED, torch=torch.__version__, tf=transformers.__version__),
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def export_encoder(model, path):
    import torch
    feeds = encoder_inputs(2, 16, 0)
    args = tuple(torch.from_numpy(feeds[n]) for n in ("input_ids", "attention_mask", "token_type_ids"))
    dyn = {n: {0: "batch", 1: "sequence"} for n in ("input_ids", "attention_mask", "token_type_ids")}
    dyn["last_hidden_state"] = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(model, args, path, dynamo=False, opset_version=17,
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"], dynamic_axes=dyn, do_constant_folding=True)


def export_llama(model, path):
    import torch
    names, outs = llama_io_names()
    feeds = llama_inputs(1, 9, 0)
    args = tuple(torch.from_numpy(feeds[n]) for n in names)
    dyn = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "total"},
           "position_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}
    for n in names[3:]:
        dyn[n] = {0: "batch", 2: "past"}
    for n in outs[1:]:
        dyn[n] = {0: "batch", 2: "total"}
    with torch.no_grad():
        torch.onnx.export(model, args, path, dynamo=False, opset_version=17, input_names=names,
                          output_names=outs, dynamic_axes=dyn, do_constant_folding=True)


def lora_config():
    from peft import LoraConfig
    return LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, target_modules=list(LORA_TARGETS),
                      lora_dropout=0.0, init_lora_weights=False)


def make_adapters(folder):
    """N_ADAPTERS distinct rank-8 q,v PEFT LoRA directories on the inner BertModel."""
    import copy
    import torch
    from peft import get_peft_model
    base = make_encoder("eager").model
    dirs = []
    for k in range(N_ADAPTERS):
        d = os.path.join(folder, f"lora_qv_r8_{k}")
        pm = get_peft_model(copy.deepcopy(base), lora_config())
        g = torch.Generator().manual_seed(100 + k)
        with torch.no_grad():
            for name, p in pm.named_parameters():
                if "lora_" in name:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        pm.save_pretrained(d)
        dirs.append(d)
    return dirs


def prepare(cache):
    """Exports (or reuses) everything; returns paths."""
    os.makedirs(cache, exist_ok=True)
    key = config_key(dict(encoder=ENCODER, llama=LLAMA, lora=[LORA_RANK, LORA_TARGETS, N_ADAPTERS], v=3))
    folder = os.path.join(cache, key)
    done = os.path.join(folder, "DONE")
    paths = dict(folder=folder, encoder=os.path.join(folder, "encoder.onnx"),
                 llama=os.path.join(folder, "llama_decode.onnx"),
                 adapters=[os.path.join(folder, "adapters", f"lora_qv_r8_{k}") for k in range(N_ADAPTERS)])
    if os.path.exists(done):
        log(f"using cached exports in {folder}")
        return paths
    os.makedirs(folder, exist_ok=True)
    import warnings
    warnings.filterwarnings("ignore")
    import transformers
    transformers.logging.set_verbosity_error()
    log(f"exporting the encoder to {paths['encoder']} ...")
    export_encoder(make_encoder("eager"), paths["encoder"])
    log(f"exporting the Llama-class decoder step (with KV cache) to {paths['llama']} ...")
    export_llama(make_llama(), paths["llama"])
    log("saving PEFT LoRA adapters ...")
    make_adapters(os.path.join(folder, "adapters"))
    with open(done, "w") as f:
        f.write("ok\n")
    return paths


# --------------------------------------------------------------------------------------------
# Timing.
# --------------------------------------------------------------------------------------------

def interleaved(fns, iterations, warmup, block=5, pause=0.005):
    """Median seconds per call of each fn in `fns` (name -> callable).

    The machine may be busy, so the runtimes are timed in alternating blocks of `block` calls
    (the order rotating every round) rather than one after the other: a burst of outside load
    then hits all of them alike. The first call of every block is not timed, and a short pause
    separates blocks, so that a runtime whose pool threads still spin after its last call (ONNX
    Runtime, OpenMP in PyTorch) does not slow down the next one.
    """
    names = list(fns)
    for n in names:
        for _ in range(warmup):
            fns[n]()
    samples = {n: [] for n in names}
    r = 0
    while min(len(v) for v in samples.values()) < iterations:
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            time.sleep(pause)
            fns[n]()
            for _ in range(block):
                t = time.perf_counter()
                fns[n]()
                samples[n].append(time.perf_counter() - t)
        r += 1
    return {n: dict(median=statistics.median(v), min=min(v), p90=sorted(v)[int(0.9 * (len(v) - 1))], n=len(v))
            for n, v in samples.items()}


def paired(fns, rounds, warmup, base):
    """Graft-only comparisons (no spinning pools): every round calls each fn once, timed, in
    an order rotating every round; returns per-fn medians and, per fn, the median over rounds
    of its time divided by `base`'s time in the same round. Pairing cancels load that drifts
    over seconds, which a ratio of two medians taken apart does not."""
    names = list(fns)
    for n in names:
        for _ in range(warmup):
            fns[n]()
    samples = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            fns[n]()
            samples[n].append(time.perf_counter() - t)
    out = {n: dict(median=statistics.median(v), min=min(v), n=len(v)) for n, v in samples.items()}
    for n in names:
        out[n]["paired_ratio"] = statistics.median(x / y for x, y in zip(samples[n], samples[base]))
    return out


def max_abs(a, b):
    import numpy as np
    return float(np.max(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32))))


# --------------------------------------------------------------------------------------------
# The benchmark.
# --------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args, paths, build_dir):
        import numpy as np
        import onnxruntime as ort
        import torch
        import graft
        self.np, self.ort, self.torch, self.graft = np, ort, torch, graft
        self.args, self.paths, self.build_dir = args, paths, build_dir
        self.failures = []
        import transformers
        transformers.logging.set_verbosity_error()
        self.enc_onnx_torch = None
        self.enc_torch = make_encoder(args.torch_attention)
        self.llama_torch = make_llama()
        self.graft_models = {"encoder": graft.Model(paths["encoder"]), "llama": graft.Model(paths["llama"])}

    # ---- runtimes
    def ort_session(self, path, threads):
        so = self.ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return self.ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def torch_fn(self, which, feeds):
        torch = self.torch
        if which == "encoder":
            kw = {n: torch.from_numpy(feeds[n]) for n in ("input_ids", "attention_mask", "token_type_ids")}
            m = self.enc_torch

            def f():
                with torch.inference_mode():
                    return m(**kw)
        else:
            names, _ = llama_io_names()
            args = [torch.from_numpy(feeds[n]) for n in names]
            m = self.llama_torch

            def f():
                with torch.inference_mode():
                    return m(*args)
        return f

    def check(self, label, a, b, what):
        d = max(max_abs(x, y) for x, y in zip(a, b))
        if not d <= AGREE_TOL:
            self.failures.append(f"{label}: {what} max|diff| {d:.3g} > {AGREE_TOL}")
            log(f"  WARNING {label}: {what} differ by {d:.3g}")
        return d

    # ---- latency cases
    def latency_cases(self, threads):
        np = self.np
        self.torch.set_num_threads(threads)
        cases = [("encoder 1x128", "encoder", encoder_inputs(1, 128, 1)),
                 ("encoder 8x128", "encoder", encoder_inputs(8, 128, 2)),
                 ("encoder 1x16", "encoder", encoder_inputs(1, 16, 3)),
                 (f"llama decode step (1 new token, context {LLAMA_CONTEXT})", "llama",
                  llama_inputs(1, LLAMA_CONTEXT, 4))]
        ort_sessions = {k: self.ort_session(self.paths[k], threads) for k in ("encoder", "llama")}
        graft_sessions = {k: m.session(threads=threads) for k, m in self.graft_models.items()}
        rows = []
        for label, which, feeds in cases:
            log(f"[threads={threads}] {label}")
            gs, os_ = graft_sessions[which], ort_sessions[which]
            out_names = [o.name for o in os_.get_outputs()]
            g = gs.run(feeds)
            g = [g[n] for n in out_names]
            o = os_.run(None, feeds)
            tf = self.torch_fn(which, feeds)
            t = [x.numpy() for x in tf()]
            d_ort = self.check(label, g, o, "Graft vs ORT")
            d_torch = self.check(label, g, t, "Graft vs PyTorch")
            res = interleaved({"graft": lambda: gs.run(feeds), "ort": lambda: os_.run(None, feeds), "torch": tf},
                              self.args.iterations, self.args.warmup)
            rows.append(dict(case=label, threads=threads, diff_graft_ort=d_ort, diff_graft_torch=d_torch,
                             graft_ms=res["graft"]["median"] * 1e3, ort_ms=res["ort"]["median"] * 1e3,
                             torch_ms=res["torch"]["median"] * 1e3,
                             graft_p90_ms=res["graft"]["p90"] * 1e3, ort_p90_ms=res["ort"]["p90"] * 1e3,
                             torch_p90_ms=res["torch"]["p90"] * 1e3, n=res["graft"]["n"],
                             graft_over_ort=res["graft"]["median"] / res["ort"]["median"],
                             graft_over_torch=res["graft"]["median"] / res["torch"]["median"]))
        for s in graft_sessions.values():
            s.close()
        del ort_sessions
        return rows

    # ---- load
    def load_times(self, threads, reps):
        graft, np = self.graft, self.np
        rows = []
        for which, feeds in (("encoder", encoder_inputs(1, 128, 1)), ("llama", llama_inputs(1, LLAMA_CONTEXT, 4))):
            path = self.paths[which]
            log(f"[load] {which}")
            # Two figures per runtime: ready to run (Graft: Model + session; ORT: InferenceSession,
            # the "model load / ORT session creation"), and first result (+ one run).
            # Graft plans and packs weights in its first run, ORT while creating the session, so
            # only the second figure compares the same work.
            gt, ot, gr, orr = [], [], [], []
            for _ in range(reps):
                t = time.perf_counter()
                m = graft.Model(path)
                s = m.session(threads=threads)
                gr.append(time.perf_counter() - t)
                s.run(feeds)
                gt.append(time.perf_counter() - t)
                s.close()
                m.close()
                time.sleep(0.01)
                t = time.perf_counter()
                o = self.ort_session(path, threads)
                orr.append(time.perf_counter() - t)
                o.run(None, feeds)
                ot.append(time.perf_counter() - t)
                del o
                time.sleep(0.01)
            g, o = statistics.median(gt), statistics.median(ot)
            g_ready, o_ready = statistics.median(gr), statistics.median(orr)
            rows.append(dict(model=which, reps=reps, graft_ms=g * 1e3, ort_ms=o * 1e3, ratio=g / o,
                             graft_ready_ms=g_ready * 1e3, ort_ready_ms=o_ready * 1e3, ready_ratio=g_ready / o_ready,
                             onnx_bytes=os.path.getsize(path)))
        return rows

    # ---- peak RSS
    def peak_rss(self, threads):
        np = self.np
        rows = []
        for which, feeds, label in (("encoder", encoder_inputs(8, 128, 2), "encoder 8x128"),
                                    ("llama", llama_inputs(1, LLAMA_CONTEXT, 4), "llama decode step")):
            inp = os.path.join(self.paths["folder"], f"rss_inputs_{which}.npz")
            np.savez(inp, **feeds)
            res = {}
            for rt in ("graft", "ort"):
                log(f"[rss] {label}: {rt}")
                cmd = [sys.executable, os.path.abspath(__file__), "--rss-child", rt, self.paths[which], inp,
                       str(threads), "--build-dir", self.build_dir]
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode != 0:
                    self.failures.append(f"rss child {rt} {which}: exit {p.returncode}: {p.stderr.strip()[-300:]}")
                    res[rt] = None
                    continue
                res[rt] = json.loads(p.stdout.strip().splitlines()[-1])
            row = dict(case=label)
            for rt in ("graft", "ort"):
                r = res.get(rt)
                row[f"{rt}_peak_mib"] = r["vm_hwm_kib"] / 1024 if r else None
                row[f"{rt}_baseline_mib"] = r["baseline_hwm_kib"] / 1024 if r else None
                row[f"{rt}_ru_maxrss_mib"] = r["ru_maxrss_kib"] / 1024 if r else None
            if res.get("graft") and res.get("ort"):
                row["ratio"] = res["graft"]["vm_hwm_kib"] / res["ort"]["vm_hwm_kib"]
                row["ratio_above_baseline"] = ((res["graft"]["vm_hwm_kib"] - res["graft"]["baseline_hwm_kib"])
                                               / (res["ort"]["vm_hwm_kib"] - res["ort"]["baseline_hwm_kib"]))
            rows.append(row)
        return rows

    # ---- adapters
    def adapters(self, threads):
        import copy
        np, torch, graft = self.np, self.torch, self.graft
        from peft import PeftModel
        torch.set_num_threads(threads)
        args = self.args
        model = self.graft_models["encoder"]
        dirs = self.paths["adapters"]
        out = {}

        # adapter load time (rank-8 q,v PEFT directory), median over repeated loads
        log("[adapters] load")
        lt = []
        for i in range(args.adapter_loads):
            t = time.perf_counter()
            a = model.load_adapter(dirs[i % len(dirs)])
            lt.append(time.perf_counter() - t)
            a.close()
        out["adapter_load_ms"] = statistics.median(lt) * 1e3
        out["adapter_load_min_ms"] = min(lt) * 1e3
        ads = [model.load_adapter(d) for d in dirs]

        # PyTorch + PEFT (unmerged) with all adapters loaded, for references and context
        base_t = make_encoder(args.torch_attention).model
        pm = PeftModel.from_pretrained(copy.deepcopy(base_t), dirs[0], adapter_name="a0").eval()
        for k in range(1, len(dirs)):
            pm.load_adapter(dirs[k], adapter_name=f"a{k}")
        pm.set_adapter("a0")

        def peft_fn(feeds, adapter_names=None):
            kw = {n: torch.from_numpy(feeds[n]) for n in ("input_ids", "attention_mask", "token_type_ids")}
            if adapter_names is not None:
                kw["adapter_names"] = adapter_names

            def f():
                with torch.inference_mode():
                    return pm(**kw).last_hidden_state
            return f

        base_fn = lambda feeds: self.torch_fn("encoder", feeds)  # noqa: E731

        # base / unmerged / merged at 1x128
        log("[adapters] overhead 1x128")
        feeds = encoder_inputs(1, 128, 1)
        s_base = model.session(threads=threads)
        s_un = model.session(threads=threads)
        s_un.set_adapters([ads[0]])
        s_me = model.session(threads=threads)
        s_me.set_adapters([ads[0]], merged=True)
        gb = s_base.run(feeds)["last_hidden_state"]
        gu = s_un.run(feeds)["last_hidden_state"]
        gm = s_me.run(feeds)["last_hidden_state"]
        ref = peft_fn(feeds)().numpy()
        out["diff_unmerged_vs_peft"] = self.check("adapter 1x128", [gu], [ref], "Graft unmerged vs PEFT")
        out["diff_merged_vs_unmerged"] = self.check("adapter 1x128", [gm], [gu], "Graft merged vs unmerged")
        out["adapter_effect"] = max_abs(gu, gb)
        res = paired({"base": lambda: s_base.run(feeds), "unmerged": lambda: s_un.run(feeds),
                      "merged": lambda: s_me.run(feeds)}, args.adapter_rounds, args.warmup, "base")
        for k, v in res.items():
            out[f"{k}_1x128_ms"] = v["median"] * 1e3
        out["unmerged_overhead"] = res["unmerged"]["paired_ratio"] - 1
        out["merged_overhead"] = res["merged"]["paired_ratio"] - 1
        # the same comparison of base against itself (a second base session) = the noise floor
        s_base2 = model.session(threads=threads)
        noise = paired({"base": lambda: s_base.run(feeds), "base2": lambda: s_base2.run(feeds)},
                       args.adapter_rounds, args.warmup, "base")
        out["base_vs_base_noise"] = noise["base2"]["paired_ratio"] - 1
        s_base2.close()
        pt = paired({"torch_base": base_fn(feeds), "peft_unmerged": peft_fn(feeds)},
                    max(args.iterations, 30), args.warmup, "torch_base")
        for k, v in pt.items():
            out[f"{k}_1x128_ms"] = v["median"] * 1e3
        out["peft_overhead"] = pt["peft_unmerged"]["paired_ratio"] - 1
        s_base.close()
        s_me.close()

        # hot swap: set_adapters between two loaded adapters, each call timed
        log("[adapters] hot swap")
        sw = []
        for i in range(args.swaps):
            t = time.perf_counter()
            s_un.set_adapters([ads[i % 2]])
            sw.append(time.perf_counter() - t)
        out["swap_us"] = statistics.median(sw) * 1e6
        out["swap_p90_us"] = sorted(sw)[int(0.9 * (len(sw) - 1))] * 1e6
        # swap then run: the first run after a swap costs no more than any other run
        s_un.set_adapters([ads[0]])

        # mixed batch: 8 rows x 8 adapters vs one adapter for the whole batch (8x128)
        log("[adapters] mixed batch 8x128")
        feeds8 = encoder_inputs(N_ADAPTERS, 128, 2)
        s_mix = model.session(threads=threads)
        mixed = s_mix.run(feeds8, row_adapters=ads)["last_hidden_state"]
        peft_mixed = peft_fn(feeds8, [f"a{k}" for k in range(N_ADAPTERS)])().numpy()
        out["diff_mixed_vs_peft"] = self.check("mixed 8x128", [mixed], [peft_mixed], "Graft mixed vs PEFT mixed")
        s_one = model.session(threads=threads)
        s_one.set_adapters([ads[0]])
        s_b8 = model.session(threads=threads)
        res = paired({"one": lambda: s_one.run(feeds8), "mixed": lambda: s_mix.run(feeds8, row_adapters=ads),
                      "base": lambda: s_b8.run(feeds8)}, max(args.iterations, 30), args.warmup, "one")
        for k, v in res.items():
            out[f"{k}_8x128_ms"] = v["median"] * 1e3
        out["mixed_over_one"] = res["mixed"]["paired_ratio"]
        pt = paired({"peft_one": peft_fn(feeds8), "peft_mixed": peft_fn(feeds8, [f"a{k}" for k in range(N_ADAPTERS)])},
                    max(args.iterations // 2, 15), min(args.warmup, 2), "peft_one")
        for k, v in pt.items():
            out[f"{k}_8x128_ms"] = v["median"] * 1e3
        out["peft_mixed_over_one"] = pt["peft_mixed"]["paired_ratio"]
        for s in (s_un, s_mix, s_one, s_b8):
            s.close()
        return out

    # ---- OPENBLAS env variant (Graft via the numpy-free CLI)
    def cli_variants(self, threads):
        graft_cli = os.path.join(self.build_dir, "graft")
        if not os.path.exists(graft_cli):
            return dict(error=f"{graft_cli} not built")
        past = LLAMA_CONTEXT - 1
        cases = [("encoder 1x128", [self.paths["encoder"], "--shape", "input_ids=1x128", "--vocab", "30522"]),
                 ("encoder 8x128", [self.paths["encoder"], "--shape", "input_ids=8x128", "--vocab", "30522"]),
                 ("encoder 1x16", [self.paths["encoder"], "--shape", "input_ids=1x16", "--vocab", "30522"]),
                 ("llama decode step", [self.paths["llama"], "--shape", "input_ids=1x1", "--dim", f"past={past}",
                                        "--dim", f"total={LLAMA_CONTEXT}", "--vocab", str(LLAMA["vocab_size"])])]
        env_as_set = dict(os.environ)
        env_unset = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        rows = []
        for label, cargs in cases:
            row = dict(case=label)
            for tag, env in (("as_set", env_as_set), ("unset", env_unset)):
                log(f"[openblas env {tag}] {label}")
                cmd = [graft_cli, "bench", *cargs, "--threads", str(threads),
                       "--iterations", str(self.args.iterations), "--warmup", str(self.args.warmup)]
                p = subprocess.run(cmd, capture_output=True, text=True, env=env)
                med = None
                for line in p.stdout.splitlines():
                    if line.startswith("latency"):
                        med = float(line.split("median")[1].split()[0])
                if p.returncode != 0 or med is None:
                    self.failures.append(f"graft bench {label} ({tag}): exit {p.returncode}: {p.stderr.strip()[-200:]}")
                row[f"{tag}_ms"] = med
            rows.append(row)
        return rows


# --------------------------------------------------------------------------------------------
# Machine facts and report.
# --------------------------------------------------------------------------------------------

def machine_facts(build_dir):
    import numpy as np
    import onnxruntime as ort
    import torch
    import transformers
    import peft
    import onnx
    import graft
    cpu, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu == "unknown":
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        commit += " (modified)" if dirty else ""
    except OSError:
        commit = "unknown"
    return dict(
        cpu=cpu, logical_cpus=os.cpu_count(), usable_cpus=len(os.sched_getaffinity(0)),
        simd=" ".join(f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile")
                      if f in flags) or "none of avx2/avx512",
        loadavg_start=open("/proc/loadavg").read().split()[:3],
        OPENBLAS_CORETYPE=os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
        OPENBLAS_L2_SIZE=os.environ.get("OPENBLAS_L2_SIZE", "(unset)"),
        python=platform.python_version(), numpy=np.__version__, torch=torch.__version__,
        onnxruntime=ort.__version__, onnx=onnx.__version__, transformers=transformers.__version__,
        peft=peft.__version__, graft=graft.version(), graft_commit=commit, graft_library=os.environ["GRAFT_LIBRARY"],
        kernel=platform.release(),
    )


def fmt(v, nd=2):
    if v is None:
        return "—"
    return f"{v:.{nd}f}"


def report(r):
    L = []
    m = r["machine"]
    L.append("## Graft vs ONNX Runtime vs PyTorch\n")
    L.append(f"- CPU: {m['cpu']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable), SIMD: {m['simd']}")
    L.append(f"- Load average at start: {' '.join(m['loadavg_start'])}; at end: {' '.join(m['loadavg_end'])}"
             f" ({m['usable_cpus']} CPUs)")
    L.append(f"- OPENBLAS_CORETYPE={m['OPENBLAS_CORETYPE']}, OPENBLAS_L2_SIZE={m['OPENBLAS_L2_SIZE']} (left as set)")
    L.append(f"- Graft {m['graft']} @ {m['graft_commit']}; onnxruntime {m['onnxruntime']}; torch {m['torch']}; "
             f"transformers {m['transformers']}; peft {m['peft']}; onnx {m['onnx']}; numpy {m['numpy']}; "
             f"Python {m['python']}; Linux {m['kernel']}")
    a = r["args"]
    L.append(f"- Medians of {a['iterations']} timed runs per runtime after {a['warmup']} warm-up runs, runtimes "
             f"interleaved in blocks of 5; ORT: CPU EP, ORT_ENABLE_ALL, intra-op threads = threads, inter-op 1; "
             f"PyTorch: eager, torch.set_num_threads(threads), inference_mode, {a['torch_attention']} attention.")
    L.append(f"- Encoder: BERT 6 layers, hidden 384, 12 heads, intermediate 1536, vocab 30522 (all-MiniLM-L6-v2 "
             f"shape, random weights), output last_hidden_state. Decoder: Llama {LLAMA['num_hidden_layers']} layers, "
             f"hidden {LLAMA['hidden_size']}, {LLAMA['num_attention_heads']} heads / {LLAMA['num_key_value_heads']} KV "
             f"heads, intermediate {LLAMA['intermediate_size']}, vocab {LLAMA['vocab_size']}; one decode step = 1 new "
             f"token with a KV cache of {LLAMA_CONTEXT - 1} (cache as explicit inputs/outputs). Both exported with "
             f"torch.onnx.export (TorchScript, opset 17, dynamic axes), eager attention.")
    L.append("")
    for threads, rows in r["latency"].items():
        L.append(f"### Latency, threads = {threads} (median ms; ratio < 1 means Graft is faster)\n")
        L.append("| case | Graft | ORT | PyTorch | Graft/ORT | Graft/PyTorch | max abs diff vs ORT / PyTorch |")
        L.append("|---|---:|---:|---:|---:|---:|---|")
        for x in rows:
            L.append(f"| {x['case']} | {fmt(x['graft_ms'])} | {fmt(x['ort_ms'])} | {fmt(x['torch_ms'])} | "
                     f"**{fmt(x['graft_over_ort'])}** | {fmt(x['graft_over_torch'])} | "
                     f"{x['diff_graft_ort']:.1e} / {x['diff_graft_torch']:.1e} |")
        L.append("")
    if r.get("load"):
        L.append(f"### Load (median of {r['load'][0]['reps']}, ms)\n")
        L.append("| model | ONNX file | Graft: Model + session | ORT: InferenceSession | Graft/ORT | "
                 "Graft: + first run | ORT: + first run | Graft/ORT |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for x in r["load"]:
            ready = (f"{fmt(x['graft_ready_ms'], 1)} | {fmt(x['ort_ready_ms'], 1)} | **{fmt(x['ready_ratio'])}**"
                     if "ready_ratio" in x else "– | – | –")
            L.append(f"| {x['model']} | {x['onnx_bytes'] / 2**20:.1f} MiB | {ready} | {fmt(x['graft_ms'], 1)} | "
                     f"{fmt(x['ort_ms'], 1)} | **{fmt(x['ratio'])}** |")
        L.append("\nReady to run: Graft's model load and session creation; ORT's session creation (the "
                 "issue's measure). Graft builds its plan and packs the weights in the first run, ORT "
                 "while creating the session: the first-result columns compare the same work.\n")
    if r.get("rss"):
        L.append("### Peak RSS (VmHWM of a separate process: imports, load, 3 runs; MiB)\n")
        L.append("| case | Graft | ORT | Graft/ORT | Graft above baseline | ORT above baseline | ratio above baseline |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for x in r["rss"]:
            gb = x["graft_peak_mib"] - x["graft_baseline_mib"] if x.get("graft_peak_mib") else None
            ob = x["ort_peak_mib"] - x["ort_baseline_mib"] if x.get("ort_peak_mib") else None
            L.append(f"| {x['case']} | {fmt(x['graft_peak_mib'], 1)} | {fmt(x['ort_peak_mib'], 1)} | "
                     f"**{fmt(x.get('ratio'))}** | {fmt(gb, 1)} | {fmt(ob, 1)} | {fmt(x.get('ratio_above_baseline'))} |")
        L.append("\nBaseline = VmHWM after `import numpy` + the runtime's import, before loading the model.\n")
    ad = r.get("adapters")
    if ad:
        t = r["args"]["threads"]
        L.append(f"### Adapters (PEFT LoRA rank 8 on query,value; encoder; threads = {t})\n")
        L.append("| measure | value | target (issue 6) |")
        L.append("|---|---:|---|")
        L.append(f"| base 1x128 | {fmt(ad['base_1x128_ms'])} ms | |")
        L.append(f"| unmerged 1x128 | {fmt(ad['unmerged_1x128_ms'])} ms | |")
        L.append(f"| **unmerged overhead** over base (median of {r['args']['adapter_rounds']} paired ratios) | **{ad['unmerged_overhead'] * 100:+.1f}%** | ≤ 5% |")
        L.append(f"| merged 1x128 | {fmt(ad['merged_1x128_ms'])} ms | |")
        L.append(f"| **merged overhead** over base | **{ad['merged_overhead'] * 100:+.1f}%** | within noise |")
        L.append(f"| noise floor: a second base session over base | {ad['base_vs_base_noise'] * 100:+.1f}% | |")
        L.append(f"| **hot swap** (set_adapters between two loaded adapters, Python binding, median of "
                 f"{r['args']['swaps']}) | **{fmt(ad['swap_us'], 1)} µs** (p90 {fmt(ad['swap_p90_us'], 1)} µs) | ≤ 1 ms |")
        L.append(f"| **adapter load** (rank-8 PEFT dir, median of {r['args']['adapter_loads']}) | "
                 f"**{fmt(ad['adapter_load_ms'])} ms** | ≤ 5 ms |")
        L.append(f"| one adapter, 8x128 | {fmt(ad['one_8x128_ms'])} ms | |")
        L.append(f"| mixed batch, 8 rows x 8 adapters, 8x128 | {fmt(ad['mixed_8x128_ms'])} ms | |")
        L.append(f"| **mixed / one adapter** (median of paired ratios) | **{fmt(ad['mixed_over_one'])}×** | ≤ 1.15× |")
        L.append(f"| base 8x128 (for reference) | {fmt(ad['base_8x128_ms'])} ms | |")
        L.append(f"| PyTorch base 1x128 / + PEFT unmerged 1x128 | {fmt(ad['torch_base_1x128_ms'])} / "
                 f"{fmt(ad['peft_unmerged_1x128_ms'])} ms ({ad['peft_overhead'] * 100:+.1f}%) | context |")
        L.append(f"| PyTorch + PEFT 8x128: one adapter / mixed (adapter_names) | {fmt(ad['peft_one_8x128_ms'])} / "
                 f"{fmt(ad['peft_mixed_8x128_ms'])} ms ({fmt(ad['peft_mixed_over_one'])}×) | context |")
        L.append(f"| max abs diff: unmerged vs PEFT / merged vs unmerged / mixed vs PEFT mixed | "
                 f"{ad['diff_unmerged_vs_peft']:.1e} / {ad['diff_merged_vs_unmerged']:.1e} / "
                 f"{ad['diff_mixed_vs_peft']:.1e} | (adapter moves outputs by {ad['adapter_effect']:.2g}) |")
        L.append("\nONNX Runtime cannot apply a PEFT adapter to an unmodified export (it needs a re-export with "
                 "LoRA inputs), so it has no column here.\n")
    if r.get("openblas_env"):
        L.append(f"### Graft via `graft bench` (CLI, no numpy): OPENBLAS_* as set vs unset (median ms, threads = "
                 f"{r['args']['threads']})\n")
        L.append(f"As set: OPENBLAS_CORETYPE={m['OPENBLAS_CORETYPE']}, OPENBLAS_L2_SIZE={m['OPENBLAS_L2_SIZE']}.\n")
        L.append("| case | as set | both unset |")
        L.append("|---|---:|---:|")
        for x in r["openblas_env"]:
            L.append(f"| {x['case']} | {fmt(x.get('as_set_ms'), 3)} | {fmt(x.get('unset_ms'), 3)} |")
        L.append("")
    if r["failures"]:
        L.append("### Problems\n")
        for f in r["failures"]:
            L.append(f"- {f}")
        L.append("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="threads for every runtime (default 2)")
    ap.add_argument("--no-single-thread", action="store_true",
                    help="skip the second latency table at threads=1")
    ap.add_argument("--iterations", type=int, default=50, help="timed runs per runtime and case (default 50)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    ap.add_argument("--load-reps", type=int, default=5, help="repetitions of the load measurement (default 5)")
    ap.add_argument("--swaps", type=int, default=1000, help="hot swaps timed (default 1000)")
    ap.add_argument("--adapter-loads", type=int, default=50, help="adapter loads timed (default 50)")
    ap.add_argument("--adapter-rounds", type=int, default=100,
                    help="paired rounds for the adapter overhead at 1x128 (default 100)")
    ap.add_argument("--torch-attention", default="sdpa", choices=["sdpa", "eager"],
                    help="attention implementation for the PyTorch timings (the exports always use eager; "
                         "default sdpa, what transformers picks)")
    ap.add_argument("--cache", default=os.environ.get("GRAFT_BENCH_CACHE", "/tmp/graft-bench"),
                    help="folder for the exports and adapters (outside the repository; default /tmp/graft-bench)")
    ap.add_argument("--build-dir", default=None,
                    help="folder with libGraftC.so, the plugins and graft (default .build-bench/release, then .build/release)")
    ap.add_argument("--json", default=None, help="also write every number to this JSON file")
    ap.add_argument("--skip", action="append", default=[], choices=["latency", "load", "rss", "adapters"],
                    help="leave out a section (repeatable)")
    ap.add_argument("--also-unset-openblas-env", action="store_true",
                    help="also time Graft through `graft bench` (no numpy) with OPENBLAS_CORETYPE and "
                         "OPENBLAS_L2_SIZE as set and with both unset, in subprocesses")
    ap.add_argument("--rss-child", nargs=4, metavar=("RUNTIME", "MODEL", "INPUTS", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    build_dir = find_build_dir(args.build_dir)
    if args.rss_child:
        rt, model, inputs, threads = args.rss_child
        rss_child(rt, model, inputs, int(threads), build_dir)
        return
    if os.path.abspath(args.cache).startswith(REPO + os.sep):
        sys.exit("error: --cache must be outside the repository")
    setup_graft_env(build_dir)

    t_start = time.time()
    paths = prepare(args.cache)
    machine = machine_facts(build_dir)
    bench = Bench(args, paths, build_dir)
    result = dict(args=vars(args), machine=machine, paths=paths, latency={}, failures=bench.failures)
    if "latency" not in args.skip:
        result["latency"][args.threads] = bench.latency_cases(args.threads)
        if not args.no_single_thread and args.threads != 1:
            result["latency"][1] = bench.latency_cases(1)
    if "load" not in args.skip:
        result["load"] = bench.load_times(args.threads, args.load_reps)
    if "rss" not in args.skip:
        result["rss"] = bench.peak_rss(args.threads)
    if "adapters" not in args.skip:
        result["adapters"] = bench.adapters(args.threads)
    if args.also_unset_openblas_env:
        result["openblas_env"] = bench.cli_variants(args.threads)
    machine["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    result["seconds"] = time.time() - t_start
    text = report(result)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str)
    log(f"done in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
