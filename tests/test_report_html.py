"""report.html: every artifact's self-contained page (the summary, the joined layer table, placement and
calibration charts), `neurodeploy report -o FILE.html`, `neurodeploy evaluate --report DIR` (evaluations of one
model collected in one folder), the SVG charts themselves and `inspect`'s rich tables."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from cli_support import assert_one_line_error, run_cli

from neurodeploy import charts, htmlreport
from neurodeploy.compiler import compile_model
from neurodeploy.data.calibration import load_calibration
from neurodeploy.inspect import layer_table, print_rich, summary

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "examples" / "mnist"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    calibration = load_calibration(str(MNIST / "calibration.npz"))
    out = tmp_path_factory.mktemp("html")
    model = MNIST / "mnist_cnn.onnx"
    return {
        "loihi": compile_model(model, "loihi", out / "l", calibration=calibration),
        "spinnaker": compile_model(model, "spinnaker", out / "s", calibration=calibration),
        "speck": compile_model(model, "speck", out / "k", calibration=calibration),
        "reference": compile_model(model, "reference", out / "r"),
        "brainscales2": compile_model(
            ROOT / "examples" / "mnist_bss2" / "mnist_bss2.onnx", "brainscales2", out / "b", calibration=calibration
        ),
    }


def images(page: str) -> list[ET.Element]:
    """The page's embedded images, each parsed as the SVG document it is."""
    found = re.findall(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', page)
    return [ET.fromstring(base64.b64decode(data)) for data in found]


def assert_self_contained(page: str) -> None:
    """Nothing the page would load from elsewhere: no script, style sheet, frame, or remote or local URL."""
    assert "<script" not in page
    assert "<link" not in page
    assert "<iframe" not in page
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert all(s.startswith("data:image/svg+xml;base64,") for s in sources)


def test_every_artifact_carries_a_self_contained_report_html(artifacts):
    for target, artifact in artifacts.items():
        assert "report.html" in artifact.files  # listed in the manifest, so checked as every file is
        page = artifact.read_bytes("report.html").decode()
        assert page.startswith("<!DOCTYPE html>")
        assert page.rstrip().endswith("</html>")
        assert f"{artifact.manifest['source']['file']} for {target}</title>" in page
        assert_self_contained(page)
        assert len(images(page)) == (0 if target == "reference" else 2)  # placement, calibration (none: no data)
        for svg in images(page):
            assert svg.tag == SVG + "svg"
            assert float(svg.get("width")) > 0
            assert float(svg.get("height")) > 0
            assert len(list(svg.iter())) > 5  # drawn, not empty


def test_the_layer_table_joins_resources_shapes_and_quantization(artifacts):
    info = summary(artifacts["loihi"].root)
    table = layer_table(info)
    header, rows = table[0], table[1:]
    assert header[:3] == ("layer", "op", "shape")
    assert {"weights", "threshold", "zeroed", "clipped"} <= set(header)
    assert [row[0] for row in rows] == [layer["name"] for layer in info["resources"]["layers"]]
    first = dict(zip(header, rows[1]))
    assert first["shape"] == "(32, 14, 14)"
    assert first["neurons"] == "6,272"
    assert first["weights"].startswith("8-bit")
    page = artifacts["loihi"].read_bytes("report.html").decode()
    assert "<th>headroom</th>" in page
    assert "(32, 14, 14)" in page


def test_placement_rows_cover_every_core_the_resources_count(artifacts):
    for target in ("loihi", "spinnaker", "speck", "brainscales2"):
        info = summary(artifacts[target].root)
        placement = info["placement"]
        assert len({(row["chip"], row["core"]) for row in placement}) == info["resources"]["cores_used"], target
        assert sum(row["neurons"] for row in placement) >= sum(
            layer["neurons"] for layer in info["resources"]["layers"] if layer["core"] is not None and target != "speck"
        )
        assert all(0 < row["fill"] <= 1 for row in placement), target
        chart = next(
            svg
            for svg in images(artifacts[target].read_bytes("report.html").decode())
            if "Placement" in svg.find(SVG + "title").text
        )
        bars = [r for r in chart.iter(SVG + "rect") if r.find(SVG + "title") is not None]
        assert len(bars) == len(placement)  # one bar per core, its tooltip naming it
    assert summary(artifacts["reference"].root)["placement"] == []  # no cores: no chart
    loihi = summary(artifacts["loihi"].root)["placement"]
    assert sum(row["neurons"] for row in loihi) == 21_962  # every neuron placed once
    assert loihi[0]["fill"] == 1.0  # 8192 input neurons fill a core's neurons (12,544 take two cores)
    spinnaker = [row for row in summary(artifacts["spinnaker"].root)["placement"] if "features.2" in row["layer"]]
    assert len(spinnaker) == 49  # 12,544 neurons in slices of 256
    assert spinnaker[-1]["fill"] == (12_544 - 48 * 256) / 256


def test_calibration_ranges_are_those_the_thresholds_came_from(artifacts):
    """The default conversion takes each layer's λ as the 99.9th percentile of its positive activations: the
    recorded p99.9 is that λ, value for value; the other percentiles are ordered and the max is the largest."""
    info = summary(artifacts["loihi"].root)
    lambdas = artifacts["loihi"].read_json("report.json")["conversion"]["convert-to-snn"]["lambda"]
    ranges = info["calibration_ranges"]
    assert [r["layer"] for r in ranges] == [
        "/features/features.2/Relu",
        "/features/features.6/Relu",
        "/features/features.10/Relu",
    ]  # the network's order
    for r in ranges:
        v = r["range"]
        assert r["threshold"] == lambdas[r["layer"]] == pytest.approx(v["p99.9"], rel=1e-6)
        assert 0 < v["p50"] <= v["p99"] <= v["p99.9"] <= v["p99.99"] <= v["max"]
        assert 0 < v["positive_fraction"] < 1
    assert summary(artifacts["reference"].root)["calibration_ranges"] == []  # compiled without calibration data


def test_report_command_writes_the_page_or_markdown(artifacts, capsys, tmp_path):
    root = artifacts["spinnaker"].root
    result = run_cli(capsys, "report", root, "-o", tmp_path / "page.html")
    assert result.code == 0, result.err
    page = (tmp_path / "page.html").read_text()
    assert_self_contained(page)
    assert "<h2>Files</h2>" in page
    assert "run_pynn.py" in page
    embedded = artifacts["spinnaker"].read_bytes("report.html").decode()
    table = re.compile(r"<table>.*?</table>", re.S)
    assert table.findall(page)[0] == table.findall(embedded)[0]  # the same layer table
    assert re.findall(r'src="([^"]+)"', page) == re.findall(r'src="([^"]+)"', embedded)  # the same charts
    assert "<h2>Files</h2>" not in embedded  # the compile's copy lists no files (the same wherever compiled)
    assert run_cli(capsys, "report", root, "-o", tmp_path / "r.md").code == 0
    assert (tmp_path / "r.md").read_text().startswith("# mnist_cnn.onnx for spinnaker")


def test_charts_escape_labels_and_leave_out_what_is_not_finite():
    svg = charts.bar_chart([("<script>alert(1)</script>", 0.5), ("nan", math.nan)], "rates & more", unit="x")
    root = ET.fromstring(svg)  # well-formed XML
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert len([r for r in root.iter(SVG + "rect")]) == 2  # the background and one bar: the NaN has none
    line = charts.line_chart([("a", [1, 2, 4], [1.0, math.inf, 3.0])], "t", x_label="T", y_label="y")
    points = ET.fromstring(line).find(SVG + "polyline").get("points").split()
    assert len(points) == 2
    assert charts.range_chart([("l", {"max": math.nan}, 1.0)], "r").count("<circle") == 0
    assert charts.bar_chart([("a", 1.0)], "t", unit="u") == charts.bar_chart([("a", 1.0)], "t", unit="u")


def test_inspect_draws_rich_tables_on_a_terminal(artifacts):
    rich_console = pytest.importorskip("rich.console")
    out = io.StringIO()
    print_rich(summary(artifacts["loihi"].root), rich_console.Console(file=out, force_terminal=True, width=200))
    shown = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    assert "┃ layer" in shown
    assert "quantization" in shown
    assert "placement (chip 0): 5 cores" in shown
    assert "(32, 14, 14)" in shown
    assert "8-bit mixed" in shown


def test_inspect_is_plain_text_off_a_terminal(artifacts, capsys):
    result = run_cli(capsys, "inspect", artifacts["loihi"].root)
    assert result.code == 0
    assert "┃" not in result.out
    assert "quantization:" in result.out
    assert run_cli(capsys, "inspect", artifacts["loihi"].root, "--plain").out == result.out


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Two targets evaluated into one report folder (the CLI, 64 test images)."""
    folder = tmp_path_factory.mktemp("evaluated") / "report"
    from neurodeploy.cli import main

    for target in ("reference", "loihi"):
        code = main(
            [
                "evaluate",
                str(MNIST / "mnist_cnn.onnx"),
                "--data",
                "mnist",
                "--limit",
                "64",
                "--steps",
                "8,32",
                "--target",
                target,
                "--report",
                str(folder),
                "--workers",
                "1",
                "-q",
            ]
        )
        assert code == 0
    return folder


def test_evaluate_report_collects_every_target_in_one_page(evaluated):
    names = sorted(p.name for p in evaluated.iterdir())
    assert names == ["evaluation-loihi-binary.json", "evaluation-reference-snn.json", "report.html", "report.md"]
    page = (evaluated / "report.html").read_text()
    assert_self_contained(page)
    svgs = images(page)
    accuracy = svgs[0]
    assert "Accuracy against T" in accuracy.find(SVG + "title").text
    assert len(accuracy.findall(SVG + "polyline")) == 2  # one SNN line per target; the ANN's is dashed
    assert any("ANN" in (t.text or "") for t in accuracy.iter(SVG + "text"))
    for what in ("SynOps per sample", "Firing rate per layer", "ANN-SNN correlation", "Spike raster"):
        assert sum(what in svg.find(SVG + "title").text for svg in svgs) == 2, what
    assert page.count("<h2>Artifact for") == 2
    assert "Calibration activations" in page
    entry = json.loads((evaluated / "evaluation-loihi-binary.json").read_text())
    report = entry["evaluation"]
    assert report["target"] == "loihi"
    assert report["samples"] == 64
    for t in ("8", "32"):
        assert f"{100 * report['snn_accuracy'][t]:.2f}" in page
    markdown = (evaluated / "report.md").read_text()
    assert "| loihi binary (ANN" in markdown
    assert "| reference snn (ANN" in markdown


def test_the_raster_is_the_converted_snns_spikes(evaluated):
    """Drawn spikes are real ones: per layer, the shown neurons are active ones and every (step, row) is inside
    the run; the sample's spike count per layer agrees with the spikes drawn when every active neuron is shown."""
    raster = json.loads((evaluated / "evaluation-reference-snn.json").read_text())["raster"]
    assert raster["steps"] == 32
    for layer in raster["layers"]:
        assert 0 < layer["shown"] <= min(layer["active"], 96)
        assert layer["active"] <= layer["neurons"]
        steps = {t for t, _ in layer["spikes"]}
        rows = {r for _, r in layer["spikes"]}
        assert steps <= set(range(32))
        assert rows == set(range(layer["shown"]))


def evaluate_into(capsys, folder: Path, model: Path = MNIST / "mnist_cnn.onnx"):
    """``neurodeploy evaluate`` of ``model`` on 8 MNIST images at T = 4 with ``--report folder``."""
    return run_cli(capsys, "evaluate", model, "--data", "mnist", "--limit", "8", "--steps", "4", "--report", folder)


def test_a_report_folder_refuses_another_model_or_what_is_not_a_folder(evaluated, capsys, tmp_path):
    result = evaluate_into(capsys, evaluated, ROOT / "examples" / "mnist_bss2" / "mnist_bss2.onnx")
    assert_one_line_error(result, "holds an evaluation of mnist_cnn.onnx on mnist", "choose another folder")
    (tmp_path / "file").write_text("x")
    assert_one_line_error(evaluate_into(capsys, tmp_path / "file"), "is a regular file, not a folder")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "evaluation-x.json").write_text("not json")
    assert_one_line_error(evaluate_into(capsys, tmp_path / "bad"), "evaluation-x.json is not an evaluation file")
    assert (tmp_path / "bad" / "evaluation-x.json").read_text() == "not json"  # nothing lost


def test_the_page_of_an_evaluation_renders_without_an_artifact_summary():
    report = {
        "model": "m.onnx",
        "target": "t",
        "mode": None,
        "data": {"name": "d", "source": "d"},
        "samples": 1,
        "steps": [1, 2],
        "ann_accuracy": None,
        "snn_accuracy": {"1": 0.5, "2": 1.0},
        "spikes_per_neuron": {"1": 0.1, "2": 0.2},
        "synops": {"1": None, "2": None},
        "synops_per_mac": {"1": None, "2": None},
        "ann_macs": 10,
        "layers": [],
    }
    page = htmlreport.page(None, [{"evaluation": report, "artifact": None, "raster": None}])
    assert_self_contained(page)
    assert '<td class="n">50.00</td>' in page


def test_value_range_percentiles_are_numpys():
    from neurodeploy.conversion.statistics import value_range

    rng = np.random.default_rng(1)
    rows = np.maximum(rng.normal(size=(4, 1000)), 0).astype(np.float32)
    found = value_range(rows, float(rows.max()))
    positive = rows[rows > 0]
    assert found["p99"] == pytest.approx(float(np.percentile(positive, 99)))
    assert found["positive_fraction"] == pytest.approx(positive.size / rows.size)
    assert found["max"] == float(rows.max())


def test_reports_load_in_headless_chromium_with_every_image(artifacts, evaluated, tmp_path):
    """A real browser opens the compile's page and the evaluation folder's page: no console error, every image
    decoded to a non-empty size; the screenshots are kept beside the test's files."""
    from headless_chromium import chromium_or_skip, load_page

    browser = chromium_or_skip()
    for name, page in (("loihi", artifacts["loihi"].root / "report.html"), ("evaluation", evaluated / "report.html")):
        shot = tmp_path / f"{name}.png"
        check = load_page(page, screenshot=shot, browser=browser)
        assert check.console_errors == [], name
        assert len(check.images) == len(images(page.read_text())) >= 2, name
        assert check.broken_images == [], name
        assert all(image.natural_width > 100 and image.natural_height > 30 for image in check.images), name
        assert shot.read_bytes().startswith(b"\x89PNG")
        assert shot.stat().st_size > 20_000
