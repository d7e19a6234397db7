"""Loads a model, runs it on a folder of <input name>.npy files and prints each output.

    python3 bindings/python/examples/run_fixture.py Tests/Fixtures/bert_torchscript/model.onnx \\
        Tests/Fixtures/bert_torchscript/basic/inputs
"""
import os
import sys

import numpy as np

import graft

model_path, input_dir = sys.argv[1], sys.argv[2]
with graft.Model(model_path) as model:
    print("graft", graft.version())
    for info in model.inputs:
        print("input ", info.name, info.dtype, info.shape)
    inputs = {i.name: np.load(os.path.join(input_dir, i.name + ".npy")) for i in model.inputs}
    with model.session(threads=2) as session:
        for name, value in session.run(inputs).items():
            print("output", name, value.dtype, value.shape, value.ravel()[:4])
