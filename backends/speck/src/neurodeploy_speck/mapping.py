"""Layers onto cores: a maximum bipartite matching found as a max-flow (Edmonds-Karp: breadth-first augmenting
paths), as sinabs' ``backend/dynapcnn/mapping.py`` does.

Flow network: source -> layer i (capacity 1) -> core j where the layer fits (capacity 1) -> sink (capacity 1).
A flow of value n (the number of layers) is a placement; anything less means no placement exists, and the
error prints the layer x core feasibility matrix. The search visits layers and cores in index order, so the
placement is deterministic.
"""

from __future__ import annotations

from collections import deque

from neurodeploy.errors import ResourceError


def max_flow(capacity: list[list[int]], source: int, sink: int) -> tuple[int, list[list[int]]]:
    """Edmonds-Karp on a dense capacity matrix: (flow value, flow matrix)."""
    n = len(capacity)
    flow = [[0] * n for _ in range(n)]
    total = 0
    while True:
        parent = [-1] * n
        parent[source] = source
        queue = deque([source])
        while queue and parent[sink] == -1:
            u = queue.popleft()
            for v in range(n):
                if parent[v] == -1 and capacity[u][v] - flow[u][v] > 0:
                    parent[v] = u
                    queue.append(v)
        if parent[sink] == -1:
            return total, flow
        bottleneck, v = None, sink
        while v != source:
            u = parent[v]
            residual = capacity[u][v] - flow[u][v]
            bottleneck = residual if bottleneck is None else min(bottleneck, residual)
            v = u
        v = sink
        while v != source:
            u = parent[v]
            flow[u][v] += bottleneck
            flow[v][u] -= bottleneck
            v = u
        total += bottleneck


def match(feasible: list[list[bool]]) -> dict[int, int] | None:
    """A placement {layer: core} using each core at most once, with ``feasible[layer][core]``; None if none."""
    layers = len(feasible)
    cores = len(feasible[0]) if layers else 0
    source, sink = 0, 1 + layers + cores
    capacity = [[0] * (sink + 1) for _ in range(sink + 1)]
    for i in range(layers):
        capacity[source][1 + i] = 1
        for j in range(cores):
            if feasible[i][j]:
                capacity[1 + i][1 + layers + j] = 1
    for j in range(cores):
        capacity[1 + layers + j][sink] = 1
    value, flow = max_flow(capacity, source, sink)
    if value < layers:
        return None
    return {i: j for i in range(layers) for j in range(cores) if flow[1 + i][1 + layers + j] == 1}


def format_matrix(names: list[str], feasible: list[list[bool]]) -> str:
    """The layer x core feasibility matrix ('x' where the layer fits)."""
    cores = len(feasible[0]) if feasible else 0
    width = max([len("layer"), *map(len, names)])
    lines = [" ".join(["layer".ljust(width), *(f"{j:>2}" for j in range(cores))])]
    for i, name in enumerate(names):
        row = [name.ljust(width), *(" x" if feasible[i][j] else " ." for j in range(cores))]
        lines.append(" ".join(row))
    return "\n".join(lines)


def place(names: list[str], feasible: list[list[bool]], reasons: list[list[str]]) -> dict[int, int]:
    """Place layers on cores or raise ResourceError with the feasibility matrix and what blocks each core."""
    mapping = match(feasible)
    if mapping is not None:
        return mapping
    details = []
    for i, name in enumerate(names):
        if not any(feasible[i]):
            details.append(f"  {name} fits no core: " + "; ".join(f"core {j}: {r}" for j, r in enumerate(reasons[i])))
    raise ResourceError(
        f"no placement of the {len(names)} layers on the {len(feasible[0])} cores (each core holds one layer; "
        "'x' = the layer's memory fits that core):\n"
        + format_matrix(names, feasible)
        + ("\n" + "\n".join(details) if details else "\n  every layer fits some core, but too few distinct cores")
        + "\nuse fewer or smaller layers (fewer channels, smaller maps through stride or pooling)"
    )
