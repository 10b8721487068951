"""Plotting helpers (optional: needs matplotlib, `pip install 'ardiff[plot]'`).

Every function here imports matplotlib through `require_matplotlib`, so
`import ardiff.plot` works without it and the first drawing call explains how
to install it.  Functions for the paper's experiments can be added next to
`draw_graph` in the same way.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .graph import Graph, unwrap
from .solvers import Result, relative_error

MISSING_MATPLOTLIB = ("ardiff.plot needs matplotlib, which is an optional extra. Install it "
                      "with: pip install 'ardiff[plot]'  (or: pip install matplotlib).")


def require_matplotlib() -> Any:
    """Import and return `matplotlib.pyplot`, or raise an ImportError saying how to install.

    Returns
    -------
    module
        `matplotlib.pyplot`.
    """
    try:
        import matplotlib.pyplot as plt  # optional dependency (the plot extra)
    except ImportError as exc:
        raise ImportError(MISSING_MATPLOTLIB) from exc
    return plt


def node_layers(graph: Graph) -> list[int]:
    """Layer of every node: 0 for leaves, else 1 + the deepest parent's layer.

    Parameters
    ----------
    graph : Graph
        The recorded graph.

    Returns
    -------
    list of int
        One layer per node, by index.
    """
    layer = [0] * len(graph.nodes)
    for node in graph.nodes:
        if node.parents:
            layer[node.index] = 1 + max(layer[p] for _, p in node.parents)
    return layer


def node_residuals(result: Result, seed: Any = None) -> dict:
    """Final relative residual of every relaxing node (`relative_error(target, x)`).

    Parameters
    ----------
    result : Result
        A solve's result (its plan and activities are read).
    seed : array_like, optional
        The clamped output activity; default ones (right for a scalar loss).

    Returns
    -------
    dict
        Node index -> relative residual.
    """
    plan = result.plan
    x = dict(result.activities)
    out_value = unwrap(plan.graph.nodes[plan.output].value)
    # the clamped output (and, with units, the clamped nodes computed from it)
    x.update(plan.fixed_activities(np.ones(np.shape(out_value), dtype=np.result_type(
        out_value)) if seed is None else seed))
    return {i: relative_error(plan.activity_target(i, x), x[i]) for i in plan.relaxing}


def node_iterations(result: Result, rtol: float = 1e-8) -> dict:
    """Steps after which each relaxing node stays within `rtol` of its final activity.

    Parameters
    ----------
    result : Result
        A relaxation recorded with `record=True` (the trajectory is read).
    rtol : float
        Tolerance relative to the node's final activity.

    Returns
    -------
    dict
        Node index -> number of steps.
    """
    if result.trajectory is None:
        raise ValueError("Colouring by iterations needs the trajectory: run relax(..., "
                         "record=True).")
    out = {}
    for i, rows in result.trajectory.items():
        rows = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
        final = rows[-1]
        scale = max(float(np.max(np.abs(final), initial=0.0)), np.finfo(float).tiny)
        far = np.max(np.abs(rows - final), axis=1) > rtol * scale
        late = np.flatnonzero(far)
        out[i] = int(late[-1] + 1) if late.size else 0
    return out


def draw_graph(graph: Graph, ax: Any = None, color_by: Result | dict | None = None, *,
               metric: str = "residual", seed: Any = None, cmap: str = "viridis",
               with_labels: bool = True) -> Any:
    """Draw the DAG in layers with op and shape labels.

    Parameters
    ----------
    graph : Graph
        The recorded graph.
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure).
    color_by : Result or dict, optional
        A relaxation `ardiff.Result` (nodes coloured by `metric`), or a dict
        `node index -> number`.  Nodes without a number are grey.
    metric : {"residual", "iterations"}
        For a Result: final relative residual (log colour scale), or the number of
        steps until the node stayed within 1e-8 of its final value (needs
        `record=True`).
    seed : array_like, optional
        Output seed used by the residual metric for a non-scalar output.
    cmap : str
        Matplotlib colour map.
    with_labels : bool
        Write `op` and shape under every node.

    Returns
    -------
    matplotlib.axes.Axes
    """
    plt = require_matplotlib()
    # here, not at the top: matplotlib is optional, and networkx takes ~0.2 s to import
    # (measured) that `import ardiff.plot` should not pay before something is drawn
    import matplotlib.colors as mcolors
    import networkx as nx

    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(graph.nodes) ** 0.5 * 3), 5))
    if getattr(color_by, "plan", None) is not None and color_by.plan.graph is not graph:
        raise ValueError("color_by is a result for a different graph; pass the graph it was "
                         "computed on.")
    values = _colour_values(color_by, metric, seed)
    G = nx.DiGraph()
    layers = node_layers(graph)
    for node in graph.nodes:
        G.add_node(node.index, layer=layers[node.index])
        for _, p in node.parents:
            G.add_edge(p, node.index)
    pos = nx.multipartite_layout(G, subset_key="layer") if len(G) else {}
    colours, norm = ["lightgrey"] * len(graph.nodes), None
    if values:
        finite = [v for v in values.values() if math.isfinite(v)]
        use_log = metric == "residual" and not isinstance(color_by, dict)
        positive = [v for v in finite if v > 0]
        if use_log and positive:
            norm = mcolors.LogNorm(vmin=min(positive), vmax=max(max(positive), min(positive) * 10))
        elif finite:
            lo, hi = min(finite), max(finite)
            norm = mcolors.Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1)
        mapper = plt.get_cmap(cmap)
        for i, v in values.items():
            if norm is not None and math.isfinite(v):
                shown = max(v, norm.vmin) if isinstance(norm, mcolors.LogNorm) else v
                colours[i] = mapper(norm(shown))
    nx.draw_networkx_edges(G, pos, ax=ax, arrows=True, edge_color="grey", node_size=400)
    nx.draw_networkx_nodes(G, pos, ax=ax, nodelist=list(range(len(graph.nodes))),
                           node_color=colours, node_size=400, edgecolors="black")
    if with_labels:
        labels = {n.index: f"{n.op_name}\n{tuple(np.shape(unwrap(n.value)))}" for n in graph.nodes}
        ys = [y for _, y in pos.values()]
        drop = 0.06 * ((max(ys) - min(ys)) or 1.0)  # write labels under the nodes
        below = {n: (x, y - drop) for n, (x, y) in pos.items()}
        nx.draw_networkx_labels(G, below, labels=labels, ax=ax, font_size=7,
                                verticalalignment="top")
    if norm is not None:
        mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        ax.figure.colorbar(mappable, ax=ax, label=_colour_label(color_by, metric))
    ax.set_axis_off()
    return ax


def _colour_values(color_by, metric: str, seed: Any) -> dict:
    if color_by is None:
        return {}
    if isinstance(color_by, dict):
        return {int(k): float(v) for k, v in color_by.items()}
    if not hasattr(color_by, "plan") or color_by.plan is None:
        raise TypeError("color_by must be a relaxation Result or a dict node -> number, got "
                        f"{type(color_by).__name__}.")
    if metric == "residual":
        return node_residuals(color_by, seed)
    if metric == "iterations":
        return {i: float(k) for i, k in node_iterations(color_by).items()}
    raise ValueError(f"metric must be 'residual' or 'iterations', got {metric!r}")


def _colour_label(color_by, metric: str) -> str:
    if isinstance(color_by, dict):
        return "value"
    return "final relative residual" if metric == "residual" else "iterations to converge"
