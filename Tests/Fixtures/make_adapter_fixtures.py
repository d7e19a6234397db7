#!/usr/bin/env python3
"""Build the PEFT adapter test fixtures for Graft.

Run by hand (tests never need torch), after make_fixtures.py:

    /work/venv/bin/python Tests/Fixtures/make_adapter_fixtures.py

Needs: torch transformers peft safetensors numpy (and make_fixtures.py next to it).

Nothing is trained.  The base models are the ones make_fixtures.py exports
(same classes, same seed, so the same weights as bert_* / llama_*).  PEFT is
applied to the inner transformers model (BertModel / LlamaForCausalLM), every
adapter weight (lora_A, lora_B, ia3_l) is overwritten with fixed-seed random
values, and the adapters are written by PeftModel.save_pretrained, i.e.

    adapters/<model>/<adapter>/adapter_config.json
    adapters/<model>/<adapter>/adapter_model.safetensors

(PEFT's README.md model card is deleted: it is not part of the adapter).
PyTorch + PEFT reference outputs (float32, eval, no grad) go to

    adapters/<model>/refs/<case>/<output>.npy
    adapters/<model>/refs/mixed/inputs/<input>.npy      (new 3-row inputs)
    adapters/<model>/refs/mixed/per_row/<output>.npy    (each row run alone)

and adapters/manifest.json describes everything (paths relative to
Tests/Fixtures).  Single-adapter cases use the existing basic inputs in
<model>_torchscript/basic/inputs (the same inputs as <model>_dynamo/basic).

The script asserts: base == the existing torch reference of both exporters;
mixed batch == per-row runs (1e-5); merge_and_unload() == unmerged (1e-5);
reloading the saved adapter with PeftModel.from_pretrained reproduces the
references; every adapter case moves the outputs by >= 1e-2.
"""

import collections
import copy
import json
import os
import shutil
import sys
import warnings

# PEFT keeps target_modules as a set and writes it to adapter_config.json in set
# iteration order, which depends on str hashing: pin the hash seed so that the
# saved files are byte-identical from run to run.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402

import peft  # noqa: E402
import safetensors  # noqa: E402
import transformers  # noqa: E402
from peft import IA3Config, LoraConfig, PeftModel, get_peft_model  # noqa: E402
from peft.tuners.ia3 import IA3Layer  # noqa: E402
from peft.tuners.lora import LoraLayer  # noqa: E402
from safetensors import safe_open  # noqa: E402

warnings.filterwarnings("ignore")

HERE = mf.HERE
OUT = os.path.join(HERE, "adapters")
TOLERANCE = 1e-4  # suggested tolerance for Graft vs these references
CHECK_TOL = 1e-5  # mixed-vs-per-row, merged-vs-unmerged
MIN_DELTA = 1e-2  # every adapter case must move the outputs at least this much

# Fixed seeds for the adapter weights, one per adapter.
WEIGHT_SEEDS = {"lora_qv_r8": 11, "rslora_r16": 12, "ia3": 13, "lora_qvo_r8": 21}
LORA_STD = 0.1  # lora_A, lora_B ~ N(0, LORA_STD^2)
# ia3_l ~ U(0.5, 3.0) (PEFT initialises it to 1).  The base weights are BERT-init (std 0.02), so
# attention/FFN branches are small next to the residual; a wide range is needed to move
# pooler_output by >= 1e-2.
IA3_RANGE = (0.5, 3.0)

BERT_RSLORA_TARGETS = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]

ADAPTERS = collections.OrderedDict(
    bert=collections.OrderedDict(
        lora_qv_r8=lambda: LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"], lora_dropout=0.0),
        rslora_r16=lambda: LoraConfig(
            r=16, lora_alpha=8, use_rslora=True, lora_dropout=0.0,
            target_modules=list(BERT_RSLORA_TARGETS),
            rank_pattern={"layer.1.attention.self.query": 4},
            alpha_pattern={"intermediate.dense": 32},
        ),
        ia3=lambda: IA3Config(target_modules=["key", "value", "output.dense"], feedforward_modules=["output.dense"]),
    ),
    llama=collections.OrderedDict(
        lora_qvo_r8=lambda: LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"],
                                       lora_dropout=0.0),
    ),
)


# --------------------------------------------------------------------------


def base_model(model_name):
    """The inner transformers model, with exactly the weights make_fixtures.py exported."""
    mf.seed_all()
    wrapper = mf.MODELS[model_name]["cls"]().eval()
    return wrapper.model.eval()


def load_inputs(folder):
    out = collections.OrderedDict()
    for f in sorted(os.listdir(folder)):
        if f.endswith(".npy"):
            out[f[:-4]] = np.load(os.path.join(folder, f))
    return out


def run(model, model_name, feeds, **extra):
    """Run the (PEFT or plain) model like the exported wrapper does; return {output: np.float32}."""
    spec = mf.MODELS[model_name]
    kw = {n: torch.from_numpy(feeds[n]) for n in spec["inputs"]}
    if model_name == "llama":
        kw["use_cache"] = False
    with torch.no_grad():
        out = model(**kw, return_dict=True, **extra)
    res = collections.OrderedDict()
    for name in spec["outputs"]:
        res[name] = getattr(out, name).detach().numpy().astype(np.float32)
    return res


def min_output_delta(a, b):
    """Smallest (over outputs) max |a-b|: every output must move."""
    return min(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def max_diff(a, b):
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def per_output_diff(a, b):
    return {k: float(np.max(np.abs(a[k] - b[k]))) for k in a}


def randomize_adapter(model, adapter):
    """Overwrite every parameter of `adapter` (lora_A/lora_B/ia3_l) with fixed-seed random values."""
    gen = torch.Generator().manual_seed(WEIGHT_SEEDS[adapter])
    n = 0
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            parts = name.split(".")
            if adapter not in parts:
                continue
            if "lora_A" in parts or "lora_B" in parts:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * LORA_STD)
            elif "ia3_l" in parts:
                lo, hi = IA3_RANGE
                p.copy_(lo + (hi - lo) * torch.rand(p.shape, generator=gen, dtype=torch.float32))
            else:
                raise AssertionError(f"unexpected adapter parameter {name}")
            n += 1
    assert n > 0, adapter
    return n


def resolved_modules(peft_model, adapter):
    """What PEFT actually did, per module (relative to the inner transformers model)."""
    mods = []
    for name, m in peft_model.base_model.model.named_modules():
        if isinstance(m, LoraLayer) and adapter in m.lora_A:
            mods.append(collections.OrderedDict(
                module=name, in_features=m.in_features, out_features=m.out_features,
                r=m.r[adapter], lora_alpha=m.lora_alpha[adapter], scaling=float(m.scaling[adapter]),
            ))
        elif isinstance(m, IA3Layer) and adapter in m.ia3_l:
            mods.append(collections.OrderedDict(
                module=name, in_features=m.in_features, out_features=m.out_features,
                is_feedforward=bool(m.is_feedforward), ia3_l_shape=list(m.ia3_l[adapter].shape),
                scales="input" if m.is_feedforward else "output",
            ))
    return mods


def save_adapter(peft_model, model_name, adapter):
    parent = os.path.join(OUT, model_name)
    target = os.path.join(parent, adapter)
    if os.path.isdir(target):
        shutil.rmtree(target)
    # PEFT writes non-"default" adapters into <save_directory>/<adapter name>/
    peft_model.save_pretrained(parent, selected_adapters=[adapter], safe_serialization=True)
    assert os.path.isdir(target), target
    for readme in (os.path.join(target, "README.md"), os.path.join(parent, "README.md")):
        if os.path.exists(readme):  # PEFT's model card, not part of the adapter
            os.remove(readme)
    files = sorted(os.listdir(target))
    assert files == ["adapter_config.json", "adapter_model.safetensors"], files
    with open(os.path.join(target, "adapter_config.json")) as f:
        cfg = json.load(f)
    keys = collections.OrderedDict()
    with safe_open(os.path.join(target, "adapter_model.safetensors"), "pt") as f:
        for k in sorted(f.keys()):
            keys[k] = list(f.get_slice(k).get_shape())
        st_meta = f.metadata()
    # The saved tensors are exactly the in-memory (randomized) ones.
    sd = peft.get_peft_model_state_dict(peft_model, adapter_name=adapter)
    assert sorted(sd) == sorted(keys), (sorted(sd)[:3], list(keys)[:3])
    return cfg, keys, st_meta, os.path.relpath(target, HERE)


def save_outputs(folder, outs):
    for k, v in outs.items():
        mf.save_npy(os.path.join(folder, f"{k}.npy"), v)


def mixed_inputs(model_name):
    if model_name == "bert":
        rng = np.random.default_rng(404)
        ids = mf.text_ids(rng, 3, 7)
        mask = np.ones((3, 7), dtype=np.int64)
        mask[1, 5:] = 0  # row 1 right-padded after 5 tokens
        ids[1, 5:] = 0
        tt = np.zeros((3, 7), dtype=np.int64)
        tt[0, 4:] = 1
        tt[1, 3:5] = 1
        tt[2, 2:] = 1
        return collections.OrderedDict(input_ids=ids, attention_mask=mask, token_type_ids=tt)
    rng = np.random.default_rng(505)
    ids = mf.text_ids(rng, 3, 7)
    mask = np.ones((3, 7), dtype=np.int64)
    return collections.OrderedDict(input_ids=ids, attention_mask=mask, position_ids=mf.llama_position_ids(mask))


def row(feeds, i):
    return collections.OrderedDict((k, np.ascontiguousarray(v[i:i + 1])) for k, v in feeds.items())


# --------------------------------------------------------------------------


class Builder:
    def __init__(self):
        self.adapters = []
        self.cases = []
        self.log = []

    def say(self, msg):
        print(msg, flush=True)

    def add_case(self, model_name, case, folder, adapters, inputs, outs, base_outs, extra=None):
        refdir = os.path.join(OUT, model_name, "refs", folder)
        save_outputs(refdir, outs)
        entry = collections.OrderedDict(model=model_name, case=case, folder=os.path.relpath(refdir, HERE))
        entry["adapters"] = adapters
        entry["inputs"] = inputs
        entry["outputs"] = collections.OrderedDict(
            (k, os.path.relpath(os.path.join(refdir, f"{k}.npy"), HERE)) for k in outs)
        if base_outs is not None:
            entry["max_abs_delta_vs_base"] = per_output_diff(outs, base_outs)
        if extra:
            entry.update(extra)
        entry["applies_to"] = [f"{model_name}_torchscript", f"{model_name}_dynamo"]
        self.cases.append(entry)
        d = entry.get("max_abs_delta_vs_base")
        self.say(f"  case {model_name}/{case:28s} " + (f"max|Δ vs base|={d}" if d else ""))
        return entry

    def add_adapter(self, peft_model, model_name, adapter, n_params):
        cfg, keys, st_meta, path = save_adapter(peft_model, model_name, adapter)
        pc = peft_model.peft_config[adapter]
        tm = pc.target_modules
        entry = collections.OrderedDict(
            model=model_name, name=adapter, peft_type=cfg["peft_type"], path=path,
            files=["adapter_config.json", "adapter_model.safetensors"],
            target_modules=sorted(tm) if isinstance(tm, (set, list)) else tm,
        )
        if cfg["peft_type"] == "LORA":
            entry.update(r=cfg["r"], lora_alpha=cfg["lora_alpha"], use_rslora=cfg["use_rslora"],
                         rank_pattern=cfg["rank_pattern"], alpha_pattern=cfg["alpha_pattern"],
                         fan_in_fan_out=cfg["fan_in_fan_out"], bias=cfg["bias"])
        else:
            ff = pc.feedforward_modules
            entry.update(feedforward_modules=sorted(ff) if isinstance(ff, (set, list)) else ff,
                         fan_in_fan_out=cfg["fan_in_fan_out"])
        entry["weight_init"] = (f"N(0, {LORA_STD}^2) for lora_A and lora_B" if cfg["peft_type"] == "LORA"
                                else f"U{IA3_RANGE} for ia3_l") + f", torch.Generator seed {WEIGHT_SEEDS[adapter]}"
        entry["num_tensors"] = len(keys)
        entry["resolved_modules"] = resolved_modules(peft_model, adapter)
        entry["safetensors_metadata"] = st_meta
        entry["tensors"] = keys
        self.adapters.append(entry)
        self.say(f"  adapter {model_name}/{adapter}: {len(keys)} tensors ({n_params} randomized), "
                 f"{len(entry['resolved_modules'])} modules")
        return entry

    # ----------------------------------------------------------------------

    def check_reload(self, model_name, adapter, feeds, expected):
        """Load the files we wrote into a fresh base model and compare."""
        m = PeftModel.from_pretrained(base_model(model_name), os.path.join(OUT, model_name, adapter),
                                      adapter_name=adapter).eval()
        d = max_diff(run(m, model_name, feeds), expected)
        assert d <= CHECK_TOL, f"reload {model_name}/{adapter}: {d}"
        return d

    def check_merge(self, peft_model, model_name, adapters, feeds, expected):
        m = copy.deepcopy(peft_model).merge_and_unload(adapter_names=list(adapters)).eval()
        d = max_diff(run(m, model_name, feeds), expected)
        assert d <= CHECK_TOL, f"merge {model_name}/{adapters}: {d}"
        return d

    def base_case(self, model_name):
        spec = mf.MODELS[model_name]
        feeds = load_inputs(os.path.join(HERE, f"{model_name}_torchscript", "basic", "inputs"))
        for exp in ("torchscript", "dynamo"):
            other = load_inputs(os.path.join(HERE, f"{model_name}_{exp}", "basic", "inputs"))
            assert all(np.array_equal(feeds[k], other[k]) for k in feeds), exp
        base = run(base_model(model_name), model_name, feeds)
        for exp in ("torchscript", "dynamo"):
            ref = {o: np.load(os.path.join(HERE, f"{model_name}_{exp}", "basic", "torch", f"{o}.npy"))
                   for o in spec["outputs"]}
            d = max_diff(base, ref)
            assert d <= 1e-6, f"{model_name} base differs from {model_name}_{exp} torch reference by {d}"
        inputs = os.path.relpath(os.path.join(HERE, f"{model_name}_torchscript", "basic", "inputs"), HERE)
        self.add_case(model_name, "base", "base", [], inputs, base, None,
                      extra={"note": f"equals {model_name}_torchscript/basic/torch and {model_name}_dynamo/basic/torch"})
        return feeds, inputs, base

    def mixed_case(self, pm, model_name, assignment):
        feeds = mixed_inputs(model_name)
        refdir = os.path.join(OUT, model_name, "refs", "mixed")
        for k, v in feeds.items():
            mf.save_npy(os.path.join(refdir, "inputs", f"{k}.npy"), v)
        assert pm.training is False
        mixed = run(pm, model_name, feeds, adapter_names=list(assignment))
        rows = []
        for i, a in enumerate(assignment):
            if a == "__base__":
                with pm.disable_adapter():
                    rows.append(run(pm, model_name, row(feeds, i)))
            else:
                pm.base_model.set_adapter(a)
                rows.append(run(pm, model_name, row(feeds, i)))
        per_row = collections.OrderedDict((k, np.concatenate([r[k] for r in rows], axis=0)) for k in mixed)
        d_rows = max_diff(mixed, per_row)
        assert d_rows <= CHECK_TOL, f"mixed vs per-row {model_name}: {d_rows}"
        save_outputs(os.path.join(refdir, "per_row"), per_row)
        with pm.disable_adapter():
            base = run(pm, model_name, feeds)
        # delta per row (row of base adapter must not move at all)
        row_delta = [max(float(np.max(np.abs(mixed[k][i] - base[k][i]))) for k in mixed)
                     for i in range(len(assignment))]
        for i, a in enumerate(assignment):
            if a == "__base__":
                assert row_delta[i] <= CHECK_TOL, (model_name, i, row_delta[i])
            else:
                assert row_delta[i] >= MIN_DELTA, (model_name, i, row_delta[i])
        base_dir = os.path.join(refdir, "base")
        save_outputs(base_dir, base)
        self.add_case(
            model_name, "mixed", "mixed",
            collections.OrderedDict(per_row=list(assignment), scale=1.0),
            os.path.relpath(os.path.join(refdir, "inputs"), HERE), mixed, base,
            extra=collections.OrderedDict(
                per_row_outputs=collections.OrderedDict(
                    (k, os.path.relpath(os.path.join(refdir, "per_row", f"{k}.npy"), HERE)) for k in per_row),
                base_outputs=collections.OrderedDict(
                    (k, os.path.relpath(os.path.join(base_dir, f"{k}.npy"), HERE)) for k in base),
                max_abs_diff_mixed_vs_per_row=d_rows,
                max_abs_delta_vs_base_per_row=row_delta,
                note="PEFT mixed-batch inference: model(..., adapter_names=per_row); "
                     "per_row = each row run alone with that adapter (or with adapters disabled for __base__); "
                     "base = whole batch with adapters disabled",
            ))
        self.say(f"    mixed vs per-row max diff {d_rows:.3e}; per-row Δ vs base {row_delta}")
        return d_rows

    # ----------------------------------------------------------------------

    def bert(self):
        self.say("== bert")
        feeds, inputs, base = self.base_case("bert")

        # LoRA adapters, both in one PeftModel (needed for two_adapters and mixed).
        cfgs = ADAPTERS["bert"]
        pm = get_peft_model(base_model("bert"), cfgs["lora_qv_r8"](), adapter_name="lora_qv_r8")
        n1 = randomize_adapter(pm, "lora_qv_r8")
        pm.add_adapter("rslora_r16", cfgs["rslora_r16"]())
        n2 = randomize_adapter(pm, "rslora_r16")
        pm.eval()
        a1 = self.add_adapter(pm, "bert", "lora_qv_r8", n1)
        a2 = self.add_adapter(pm, "bert", "rslora_r16", n2)

        # the patterns must have taken effect
        mods = {m["module"]: m for m in a2["resolved_modules"]}
        assert mods["encoder.layer.1.attention.self.query"]["r"] == 4
        assert mods["encoder.layer.0.attention.self.query"]["r"] == 16
        assert mods["encoder.layer.0.intermediate.dense"]["lora_alpha"] == 32
        assert mods["encoder.layer.0.intermediate.dense"]["scaling"] == 32 / 4
        assert mods["encoder.layer.1.attention.self.query"]["scaling"] == 8 / 2
        assert mods["encoder.layer.0.attention.self.key"]["scaling"] == 8 / 4
        t = a2["tensors"]
        assert t["base_model.model.encoder.layer.1.attention.self.query.lora_A.weight"] == [4, 64]
        assert t["base_model.model.encoder.layer.0.attention.self.query.lora_A.weight"] == [16, 64]

        self.merge_diffs = {}
        self.reload_diffs = {}
        for name in ("lora_qv_r8", "rslora_r16"):
            pm.base_model.set_adapter(name)
            out = run(pm, "bert", feeds)
            assert min_output_delta(out, base) >= MIN_DELTA, name
            self.merge_diffs[f"bert/{name}"] = self.check_merge(pm, "bert", [name], feeds, out)
            self.reload_diffs[f"bert/{name}"] = self.check_reload("bert", name, feeds, out)
            self.add_case("bert", name, name, [collections.OrderedDict(name=name, scale=1.0)], inputs, out, base,
                          extra={"max_abs_diff_merged_vs_unmerged": self.merge_diffs[f"bert/{name}"]})

        # two adapters at once, the second with its scaling halved.
        pm.base_model.set_adapter(["lora_qv_r8", "rslora_r16"])
        saved = {}
        for mname, m in pm.named_modules():
            if isinstance(m, LoraLayer) and "rslora_r16" in m.scaling:
                saved[mname] = m.scaling["rslora_r16"]
                m.scaling["rslora_r16"] = m.scaling["rslora_r16"] * 0.5
        assert saved
        two = run(pm, "bert", feeds)
        d_merge_two = self.check_merge(pm, "bert", ["lora_qv_r8", "rslora_r16"], feeds, two)
        for mname, m in pm.named_modules():
            if mname in saved:
                m.scaling["rslora_r16"] = saved[mname]
        self.merge_diffs["bert/two_adapters"] = d_merge_two
        assert min_output_delta(two, base) >= MIN_DELTA
        self.add_case("bert", "lora_qv_r8+0.5*rslora_r16", "two_adapters",
                      [collections.OrderedDict(name="lora_qv_r8", scale=1.0),
                       collections.OrderedDict(name="rslora_r16", scale=0.5)],
                      inputs, two, base,
                      extra={"formula": "y = W x + 1.0*s1*B1 A1 x + 0.5*s2*B2 A2 x on every targeted Linear "
                                        "(s = PEFT scaling incl. rslora/rank/alpha patterns)",
                             "how": "base_model.set_adapter([both]); LoraLayer.scaling['rslora_r16'] *= 0.5 "
                                    "on every LoRA layer (restored afterwards)",
                             "max_abs_diff_merged_vs_unmerged": d_merge_two})

        self.mixed_diffs = {"bert": self.mixed_case(pm, "bert", ["lora_qv_r8", "__base__", "rslora_r16"])}

        # IA3 (separate PeftModel: one tuner type per PeftModel).
        pm3 = get_peft_model(base_model("bert"), cfgs["ia3"](), adapter_name="ia3")
        n3 = randomize_adapter(pm3, "ia3")
        pm3.eval()
        a3 = self.add_adapter(pm3, "bert", "ia3", n3)
        ff = sorted(m["module"] for m in a3["resolved_modules"] if m["is_feedforward"])
        a3["feedforward_resolution"] = (
            "PEFT IA3 list matching: a module is targeted if its name ends with '.<target>' and is feedforward "
            "if its name ends with '<feedforward entry>' (plain endswith). 'output.dense' therefore matches both "
            "encoder.layer.N.attention.output.dense and encoder.layer.N.output.dense: both are feedforward "
            "(ia3_l shape [1, in_features], scales the INPUT of the Linear); key/value scale the OUTPUT "
            "(ia3_l shape [out_features, 1]).")
        a3["feedforward_module_names"] = ff
        out = run(pm3, "bert", feeds)
        assert min_output_delta(out, base) >= MIN_DELTA
        self.merge_diffs["bert/ia3"] = self.check_merge(pm3, "bert", ["ia3"], feeds, out)
        self.reload_diffs["bert/ia3"] = self.check_reload("bert", "ia3", feeds, out)
        self.add_case("bert", "ia3", "ia3", [collections.OrderedDict(name="ia3", scale=1.0)], inputs, out, base,
                      extra={"max_abs_diff_merged_vs_unmerged": self.merge_diffs["bert/ia3"]})

    def llama(self):
        self.say("== llama")
        feeds, inputs, base = self.base_case("llama")
        pm = get_peft_model(base_model("llama"), ADAPTERS["llama"]["lora_qvo_r8"](), adapter_name="lora_qvo_r8")
        n = randomize_adapter(pm, "lora_qvo_r8")
        pm.eval()
        self.add_adapter(pm, "llama", "lora_qvo_r8", n)
        out = run(pm, "llama", feeds)
        assert min_output_delta(out, base) >= MIN_DELTA
        self.merge_diffs["llama/lora_qvo_r8"] = self.check_merge(pm, "llama", ["lora_qvo_r8"], feeds, out)
        self.reload_diffs["llama/lora_qvo_r8"] = self.check_reload("llama", "lora_qvo_r8", feeds, out)
        self.add_case("llama", "lora_qvo_r8", "lora_qvo_r8", [collections.OrderedDict(name="lora_qvo_r8", scale=1.0)],
                      inputs, out, base,
                      extra={"max_abs_diff_merged_vs_unmerged": self.merge_diffs["llama/lora_qvo_r8"]})
        self.mixed_diffs["llama"] = self.mixed_case(pm, "llama", ["lora_qvo_r8", "__base__", "lora_qvo_r8"])


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)

    b = Builder()
    b.bert()
    b.llama()

    manifest = collections.OrderedDict(
        generator="Tests/Fixtures/make_adapter_fixtures.py",
        paths_relative_to="Tests/Fixtures",
        versions=collections.OrderedDict(
            torch=torch.__version__, peft=peft.__version__, transformers=transformers.__version__,
            safetensors=safetensors.__version__, numpy=np.__version__,
        ),
        tolerance=TOLERANCE,
        notes=[
            "Base models are the bert/llama fixtures of make_fixtures.py (same seed); PEFT was applied to the inner "
            "transformers model (BertModel / LlamaForCausalLM), so keys read base_model.model.<module>.lora_A.weight "
            "and the adapter name is not part of the saved keys.",
            "Every adapter weight was overwritten with fixed-seed random values (PEFT would initialise lora_B=0 "
            "and ia3_l=1).",
            "References are PyTorch + PEFT, float32, eval mode, no grad, unmerged adapters; they apply to both the "
            "torchscript and the dynamo export of the model.",
            "LoRA: y = W x + b + sum_i scale_i * s_i * B_i A_i x with s = lora_alpha/r, or lora_alpha/sqrt(r) when "
            "use_rslora; r/alpha per module from rank_pattern/alpha_pattern (see resolved_modules).",
            "IA3: non-feedforward: y = (W x + b) * l (l shape [out,1]); feedforward: y = W (x * l) + b "
            "(l shape [1,in]).",
        ],
        adapters=b.adapters,
        cases=b.cases,
        checks=collections.OrderedDict(
            max_abs_diff_merged_vs_unmerged=b.merge_diffs,
            max_abs_diff_reloaded_vs_reference=b.reload_diffs,
            max_abs_diff_mixed_vs_per_row=b.mixed_diffs,
        ),
    )
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print("checks:", json.dumps(manifest["checks"], indent=1))


if __name__ == "__main__":
    sys.exit(main())
