"""The classic ONNX vision models at opset 9, as the onnx package ships them (``backend/test/data/light``: the
architectures of the ONNX model zoo with their weights made small): every one imports, except those with LRN,
which are refused for LRN alone, with what to retrain with."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from neurodeploy.errors import UnsupportedOpError
from neurodeploy.frontend.onnx.importer import UPGRADE_TO, import_onnx

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
IMPORTS = ("densenet121", "inception_v2", "resnet50", "shufflenet", "squeezenet", "vgg19")
HAVE_LRN = ("bvlc_alexnet", "inception_v1", "zfnet512")


@pytest.mark.parametrize("name", IMPORTS)
def test_a_classic_model_at_opset_9_imports(name):
    graph = import_onnx(LIGHT / f"light_{name}.onnx")
    assert graph.meta["source"] == {"format": "onnx", "opset": 9, "upgraded_to": UPGRADE_TO}
    assert graph.ops


@pytest.mark.parametrize("name", HAVE_LRN)
def test_a_classic_model_with_lrn_is_refused_for_lrn_alone(name):
    with pytest.raises(UnsupportedOpError) as caught:
        import_onnx(LIGHT / f"light_{name}.onnx")
    listed = [line for line in str(caught.value).splitlines() if line.startswith("  - ")]
    assert listed
    assert all(line.startswith("  - LRN node") for line in listed), listed
    assert "retrain with BatchNormalization" in str(caught.value)


def test_the_list_covers_every_light_model():
    shipped = {p.name[len("light_") : -len(".onnx")] for p in LIGHT.glob("light_*.onnx")}
    assert shipped == set(IMPORTS) | set(HAVE_LRN)
