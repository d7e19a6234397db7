import json
import os

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FIXTURES = os.environ.get("GRAFT_FIXTURES", os.path.join(REPO, "Tests", "Fixtures"))
PASSTHROUGH = os.path.join(REPO, "Tests", "ABI", "passthrough.onnx")


def fixture_cases():
    """(model name, model path, case dir, tolerance) for every case in the manifest."""
    with open(os.path.join(FIXTURES, "manifest.json")) as f:
        manifest = json.load(f)
    for fx in manifest["fixtures"]:
        for case in fx["cases"]:
            yield pytest.param(os.path.join(FIXTURES, fx["model"]), os.path.join(FIXTURES, fx["name"], case),
                               fx["tolerance"], id=f"{fx['name']}-{case}")
