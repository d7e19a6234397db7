"""Writes the seed corpora under Tests/Fuzz/corpus/ (small files only; run by hand, no onnx or
torch needed: ONNX is encoded by hand as in Tests/ABI/make_models.py).

- model_load/: tiny ONNX models touching the importer and most kernel families (MatMul/Gemm
  sites, Gather, LayerNormalization, Softmax, the exporters' Shape->Gather->Concat->Reshape
  chains, Conv, reductions, Where/Expand/Slice/Range, initializers as raw and typed data,
  float16 initializers, symbolic dims), plus the ABI tests' passthrough and unsupported models.
- adapter_load/: the shipped PEFT fixtures (adapter_config.json + SPLIT +
  adapter_model.safetensors) for the bert fixtures, and small hand-made LoRA/IA3 ones and
  MoE-LoRA ones (one per router gate).
- npy/ is not written here: its eleven arrays (every supported dtype, format versions 1-3, a
  scalar, an empty array, a fixture input) were saved once with numpy.save /
  numpy.lib.format.write_array.
Run: python3 Tests/Fuzz/make_seeds.py
"""
import io, json, os, struct, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Fixtures"))
from onnx_encoding import dim, field, string, value_info, varint  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(ROOT))
SPLIT = b"\n@@SAFETENSORS@@\n"

FLOAT, INT64, FLOAT16 = 1, 7, 10

def tensor(name, dims, values, elem=FLOAT, typed=False):
    t = b"".join(field(1, 0, d) for d in dims) + field(2, 0, elem) + string(8, name)
    if typed and elem == INT64:
        t += field(7, 2, b"".join(varint(v) for v in values))
    elif typed and elem == FLOAT:
        t += field(4, 2, b"".join(struct.pack("<f", v) for v in values))
    else:
        fmt = {FLOAT: "<f", INT64: "<q", FLOAT16: "<e"}[elem]
        t += field(9, 2, b"".join(struct.pack(fmt, v) for v in values))
    return t

def attr_int(name, v):
    return string(1, name) + field(3, 0, v) + field(20, 0, 2)

def attr_float(name, v):
    return string(1, name) + varint((2 << 3) | 5) + struct.pack("<f", v) + field(20, 0, 1)

def attr_ints(name, vs):
    return string(1, name) + b"".join(field(8, 0, v) for v in vs) + field(20, 0, 7)

def attr_tensor(name, t):
    return string(1, name) + field(5, 2, t) + field(20, 0, 4)

def node(op, inputs, outputs, attrs=(), name=None):
    n = b"".join(string(1, i) for i in inputs) + b"".join(string(2, o) for o in outputs)
    n += string(3, name or (op.lower() + "_" + outputs[0])) + string(4, op)
    n += b"".join(field(5, 2, a) for a in attrs)
    return n

def model(nodes, inputs, outputs, inits=(), opset=17, name="g"):
    g = b"".join(field(1, 2, n) for n in nodes) + string(2, name)
    g += b"".join(field(5, 2, t) for t in inits)
    g += b"".join(field(11, 2, i) for i in inputs) + b"".join(field(12, 2, o) for o in outputs)
    return field(1, 0, 8) + field(8, 2, string(1, "") + field(2, 0, opset)) + field(7, 2, g)

def seq(n, scale=0.1):
    return [((i * 7) % 11 - 5) * scale for i in range(n)]

models = {}
# A linear site with bias (MatMul + Add), named like a parameter path.
models["linear_site"] = model(
    [node("MatMul", ["x", "encoder.layer.0.query.weight"], ["mm"]), node("Add", ["mm", "encoder.layer.0.query.bias"], ["y"])],
    [value_info("x", FLOAT, ["batch", "sequence", 4])], [value_info("y", FLOAT, ["batch", "sequence", 3])],
    [tensor("encoder.layer.0.query.weight", [4, 3], seq(12)), tensor("encoder.layer.0.query.bias", [3], [0.1, 0.2, 0.3])])
# Embedding gather + LayerNorm + Gemm (transB) + Softmax.
models["embed_ln_gemm_softmax"] = model(
    [node("Gather", ["emb", "ids"], ["e"], [attr_int("axis", 0)]),
     node("LayerNormalization", ["e", "g", "b"], ["ln"], [attr_int("axis", -1), attr_float("epsilon", 1e-5)]),
     node("Gemm", ["ln", "w", "c"], ["gm"], [attr_int("transB", 1)]),
     node("Softmax", ["gm"], ["y"], [attr_int("axis", -1)])],
    [value_info("ids", INT64, ["n"])], [value_info("y", FLOAT, ["n", 2])],
    [tensor("emb", [5, 4], seq(20)), tensor("g", [4], [1, 1, 1, 1], typed=True), tensor("b", [4], [0, 0, 0, 0]),
     tensor("w", [2, 4], seq(8)), tensor("c", [2], [0.5, -0.5])])
# The exporters' shape chain: Shape -> Gather -> Unsqueeze -> Concat -> Reshape, Transpose.
models["shape_chain_reshape"] = model(
    [node("Shape", ["x"], ["s"]), node("Gather", ["s", "zero"], ["b"], [attr_int("axis", 0)]),
     node("Unsqueeze", ["b", "axes"], ["bu"]), node("Concat", ["bu", "rest"], ["ns"], [attr_int("axis", 0)]),
     node("Reshape", ["x", "ns"], ["r"]), node("Transpose", ["r"], ["y"], [attr_ints("perm", [0, 2, 1])])],
    [value_info("x", FLOAT, ["batch", 6])], [value_info("y", FLOAT, ["batch", 3, 2])],
    [tensor("zero", [], [0], INT64), tensor("axes", [1], [0], INT64, typed=True), tensor("rest", [2], [2, 3], INT64)])
# Attention-mask arithmetic: Cast, Sub, Mul, Unsqueeze, Where/Equal, Expand.
models["mask_where_expand"] = model(
    [node("Cast", ["m"], ["mf"], [attr_int("to", FLOAT)]), node("Sub", ["one", "mf"], ["inv"]),
     node("Mul", ["inv", "big"], ["neg"]), node("Equal", ["m", "zero"], ["eq"]),
     node("Where", ["eq", "neg", "mf"], ["w"]), node("Expand", ["w", "shape"], ["y"])],
    [value_info("m", INT64, ["batch", "sequence"])], [value_info("y", FLOAT, [2, "batch", "sequence"])],
    [tensor("one", [], [1.0]), tensor("big", [], [-10000.0]), tensor("zero", [], [0], INT64),
     tensor("shape", [3], [2, 1, 1], INT64)])
# Conv + Relu + ReduceMean + Flatten.
models["conv_reduce"] = model(
    [node("Conv", ["x", "w", "b"], ["c"], [attr_ints("kernel_shape", [2, 2]), attr_ints("strides", [1, 1]), attr_ints("pads", [0, 0, 0, 0])]),
     node("Relu", ["c"], ["r"]), node("ReduceMean", ["r"], ["m"], [attr_ints("axes", [2, 3]), attr_int("keepdims", 0)]) ,
     node("Flatten", ["m"], ["y"], [attr_int("axis", 1)])],
    [value_info("x", FLOAT, ["batch", 1, 4, 4])], [value_info("y", FLOAT, ["batch", 2])],
    [tensor("w", [2, 1, 2, 2], seq(8)), tensor("b", [2], [0.0, 0.1])], opset=13)
# Range / Slice / Concat / Split / CumSum / Tile / Pad / Trilu.
models["range_slice_misc"] = model(
    [node("Range", ["start", "limit", "delta"], ["r"]), node("Cast", ["r"], ["rf"], [attr_int("to", FLOAT)]),
     node("Slice", ["rf", "s0", "s1", "sax"], ["sl"]), node("Concat", ["sl", "x"], ["cat"], [attr_int("axis", 0)]),
     node("CumSum", ["cat", "cax"], ["cs"]), node("Tile", ["cs", "reps"], ["t"]),
     node("Pad", ["t", "pads"], ["p"]), node("Split", ["p"], ["y", "z"], [attr_int("axis", 0)])],
    [value_info("x", FLOAT, ["n"])], [value_info("y", FLOAT, None or []), value_info("z", FLOAT, [])],
    [tensor("start", [], [0], INT64), tensor("limit", [], [6], INT64), tensor("delta", [], [1], INT64),
     tensor("s0", [1], [1], INT64), tensor("s1", [1], [5], INT64), tensor("sax", [1], [0], INT64),
     tensor("cax", [], [0], INT64), tensor("reps", [1], [2], INT64), tensor("pads", [2], [1, 1], INT64)])
# Elementwise math on float16 initializers (widened at load), Gelu-style Erf, Pow, Sqrt, Div.
models["f16_math"] = model(
    [node("Mul", ["x", "h"], ["a"]), node("Erf", ["a"], ["e"]), node("Pow", ["e", "two"], ["p"]),
     node("Sqrt", ["p"], ["s"]), node("Div", ["s", "h"], ["d"]), node("Tanh", ["d"], ["t"]),
     node("ReduceSum", ["t", "rax"], ["y"], [attr_int("keepdims", 1)]), ],
    [value_info("x", FLOAT, ["batch", 3])], [value_info("y", FLOAT, ["batch", 1])],
    [tensor("h", [3], [0.5, 1.5, -2.0], FLOAT16), tensor("two", [], [2.0]), tensor("rax", [1], [1], INT64)])
# ConstantOfShape + Constant node with a tensor attribute + ArgMax + GatherElements.
models["constant_argmax"] = model(
    [node("Constant", [], ["k"], [attr_tensor("value", tensor("kv", [2], [2, 3], INT64))]),
     node("ConstantOfShape", ["k"], ["z"], [attr_tensor("value", tensor("zv", [1], [0.25]))]),
     node("Add", ["z", "x"], ["a"]), node("ArgMax", ["a"], ["am"], [attr_int("axis", 1), attr_int("keepdims", 1)]),
     node("GatherElements", ["a", "am"], ["y"], [attr_int("axis", 1)])],
    [value_info("x", FLOAT, [2, 3])], [value_info("y", FLOAT, [2, 1])])

os.makedirs(os.path.join(ROOT, "corpus", "model_load"), exist_ok=True)
for name, data in models.items():
    open(os.path.join(ROOT, "corpus", "model_load", name + ".onnx"), "wb").write(data)
abi = os.path.join(REPO, "Tests", "ABI", "passthrough.onnx")
open(os.path.join(ROOT, "corpus", "model_load", "passthrough.onnx"), "wb").write(open(abi, "rb").read())

# Adapters: shipped fixtures + small hand-made ones for the bert fixture's sites.
def safetensors(tensors, metadata=None):
    header, blobs, off = {}, b"", 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs += data
        off += len(data)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + blobs

out = os.path.join(ROOT, "corpus", "adapter_load")
os.makedirs(out, exist_ok=True)
fx = os.path.join(REPO, "Tests", "Fixtures", "adapters", "bert")
for name in ["lora_qv_r8", "ia3", "rslora_r16"]:
    cfg = open(os.path.join(fx, name, "adapter_config.json"), "rb").read()
    st = open(os.path.join(fx, name, "adapter_model.safetensors"), "rb").read()
    if len(st) <= 64 << 10:
        open(os.path.join(out, name), "wb").write(cfg + SPLIT + st)

def floats(n, dtype="F32"):
    vals = seq(n, 0.01)
    if dtype == "F32":
        return b"".join(struct.pack("<f", v) for v in vals)
    if dtype == "F16":
        return b"".join(struct.pack("<e", v) for v in vals)
    if dtype == "BF16":
        return b"".join(struct.pack("<f", v)[2:] for v in vals)
    return b"".join(struct.pack("<d", v) for v in vals)

base = "base_model.model.encoder.layer.0.attention.self.query"
sizes = json.load(open(os.path.join(fx, "lora_qv_r8", "adapter_config.json")))
lora_cfg = {"peft_type": "LORA", "r": 1, "lora_alpha": 2, "target_modules": ["query"], "use_rslora": False,
            "fan_in_fan_out": False, "bias": "none"}
# hidden size of the bert fixtures: read from the shipped lora A shape
import re
hdr_len = struct.unpack("<Q", open(os.path.join(fx, "lora_qv_r8", "adapter_model.safetensors"), "rb").read(8))[0]
hdr = json.loads(open(os.path.join(fx, "lora_qv_r8", "adapter_model.safetensors"), "rb").read(8 + hdr_len)[8:])
a_key = next(k for k in hdr if k.endswith("lora_A.weight"))
hidden = hdr[a_key]["shape"][1]
mod = a_key[: -len(".lora_A.weight")]
for dtype in ["F32", "F16", "BF16", "F64"]:
    st = safetensors({mod + ".lora_A.weight": (dtype, [1, hidden], floats(hidden, dtype)),
                      mod + ".lora_B.weight": (dtype, [hidden, 1], floats(hidden, dtype))},
                     metadata={"format": "pt"} if dtype == "F32" else None)
    open(os.path.join(out, "lora_r1_" + dtype.lower()), "wb").write(json.dumps(lora_cfg).encode() + SPLIT + st)
ia3_cfg = {"peft_type": "IA3", "target_modules": ["key", "value", "output.dense"], "feedforward_modules": ["output.dense"],
           "fan_in_fan_out": False}
ia3_key = mod.replace("query", "key").replace("lora_A", "") + ".ia3_l"
st = safetensors({ia3_key: ("F32", [hidden, 1], floats(hidden))})
open(os.path.join(out, "ia3_one"), "wb").write(json.dumps(ia3_cfg).encode() + SPLIT + st)
# MoE-LoRA (Plugins/MoELoRA, peft_type GRAFT_MOE_LORA): the smallest shipped fixture, and one
# small mixture per router gate on the first query (2 experts, rank 1; F16/BF16 weights and a
# missing bias in some) so mutations reach every branch of the plugin's config and key parsing
# and the host's add_router / routed add_lowrank.
for name in ["moe_e1_lora_qv_r8"]:
    cfg = open(os.path.join(fx, name, "adapter_config.json"), "rb").read()
    st = open(os.path.join(fx, name, "adapter_model.safetensors"), "rb").read()
    open(os.path.join(out, name), "wb").write(cfg + SPLIT + st)
gates = {"topk": {"gate": "topk", "top_k": 1, "renormalize": True, "bias": True},
         "softmax": {"gate": "softmax", "bias": False},
         "threshold": {"gate": "threshold", "threshold": 0.3, "renormalize": False, "bias": True},
         "sigmoid": {"gate": "sigmoid", "bias": True}}
for (gate, router), dtype in zip(gates.items(), ["F32", "F16", "BF16", "F32"]):
    cfg = {"peft_type": "GRAFT_MOE_LORA", "r": 1, "lora_alpha": 2, "num_experts": 2, "router": router,
           "target_modules": ["query"]}
    tensors = {mod + ".router.weight": (dtype, [2, hidden], floats(2 * hidden, dtype))}
    if router["bias"]:
        tensors[mod + ".router.bias"] = (dtype, [2], floats(2, dtype))
    for e in range(2):
        tensors[f"{mod}.experts.{e}.lora_A.weight"] = (dtype, [1, hidden], floats(hidden, dtype))
        tensors[f"{mod}.experts.{e}.lora_B.weight"] = (dtype, [hidden, 1], floats(hidden, dtype))
    st = safetensors(tensors, metadata={"format": "pt"})
    open(os.path.join(out, "moe_" + gate), "wb").write(json.dumps(cfg).encode() + SPLIT + st)
print("seeds written:", sorted(os.listdir(os.path.join(ROOT, "corpus", "model_load"))), sorted(os.listdir(out)))
