"""Tests of the Python binding: fixture results equal the references (and the Swift API's,
through the graft CLI when GRAFT_CLI is set), errors raise GraftError, close is idempotent,
sessions on several threads over one shared model agree."""
import glob
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import graft
from conftest import FIXTURES, PASSTHROUGH, fixture_cases


def load_case(case_dir, ref="ort"):
    inputs = {os.path.basename(p)[:-4]: np.load(p) for p in glob.glob(os.path.join(case_dir, "inputs", "*.npy"))}
    refs = {os.path.basename(p)[:-4]: np.load(p) for p in glob.glob(os.path.join(case_dir, ref, "*.npy"))}
    return inputs, refs


def test_versions():
    assert graft.version() == "0.1.0"
    assert graft.abi_version() == 1


def test_passthrough_introspection_and_run():
    with graft.Model(PASSTHROUGH) as model:
        assert [i.name for i in model.inputs] == ["x", "ids"]
        assert model.inputs[0].dtype == np.float32 and model.inputs[0].shape == ("batch", 4)
        assert model.outputs[1] == graft.TensorInfo("ids", np.dtype(np.int64), (3,))
        x = np.arange(12, dtype=np.float32).reshape(3, 4)
        with model.session(threads=2) as s:
            out = s.run({"x": x, "ids": [7, 8, 9]})
        assert np.array_equal(out["x"], x) and out["x"].dtype == np.float32
        assert np.array_equal(out["ids"], [7, 8, 9])
        # Non-contiguous and byte-swapped inputs are converted.
        xt = np.asfortranarray(x)
        out = model.run({"x": xt, "ids": np.array([1, 2, 3], dtype=">i8")})
        assert np.array_equal(out["x"], x) and np.array_equal(out["ids"], [1, 2, 3])
        # An empty batch.
        out = model.run({"x": np.zeros((0, 4), np.float32), "ids": [1, 2, 3]})
        assert out["x"].shape == (0, 4)


def test_from_bytes():
    with open(PASSTHROUGH, "rb") as f:
        model = graft.Model.from_bytes(f.read())
    assert model.run({"x": np.ones((1, 4), np.float32), "ids": [0, 0, 0]})["x"].shape == (1, 4)
    model.close()


@pytest.mark.parametrize("model_path,case_dir,tol", list(fixture_cases()))
def test_fixture_matches_reference(model_path, case_dir, tol):
    inputs, refs = load_case(case_dir)
    with graft.Model(model_path) as model:
        assert {i.name for i in model.inputs} == set(inputs)
        with model.session(threads=2) as s:
            out = s.run(inputs)
    assert set(out) == set(refs)
    for name, ref in refs.items():
        assert out[name].shape == ref.shape and out[name].dtype == ref.dtype
        np.testing.assert_allclose(out[name], ref, rtol=0, atol=tol, err_msg=name)


@pytest.mark.skipif(not os.environ.get("GRAFT_CLI"), reason="GRAFT_CLI (path of the graft CLI) not set")
@pytest.mark.parametrize("model_path,case_dir,tol", list(fixture_cases())[::2])
def test_fixture_equals_swift_api(model_path, case_dir, tol, tmp_path):
    """The binding and the Swift API (through the graft CLI) give bit-identical outputs."""
    inputs, _ = load_case(case_dir)
    subprocess.run([os.environ["GRAFT_CLI"], "run", model_path, "--input-dir", os.path.join(case_dir, "inputs"),
                    "--output-dir", str(tmp_path)], check=True, capture_output=True)
    out = graft.Model(model_path).run(inputs)
    for name, value in out.items():
        swift = np.load(tmp_path / (name.replace(":", "_").replace("/", "_") + ".npy"))
        assert np.array_equal(value, swift), name


def test_errors_raise_graft_error():
    with pytest.raises(graft.GraftError) as e:
        graft.Model("/nonexistent/model.onnx")
    assert e.value.code == graft.STATUS_IO and "/nonexistent/model.onnx" in e.value.message
    with pytest.raises(graft.GraftError) as e:
        graft.Model.from_bytes(b"not an onnx file")
    assert e.value.code == graft.STATUS_INVALID_MODEL
    with pytest.raises(graft.GraftError) as e:
        graft.Model(os.path.join(FIXTURES, "bert_dynamo", "model.onnx"), external_data=False)
    assert e.value.code == graft.STATUS_INVALID_MODEL and "external" in e.value.message
    with pytest.raises(TypeError):
        graft.Model(PASSTHROUGH, no_such_option=1)
    model = graft.Model(PASSTHROUGH)
    s = model.session()
    x = np.ones((2, 4), np.float32)
    cases = [
        ({"x": x}, graft.STATUS_INVALID_ARGUMENT, "'ids' is missing"),
        ({"x": x, "ids": [1, 2, 3], "z": x}, graft.STATUS_INVALID_ARGUMENT, "n_inputs is 3"),
        ({"x": x, "zz": [1, 2, 3]}, graft.STATUS_INVALID_ARGUMENT, "'zz' is not one of"),
        ({"x": x.astype(np.float64), "ids": [1, 2, 3]}, graft.STATUS_INVALID_ARGUMENT, "must be float32"),
        ({"x": np.ones((2, 4, 1), np.float32), "ids": [1, 2, 3]}, graft.STATUS_INVALID_ARGUMENT, "rank 2"),
        ({"x": np.ones((2, 5), np.float32), "ids": [1, 2, 3]}, graft.STATUS_INVALID_ARGUMENT, "dimension 1 must be 4"),
        ({"x": x, "ids": np.ones(3, np.complex64)}, graft.STATUS_INVALID_ARGUMENT, "no Graft equivalent"),
    ]
    for inputs, code, fragment in cases:
        with pytest.raises(graft.GraftError) as e:
            s.run(inputs)
        assert e.value.code == code and fragment in e.value.message, (inputs.keys(), e.value)
    with pytest.raises(graft.GraftError):
        model.session(threads=0)
    s.close()
    with pytest.raises(graft.GraftError):
        s.run({"x": x, "ids": [1, 2, 3]})
    model.close()
    with pytest.raises(graft.GraftError):
        model.session()


def test_close_twice_and_context_managers():
    model = graft.Model(PASSTHROUGH)
    s = model.session()
    model.run({"x": np.ones((1, 4), np.float32), "ids": [1, 2, 3]})
    model.close()
    model.close()
    # A session outlives the model object's close (the library keeps the model alive).
    assert s.run({"x": np.ones((1, 4), np.float32), "ids": [1, 2, 3]})["ids"].tolist() == [1, 2, 3]
    s.close()
    s.close()
    with graft.Model(PASSTHROUGH) as m, m.session() as s2:
        pass
    s2.close()
    m.close()
    del m, s2  # __del__ after close is a no-op


def _threads_agree(model, inputs, n_threads=4, runs=3):
    expected = model.session().run(inputs)
    results, errors = [None] * n_threads, []

    def work(i):
        try:
            with model.session(threads=1) as s:
                for _ in range(runs):
                    results[i] = s.run(inputs)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for r in results:
        for name, value in expected.items():
            assert np.array_equal(r[name], value), name


def test_threads_share_one_model_passthrough():
    with graft.Model(PASSTHROUGH) as model:
        _threads_agree(model, {"x": np.random.rand(64, 4).astype(np.float32), "ids": [1, 2, 3]})


@pytest.mark.parametrize("model_path,case_dir,tol", list(fixture_cases())[:1])
def test_threads_share_one_model_fixture(model_path, case_dir, tol):
    inputs, _ = load_case(case_dir)
    with graft.Model(model_path) as model:
        _threads_agree(model, inputs)


def test_model_run_from_threads_is_serialised():
    with graft.Model(PASSTHROUGH) as model:
        errors = []

        def work():
            try:
                for _ in range(50):
                    model.run({"x": np.ones((8, 4), np.float32), "ids": [1, 2, 3]})
            except Exception as e:  # pragma: no cover
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors


def test_library_not_found_message():
    env = dict(os.environ, GRAFT_LIBRARY="/nonexistent/libgraft.so")
    r = subprocess.run([sys.executable, "-c", "import graft"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "GRAFT_LIBRARY='/nonexistent/libgraft.so' could not be loaded" in r.stderr
