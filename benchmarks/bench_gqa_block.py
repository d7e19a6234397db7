"""One layer's grouped-query attention block of a Llama decode step, Graft next to ONNX Runtime.

The block as transformers' TorchScript export writes it (12 query heads, 4 K/V heads, head dim
64): present K/V = Concat(past, new); repeat_kv = Unsqueeze → Expand → Reshape; scores
Q·Transpose(K); Softmax; P·V. It isolates what issue 5's decode step spends outside the weight
GEMMs in attention (Graft: `graft:GroupedMatMul`, docs/ARCHITECTURE.md "Fusions").

    python benchmarks/bench_gqa_block.py --graft .build-bench/release/graft [--graft-b OTHER/graft]

Writes the model to --model (default /tmp/graft-gqa-block.onnx), runs `graft bench` on it (each
binary given) and ONNX Runtime on the same shapes and thread count, and prints the median ms per
run and the ratios. Not a test.
"""
import argparse, re, subprocess, time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper


def make_model(path, heads=12, kv_heads=4, d=64):
    g = heads // kv_heads
    nodes = [helper.make_node("Concat", ["kp", "kn"], ["pk"], axis=2), helper.make_node("Concat", ["vp", "vn"], ["pv"], axis=2)]
    for x, t in (("pk", "k"), ("pv", "v")):
        nodes += [helper.make_node("Unsqueeze", [x, "ax2"], ["u" + t]), helper.make_node("Expand", ["u" + t, "es"], ["e" + t]),
                  helper.make_node("Reshape", ["e" + t, "rs"], ["r" + t])]
    nodes += [helper.make_node("Transpose", ["rk"], ["tk"], perm=[0, 1, 3, 2]), helper.make_node("MatMul", ["q", "tk"], ["s"]),
              helper.make_node("Softmax", ["s"], ["p"], axis=-1), helper.make_node("MatMul", ["p", "rv"], ["o"])]
    inits = [helper.make_tensor("ax2", TensorProto.INT64, [1], [2]), helper.make_tensor("es", TensorProto.INT64, [5], [1, 1, g, 1, 1]),
             helper.make_tensor("rs", TensorProto.INT64, [4], [0, heads, -1, d])]
    vi = lambda n, dims: helper.make_tensor_value_info(n, TensorProto.FLOAT, dims)
    inputs = [vi("q", ["batch", heads, "sequence", d])] + [vi(n, ["batch", kv_heads, "past", d]) for n in ("kp", "vp")] \
        + [vi(n, ["batch", kv_heads, "sequence", d]) for n in ("kn", "vn")]
    graph = helper.make_graph(nodes, "gqa_block", inputs, [vi("o", None), vi("pk", None), vi("pv", None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def graft_median(binary, model, heads, d, past, threads, iterations):
    out = subprocess.run([binary, "bench", model, "--shape", f"q=1x{heads}x1x{d}", "--dim", f"past={past}",
                          "--threads", str(threads), "--iterations", str(iterations)], capture_output=True, text=True, check=True).stdout
    steps = re.search(r"^steps\s+(\d+)", out, re.M).group(1)
    return float(re.search(r"median ([0-9.]+) ms", out).group(1)), steps


def ort_median(model, heads, kv_heads, d, past, threads, iterations):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {"q": rng.standard_normal((1, heads, 1, d), dtype=np.float32)}
    for n in ("kp", "vp"):
        feed[n] = rng.standard_normal((1, kv_heads, past, d), dtype=np.float32)
    for n in ("kn", "vn"):
        feed[n] = rng.standard_normal((1, kv_heads, 1, d), dtype=np.float32)
    for _ in range(20):
        sess.run(None, feed)
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--graft", required=True)
    ap.add_argument("--graft-b", help="a second graft binary to compare (e.g. main's)")
    ap.add_argument("--model", default="/tmp/graft-gqa-block.onnx")
    ap.add_argument("--past", type=int, default=127)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=2000)
    args = ap.parse_args()
    heads, kv_heads, d = 12, 4, 64
    make_model(args.model, heads, kv_heads, d)
    ref = ort_median(args.model, heads, kv_heads, d, args.past, args.threads, args.iterations)
    print(f"GQA block, H={heads} KVH={kv_heads} D={d} past={args.past} threads={args.threads}")
    print(f"  onnxruntime  {ref:.4f} ms")
    for b in [args.graft] + ([args.graft_b] if args.graft_b else []):
        ms, steps = graft_median(b, args.model, heads, d, args.past, args.threads, args.iterations)
        print(f"  graft        {ms:.4f} ms  ({steps} steps; {ms / ref:.2f}× ORT)  {b}")


if __name__ == "__main__":
    main()
