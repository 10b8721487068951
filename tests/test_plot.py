"""draw_graph: layers, labels, colouring by residual and iterations; missing matplotlib."""

import builtins

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff import plot


def small_graph():
    rng = np.random.default_rng(0)
    return ardiff.trace(lambda W, x: anp.sum(anp.tanh(W @ anp.tanh(W @ x)) ** 2),
                        rng.standard_normal((3, 3)), rng.standard_normal(3))


def test_layers_follow_the_longest_path_from_the_leaves():
    g = small_graph()
    assert plot.node_layers(g) == [0, 0, 1, 2, 3, 4, 5, 6]


def test_residuals_and_iterations_per_node_match_the_relaxation():
    g = small_graph()
    res = ardiff.relax(g, schedule="parallel", eta=0.5, tol=1e-10, record=True)
    residuals = plot.node_residuals(res)
    assert set(residuals) == set(res.plan.relaxing)
    assert max(residuals.values()) <= 1e-9
    iterations = plot.node_iterations(res)
    # the node next to the output settles first, the deepest one last
    order = sorted(res.plan.relaxing)
    assert iterations[order[-1]] < iterations[order[0]] <= res.iterations
    with pytest.raises(ValueError, match="record=True"):
        plot.node_iterations(ardiff.relax(g))


def test_draw_graph_labels_and_colours():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = small_graph()
    res = ardiff.relax(g, schedule="parallel", eta=0.5, tol=1e-10, record=True)
    fig, axes = plt.subplots(1, 3)
    try:
        ax = plot.draw_graph(g, ax=axes[0])
        texts = {t.get_text() for t in ax.texts}
        assert "matmul\n(3,)" in texts and "tanh\n(3,)" in texts and "sum\n()" in texts
        assert plot.draw_graph(g, ax=axes[1], color_by=res) is axes[1]
        assert plot.draw_graph(g, ax=axes[2], color_by=res, metric="iterations") is axes[2]
        assert len(fig.axes) == 5  # two colour bars were added
        with pytest.raises(ValueError, match="metric"):
            plot.draw_graph(g, ax=axes[0], color_by=res, metric="speed")
        with pytest.raises(ValueError, match="different graph"):
            plot.draw_graph(small_graph(), ax=axes[0], color_by=res)
    finally:
        plt.close(fig)


def test_missing_matplotlib_gives_install_hint(monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r"pip install 'ardiff\[plot\]'"):
        plot.draw_graph(small_graph())
