"""The zoo matrix: a fixed set of architectures compiled for every target, compiled or the reason why not.

    .venv/bin/python scripts/zoo_matrix.py            # print the table
    .venv/bin/python scripts/zoo_matrix.py --write    # and rewrite the table in docs/zoo.md
    .venv/bin/python scripts/zoo_matrix.py --bigger 8 --only squeezenet   # and on the machine its refusals name

The models: the classic ONNX vision models at opset 9 as the onnx package ships them (its
``backend/test/data/light``: the model zoo's architectures, 3 x 224 x 224, their weights made constant), the
project's trained examples, and small torch models (a LeNet-5, a VGG block with max pooling, a residual block, an
Inception block, a depthwise-separable block), each exported by both of torch's exporters (``dynamo=True`` and the
legacy TorchScript one). Each is compiled for each of :data:`TARGETS` with four random calibration samples (seeded):
the matrix says whether a model compiles and what stops it, not how accurate it is. ``tests/test_zoo_matrix.py``
builds the table again and compares it with ``docs/zoo.md``, so the page says what the code does.

Needs torch and every target's plugin (``make env`` installs them).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "zoo.md"
BEGIN, END = "<!-- zoo-matrix:begin -->", "<!-- zoo-matrix:end -->"
TARGETS = ("reference", "loihi", "speck", "spinnaker", "brainscales2")
LIGHT = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet",
         "vgg19", "zfnet512")  # fmt: skip
EXAMPLES = {
    "MNIST CNN (examples/mnist)": "examples/mnist/mnist_cnn.onnx",
    "VGG, QCFS (examples/cifar10_qcfs)": "examples/cifar10_qcfs/vgg_qcfs.onnx",
    "ResNet-20, QCFS (examples/cifar10_qcfs)": "examples/cifar10_qcfs/resnet20_qcfs.onnx",
    "MNIST residual (examples/mnist_residual)": "examples/mnist_residual/mnist_residual.onnx",
}
CALIBRATION_SAMPLES = 4
REASON_CHARS = 240


@dataclass(frozen=True)
class Outcome:
    compiled: bool
    text: str
    """The one line: the first warning when it compiled (else empty), or the error's class and message."""


def _one_line(text: str, where: Path) -> str:
    line = " ".join(str(text).replace(str(where), "<model>").split())
    line = re.sub(r"/tmp/[^\s'\"]+", "<tmp>", line)
    return line if len(line) <= REASON_CHARS else line[: REASON_CHARS - 1] + "…"


def _torch_models():
    """(name, module, input shape) of the small torch models, weights seeded."""
    import torch
    from torch import nn

    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
            self.body = nn.Sequential(
                nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1)
            )
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

        def forward(self, x):
            h = self.stem(x)
            return self.head(torch.relu(self.body(h) + h))

    class Inception(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
            self.a = nn.Sequential(nn.Conv2d(16, 8, 1), nn.ReLU())
            self.b = nn.Sequential(nn.Conv2d(16, 8, 3, padding=1), nn.ReLU())
            self.c = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), nn.Conv2d(16, 8, 1), nn.ReLU())
            self.head = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(24 * 8 * 8, 10))

        def forward(self, x):
            h = self.stem(x)
            return self.head(torch.cat([self.a(h), self.b(h), self.c(h)], dim=1))

    torch.manual_seed(0)
    lenet = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )  # fmt: skip
    vgg = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
    )  # fmt: skip
    mobile = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip
    models = [
        ("LeNet-5", lenet, (1, 28, 28)),
        ("VGG block, max pooling", vgg, (3, 32, 32)),
        ("residual block", Residual(), (3, 32, 32)),
        ("Inception block", Inception(), (3, 32, 32)),
        ("depthwise-separable block", mobile, (3, 32, 32)),
    ]
    for _, module, _ in models:
        module.eval()
        for m in module.modules():  # running statistics that are not the identity
            if isinstance(m, nn.BatchNorm2d):
                with torch.no_grad():
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
    return models


def models(folder: Path) -> list[tuple[str, Path]]:
    """(row name, ONNX file) of every model in the matrix, the torch exports written into ``folder``."""
    import onnx
    import torch

    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    rows = [(f"{name} (onnx light, opset 9)", light / f"light_{name}.onnx") for name in LIGHT]
    rows += [(name, ROOT / path) for name, path in EXAMPLES.items()]
    for name, module, shape in _torch_models():
        for exporter, dynamo in (("dynamo", True), ("legacy", False)):
            path = folder / f"{re.sub(r'[^a-z0-9]+', '_', name.lower())}_{exporter}.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, (torch.zeros(1, *shape),), str(path), dynamo=dynamo, input_names=["x"])
            rows.append((f"{name} (torch, {exporter} exporter)", path))
    return rows


def _input_shape(path: Path) -> tuple[int, ...]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    weights = {init.name for init in model.graph.initializer}
    (first,) = [i for i in model.graph.input if i.name not in weights][:1]
    return tuple(d.dim_value or 1 for d in first.type.tensor_type.shape.dim)[1:]


def compile_one(path: Path, target: str, out: Path, options: dict[str, str] | None = None) -> Outcome:
    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import Calibration
    from neurodeploy.errors import NeurodeployError

    rng = np.random.default_rng(0)
    calibration = Calibration(rng.random((CALIBRATION_SAMPLES, *_input_shape(path))).astype(np.float32), "random")
    try:
        artifact = compile_model(path, target, out, calibration=calibration, target_options=options)
    except NeurodeployError as exc:
        return Outcome(False, _one_line(f"{type(exc).__name__}: {exc}", path))
    except Exception as exc:  # a crash is a defect of ours: the matrix shows it as one
        return Outcome(False, _one_line(f"crash, {type(exc).__name__}: {exc}", path))
    notes = artifact.manifest.get("warnings", [])
    return Outcome(True, _one_line(notes[0], path) if notes else "")


def matrix(targets: tuple[str, ...] = TARGETS) -> tuple[list[str], dict[tuple[str, str], Outcome]]:
    """The model names in order and the outcome of every (model, target)."""
    outcomes: dict[tuple[str, str], Outcome] = {}
    with tempfile.TemporaryDirectory() as tmp:
        rows = models(Path(tmp))
        for name, path in rows:
            for target in targets:
                outcomes[name, target] = compile_one(path, target, Path(tmp) / "out" / f"{len(outcomes)}")
    return [name for name, _ in rows], outcomes


MACHINE = re.compile(r"--target-option (chips|boards)=(\d+)")
"""How a refusal for size names the machine that would hold the network (loihi's chips=, spinnaker's boards=)."""


def named_machine(outcome: Outcome, largest: int) -> dict[str, str] | None:
    """The target option of the machine a refusal names (``chips=3``), where it has at most ``largest`` of them."""
    found = None if outcome.compiled else MACHINE.search(outcome.text)
    if found is None or int(found.group(2)) > largest:
        return None
    return {found.group(1): found.group(2)}


def bigger(
    names: list[str], outcomes: dict[tuple[str, str], Outcome], largest: int, folder: Path, only: list[str]
) -> list[str]:
    """Each pair refused for size, compiled again on the machine its refusal names (at most ``largest`` chips or
    boards), as lines: what a network that physically fits there does."""
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = dict(models(Path(tmp)))
        for name in names:
            if only and not any(o in name for o in only):
                continue
            for target in TARGETS:
                options = named_machine(outcomes[name, target], largest)
                if options is None:
                    continue
                while True:  # placement may name more than the neuron count did
                    outcome = compile_one(paths[name], target, folder / f"bigger{len(lines)}", options)
                    more = named_machine(outcome, largest)
                    if more is None or more == options:
                        break
                    options = more
                ((key, value),) = options.items()
                verdict = "compiled" if outcome.compiled else "refused"
                lines.append(
                    f"{name}, {target}, {key}={value}: {verdict}" + (f": {outcome.text}" if outcome.text else "")
                )
    return lines


def table(names: list[str], outcomes: dict[tuple[str, str], Outcome], targets: tuple[str, ...] = TARGETS) -> str:
    """The matrix as Markdown: a cell per pair (compiled, or refused with a note number), then the notes."""
    notes: list[str] = []

    def cell(outcome: Outcome) -> str:
        if not outcome.text:
            return "compiled"
        if outcome.text not in notes:
            notes.append(outcome.text)
        number = notes.index(outcome.text) + 1
        return f"compiled [{number}]" if outcome.compiled else f"**refused** [{number}]"

    lines = [f"| model | {' | '.join(targets)} |", f"| --- |{' --- |' * len(targets)}"]
    lines += [f"| {name} | {' | '.join(cell(outcomes[name, t]) for t in targets)} |" for name in names]
    compiled = sum(o.compiled for o in outcomes.values())
    lines += ["", f"{compiled} of {len(outcomes)} pairs compile.", ""]
    lines += [f"{i}. {note.replace('|', '/')}" for i, note in enumerate(notes, start=1)]
    return "\n".join(lines) + "\n"


def write(text: str, doc: Path = DOC) -> None:
    page = doc.read_text()
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    doc.write_text(page[:start] + "\n" + text + page[end:])


def documented(doc: Path = DOC) -> str:
    page = doc.read_text()
    return page[page.index(BEGIN) + len(BEGIN) : page.index(END)].lstrip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite the table in {DOC.relative_to(ROOT)}")
    parser.add_argument(
        "--bigger",
        type=int,
        metavar="N",
        help="then compile each pair refused for size again on the chips= or boards= its refusal names, where that "
        "is at most N (the larger networks take minutes and tens of GB each)",
    )
    parser.add_argument("--only", action="append", default=[], help="with --bigger: models whose name holds this")
    args = parser.parse_args(argv)
    names, outcomes = matrix()
    text = table(names, outcomes)
    print(text)
    if args.write:
        write(text)
    if args.bigger:
        with tempfile.TemporaryDirectory() as tmp:
            for line in bigger(names, outcomes, args.bigger, Path(tmp), args.only):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
