"""Compile time against graph size: long chains through the default pipeline (linear, or quadratic bookkeeping?).

    .venv/bin/python benchmarks/compile_scaling.py [--sizes 1000,2000,4000,8000,10000] [--timeout 300] [--onnx]

Cases (each size runs in a fresh subprocess; the time is the work alone, not the imports):

  ir    a chain of ``size`` IR ops built directly (no ONNX), run through the reference target's default
        pipeline (CANONICALIZE, then convert-to-snn with calibration data: run_pipeline, as compile_model does),
        then the reference backend's resources() and the ANN and SNN saved as files (what emit writes)
  onnx  (with --onnx) an ONNX chain of ``size`` nodes through compile_model(..., target="reference"): import,
        every pass, resources, artifact written

The IR chain repeats three blocks so that every canonicalization pass and the conversion have work at every
depth (each block reads the previous block's output ``h``):

  A  Dense -> BatchNorm -> Bias -> Relu -> Clip(0, 6) -> Reshape(same shape)   fold-batchnorm, fold-bias,
                                                                              fuse-activations, canonicalize-flatten
  B  Dense -> Relu -> Add(relu, h)                                            convert-to-snn brings the skip to
                                                                              the Add's scale (a Scale op inserted)
  C  Dense -> Scale(1/λ) -> Scale(L) -> Bias(0.5) -> Floor -> Scale(1/L)      detect-qcfs (one QCFS op)
            -> Clip(0, 1) -> Scale(λ)

The ONNX chain is Gemm -> Relu pairs. The table gives the seconds per size and the ratio time(8000)/time(2000):
about 4 when compile time is linear in the graph size, about 16 when it is quadratic. A size that exceeds
--timeout is reported as such (and larger sizes of that case are skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WIDTH = 4
CALIBRATION_SAMPLES = 32


# -- the models ------------------------------------------------------------------------------------------------
def ir_chain(size: int, seed: int = 0):
    """A Graph of about ``size`` ops (whole blocks A, B, C in turn, then a final Dense)."""
    import numpy as np

    from neurodeploy.ir import Add, BatchNorm, Bias, Clip, Dense, Floor, Graph, Relu, Reshape, Scale, TensorType

    rng = np.random.default_rng(seed)
    f32 = np.float32

    def weight() -> np.ndarray:
        return (rng.normal(size=(WIDTH, WIDTH)) / np.sqrt(WIDTH)).astype(f32)

    ops: list = []
    h = "x"
    block = 0
    while len(ops) < size - 1:
        i = len(ops)
        kind = block % 3
        if kind == 0:
            ops += [
                Dense(name=f"fc{i}", inputs=(h,), output=f"d{i}", weight=weight()),
                BatchNorm(
                    name=f"bn{i}",
                    inputs=(f"d{i}",),
                    output=f"n{i}",
                    scale=rng.uniform(0.5, 1.5, WIDTH).astype(f32),
                    shift=rng.normal(size=WIDTH).astype(f32) * 0.1,
                    mean=rng.normal(size=WIDTH).astype(f32) * 0.1,
                    var=rng.uniform(0.5, 1.5, WIDTH).astype(f32),
                ),
                Bias(name=f"bias{i}", inputs=(f"n{i}",), output=f"b{i}", value=rng.normal(size=WIDTH).astype(f32)),
                Relu(name=f"relu{i}", inputs=(f"b{i}",), output=f"r{i}"),
                Clip(name=f"clip{i}", inputs=(f"r{i}",), output=f"c{i}", low=0.0, high=6.0),
                Reshape(name=f"same{i}", inputs=(f"c{i}",), output=f"h{i}", shape=(WIDTH,)),
            ]
        elif kind == 1:
            ops += [
                Dense(name=f"fc{i}", inputs=(h,), output=f"d{i}", weight=weight(), bias=np.full(WIDTH, 0.1, f32)),
                Relu(name=f"relu{i}", inputs=(f"d{i}",), output=f"r{i}"),
                Add(name=f"add{i}", inputs=(f"r{i}", h), output=f"h{i}"),
            ]
        else:
            lam, levels = 2.0, 8
            ops += [
                Dense(name=f"fc{i}", inputs=(h,), output=f"d{i}", weight=weight()),
                Scale(name=f"div{i}", inputs=(f"d{i}",), output=f"s{i}", value=f32(1 / lam)),
                Scale(name=f"mul{i}", inputs=(f"s{i}",), output=f"t{i}", value=f32(levels)),
                Bias(name=f"shift{i}", inputs=(f"t{i}",), output=f"u{i}", value=f32(0.5)),
                Floor(name=f"act{i}/Floor", inputs=(f"u{i}",), output=f"q{i}"),
                Scale(name=f"step{i}", inputs=(f"q{i}",), output=f"v{i}", value=f32(1 / levels)),
                Clip(name=f"clamp{i}", inputs=(f"v{i}",), output=f"w{i}", low=0.0, high=1.0),
                Scale(name=f"up{i}", inputs=(f"w{i}",), output=f"h{i}", value=f32(lam)),
            ]
        h = f"h{i}"
        block += 1
    ops.append(Dense(name="head", inputs=(h,), output="logits", weight=weight(), bias=np.zeros(WIDTH, f32)))
    return Graph(f"chain{size}", {"x": TensorType((WIDTH,))}, ["logits"], ops)


def onnx_chain(size: int, path: Path, seed: int = 0) -> None:
    """An ONNX model of ``size`` nodes: Gemm -> Relu pairs (a final Gemm when ``size`` is odd)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    h = "x"
    for i in range(size):
        if i % 2 == 0 or i == size - 1:
            w = numpy_helper.from_array((rng.normal(size=(WIDTH, WIDTH)) / 2).astype(np.float32), f"w{i}")
            b = numpy_helper.from_array(np.full(WIDTH, 0.1, np.float32), f"b{i}")
            inits += [w, b]
            nodes.append(helper.make_node("Gemm", [h, f"w{i}", f"b{i}"], [f"g{i}"], name=f"gemm{i}", transB=1))
            h = f"g{i}"
        else:
            nodes.append(helper.make_node("Relu", [h], [f"r{i}"], name=f"relu{i}"))
            h = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", WIDTH])],
        [helper.make_tensor_value_info(h, TensorProto.FLOAT, ["N", WIDTH])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


# -- child side ------------------------------------------------------------------------------------------------
def _child(case: str, size: int) -> dict:
    import tempfile

    import numpy as np

    from neurodeploy.backends.reference.backend import ReferenceBackend
    from neurodeploy.compiler import compile_model, run_pipeline
    from neurodeploy.data.calibration import Calibration
    from neurodeploy.ir.serialize import save_graph
    from neurodeploy.passes import CANONICALIZE, PassContext, build_pipeline

    calibration = np.random.default_rng(1).uniform(0, 1, (CALIBRATION_SAMPLES, WIDTH)).astype(np.float32)
    tmp = Path(tempfile.mkdtemp(prefix="neurodeploy-scaling-"))
    if case == "ir":
        graph = ir_chain(size)
        ops = len(graph.ops)
        backend = ReferenceBackend()
        passes = build_pipeline(f"{CANONICALIZE},{backend.pipeline({})}")

        def work() -> int:
            ann, snn = run_pipeline(graph, passes, PassContext(calibration=calibration))
            backend.resources(snn)
            save_graph(snn, tmp, "snn")
            save_graph(ann, tmp, "ann")
            return len(snn.ops)

    elif case == "onnx":
        model = tmp / "chain.onnx"
        onnx_chain(size, model)
        ops = size

        def work() -> int:
            compile_model(model, "reference", tmp / "out", calibration=Calibration(calibration, "bench"))
            return -1  # the ops are in the artifact on disk, not counted here

    else:
        raise SystemExit(f"unknown case {case!r}")
    start = time.perf_counter()
    after = work()
    return {"ops": ops, "ops_after": after, "seconds": time.perf_counter() - start}


# -- parent side -----------------------------------------------------------------------------------------------
def _run_child(case: str, size: int, timeout: float) -> dict | None:
    try:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", case, "--size", str(size)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=os.environ.copy(),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        raise SystemExit(f"case {case} size {size} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,4000,8000,10000", help="comma-separated op counts")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per size")
    parser.add_argument("--onnx", action="store_true", help="also compile ONNX chains with compile_model")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.size)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    for case in ["ir"] + (["onnx"] if args.onnx else []):
        print(f"case {case}:")
        print(f"  {'size':>6}  {'ops in':>6}  {'ops out':>7}  {'seconds':>8}")
        seconds: dict[int, float] = {}
        for size in sizes:
            result = _run_child(case, size, args.timeout)
            if result is None:
                print(f"  {size:>6}  did not finish in {args.timeout:.0f} s; larger sizes skipped", flush=True)
                break
            seconds[size] = result["seconds"]
            out = result["ops_after"] if result["ops_after"] >= 0 else "-"
            print(f"  {size:>6}  {result['ops']:>6}  {out:>7}  {result['seconds']:>8.2f}", flush=True)
        if 2000 in seconds and 8000 in seconds:
            ratio = seconds[8000] / seconds[2000]
            print(f"  time(8000)/time(2000) = {ratio:.1f}  (4 = linear, 16 = quadratic)")


if __name__ == "__main__":
    main()
