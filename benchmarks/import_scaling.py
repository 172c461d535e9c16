"""ONNX import time against the number of nodes: linear or not.

    .venv/bin/python benchmarks/import_scaling.py [--sizes 1000,2000,4000,8000,10000] [--repeats 3] [--shuffle]

Each model is a chain x -> (Relu, Identity, Add of a constant) repeated -> y, built with onnx.helper (no file; the
protobuf parse is not measured). ``--shuffle`` writes the nodes in a random order, so the topological sort has
to do the work. The time is ``import_onnx(model)`` (sort, handlers, IR verification), the median of
``--repeats`` runs in this process. The table shows each size's time, its time per node, and its ratio to the
previous size next to the ratio of node counts: a linear import keeps the two ratios close (a quadratic one
squares the node ratio).

Goal (issue #10): a 10,000-node chain imports in seconds; import time grows linearly with the node count.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from neurodeploy.frontend.onnx import import_onnx

GOAL_SECONDS_10K = 5.0


def chain(n: int, shuffle: bool = False) -> onnx.ModelProto:
    nodes, prev = [], "x"
    for i in range(n):
        op = ("Relu", "Identity", "Add")[i % 3]
        nodes.append(helper.make_node(op, [prev, "c"] if op == "Add" else [prev], [f"v{i}"], name=f"n{i}"))
        prev = f"v{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"], name="out"))
    if shuffle:
        nodes = [nodes[i] for i in np.random.default_rng(0).permutation(len(nodes))]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        initializer=[numpy_helper.from_array(np.ones(8, np.float32), "c")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def measure(n: int, repeats: int, shuffle: bool) -> float:
    model = chain(n, shuffle)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        import_onnx(model)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,2000,4000,8000,10000", help="node counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shuffle", action="store_true", help="write the nodes in a random order")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    measure(100, 1, args.shuffle)  # warm up imports and schema lookups
    print(f"{'nodes':>7} {'seconds':>9} {'us/node':>8} {'time ratio':>11} {'node ratio':>11}")
    previous: tuple[int, float] | None = None
    results = {}
    for n in sizes:
        seconds = measure(n, args.repeats, args.shuffle)
        results[n] = seconds
        ratio = f"{seconds / previous[1]:11.2f} {n / previous[0]:11.2f}" if previous else f"{'':>11} {'':>11}"
        print(f"{n:>7} {seconds:9.3f} {seconds / n * 1e6:8.1f} {ratio}")
        previous = (n, seconds)
    if 10_000 in results:
        verdict = "goal met" if results[10_000] <= GOAL_SECONDS_10K else "goal missed"
        print(f"10,000 nodes: {results[10_000]:.2f} s (goal <= {GOAL_SECONDS_10K:.0f} s): {verdict}")
    first, last = sizes[0], sizes[-1]
    if first != last:
        print(
            f"{last}/{first} nodes: time x{results[last] / results[first]:.2f} for nodes x{last / first:.2f} "
            f"(linear: about equal; quadratic: x{(last / first) ** 2:.0f})"
        )


if __name__ == "__main__":
    main()
