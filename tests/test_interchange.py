"""Graph interchange: networkx and JSON round-trips, hand-built graphs, validation errors."""

import json

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings

import ardiff
import ardiff.numpy as anp
from ardiff import Graph
from ardiff.interchange import GraphValidationError

try:  # written by another helper; the fixed programs below cover the same ground
    from ardiff.strategies import random_graphs
except ImportError:  # pragma: no cover
    random_graphs = None


def rich_graph():
    """Many argument kinds: slices, Ellipsis, None, index arrays, dtypes, kwargs, einsum."""
    rng = np.random.default_rng(0)
    g = Graph()
    W = g.input(rng.standard_normal((4, 4)), name="W")
    x = g.input(rng.standard_normal(4), name="x")
    c = g.constant(np.array([1.0, np.nan, np.inf, -np.inf]), name="c")
    h = anp.tanh(W @ x)
    h2 = h[1:3] * h[np.array([0, 0])]
    h3 = anp.sum(anp.concatenate([h2, h2 ** 2]), axis=0, keepdims=True)
    e = anp.einsum("ij,j->i", W, x)[..., None, 0]
    m = anp.where(anp.isfinite(c.value), h, 0.0)
    f = anp.cumsum(m).astype(np.float32)
    out = anp.sum(h3) + anp.mean(e) + anp.sum(f * 1.0)
    g.output = out
    return g, out, [W, x]


def assert_same(g1, g2):
    assert len(g1) == len(g2)
    for a, b in zip(g1.nodes, g2.nodes):
        assert (a.op_name, a.name, a.parents) == (b.op_name, b.name, b.parents)
        np.testing.assert_array_equal(np.asarray(a.value), np.asarray(b.value))
        assert np.result_type(a.value) == np.result_type(b.value)
    r1, r2 = ardiff.backprop(g1), ardiff.backprop(g2)
    for u, v in zip(r1.grads, r2.grads):
        np.testing.assert_array_equal(u, v)


def test_networkx_round_trip_keeps_nodes_values_and_gradients():
    g, out, wrt = rich_graph()
    G = ardiff.to_networkx(g)
    assert G.graph["output"] == out.node.index
    assert G.nodes[0]["op"] == "input" and G.nodes[0]["name"] == "W"
    assert_same(g, ardiff.from_networkx(G))


def test_json_round_trip_is_exact_and_plain_json():
    g, out, wrt = rich_graph()
    text = ardiff.to_json(g)
    doc = json.loads(text)  # strict JSON: non-finite numbers are strings
    assert doc["format"] == "ardiff.graph" and doc["output"] == out.node.index
    assert "NaN" not in text and "Infinity" not in text
    g2 = ardiff.from_json(text)
    assert_same(g, g2)
    assert ardiff.to_json(ardiff.from_json(ardiff.to_json(g2))) == text


def test_parent_used_twice_round_trips():
    g = Graph()
    x = g.input(np.array([0.5, -2.0]))
    out = anp.sum(x * x)
    G = ardiff.to_networkx(g)
    assert G.edges[0, 1]["argnum"] == [0, 1]
    g2 = ardiff.from_json(ardiff.to_json(g))
    np.testing.assert_array_equal(ardiff.backprop(g2).grads[0], 2 * x.value)
    assert g.nodes[1].parents == g2.nodes[1].parents == ((0, 0), (1, 0))
    assert out.node.index == g2.output.node.index


if random_graphs is not None:
    @settings(max_examples=5, deadline=None)
    @given(random_graphs(min_nodes=20, max_nodes=50))
    def test_random_graphs_round_trip(drawn):
        g, out, wrt = drawn
        g.output = out
        g2 = ardiff.from_json(ardiff.to_json(g))
        assert_same(g, g2)
        g3 = ardiff.from_networkx(ardiff.to_networkx(g))
        assert len(g3) == len(g)


def hand_built():
    """L = sum(tanh(W @ x) * 2), written as a networkx graph with string ids."""
    G = nx.DiGraph()
    G.add_node("W", op="input", value=np.array([[1.0, -0.5], [0.25, 2.0]]))
    G.add_node("x", op="input", value=np.array([0.3, -0.1]))
    G.add_node("a", op="matmul")
    G.add_node("h", op="tanh", shape=(2,))
    G.add_node("y", op="multiply", args={1: 2.0})
    G.add_node("L", op="sum", kwargs={"axis": 0})
    G.add_edge("W", "a", argnum=0)
    G.add_edge("x", "a", argnum=1)
    G.add_edge("a", "h", argnum=0)
    G.add_edge("h", "y", argnum=0)
    G.add_edge("y", "L", argnum=0)
    return G


def test_hand_built_networkx_graph_gives_closed_form_gradients():
    G = hand_built()
    g = ardiff.from_networkx(G)
    W, x = G.nodes["W"]["value"], G.nodes["x"]["value"]
    dh = 2 * (1 - np.tanh(W @ x) ** 2)
    for method in (ardiff.backprop, ardiff.relax, ardiff.solve_triangular):
        res = method(g)
        np.testing.assert_allclose(res.grads[0], np.outer(dh, x), rtol=1e-14)
        np.testing.assert_allclose(res.grads[1], W.T @ dh, rtol=1e-14)
    assert g.node_of("h").op_name == "tanh"  # string ids become names
    assert [t.node.name for t in g.inputs] == ["W", "x"]


def broken(change):
    G = hand_built()
    change(G)
    return G


@pytest.mark.parametrize("change,pattern", [
    (lambda G: G.add_edge("L", "a", argnum=2), r"cycle: .*'a' -> .*'a'"),
    (lambda G: G.nodes["h"].update(op="tahn"), r"unknown op 'tahn'. Did you mean .*'tanh'"),
    (lambda G: G.nodes["h"].update(op="frobnicate"), r"unknown op 'frobnicate'.*ardiff.op.OPS"),
    (lambda G: G.add_edge("x", "h", argnum=1), r"Node 'h': op 'tanh' takes 1 argument"),
    (lambda G: G.nodes["L"]["kwargs"].update(bogus=1), r"Node 'L': wrong arity for op 'sum'"),
    (lambda G: G.edges["x", "a"].update(argnum=2),
     r"'a' \(op 'matmul'\): missing argnum\(s\) \[1\]"),
    (lambda G: G.edges["x", "a"].update(argnum=0), r"Node 'a': duplicate argnum 0"),
    (lambda G: G.nodes["y"].update(args={0: 1.0}), r"Node 'y': duplicate argnum 0"),
    (lambda G: G.edges["x", "a"].pop("argnum"), r"Edge 'x' -> 'a' has no 'argnum'"),
    (lambda G: G.edges["x", "a"].update(argnum=-1), r"argnum -1"),
    (lambda G: G.nodes["x"].update(value=np.ones(3)),
     r"Node 'a' \(op 'matmul'\) cannot be computed .*arg 0: \(2, 2\), arg 1: \(3,\)"),
    (lambda G: G.nodes["h"].update(shape=(3,)), r"Node 'h' .* declares shape \(3,\) but .* \(2,\)"),
    (lambda G: G.nodes["x"].pop("value"), r"Node 'x' \(op 'input'\) needs a 'value'"),
    (lambda G: G.nodes["W"].pop("op"), r"Node 'W' has no 'op'"),
    (lambda G: (G.add_node("k", op="constant", value=1.0), G.add_edge("k", "W", argnum=0)),
     r"Node 'W' is an input but has incoming edges from \['k'\]"),
    (lambda G: G.add_node("z", op="tanh"), r"Node 'z' \(op 'tanh'\) has no incoming edges"),
    (lambda G: (G.add_node("z", op="tanh"), G.add_edge("h", "z", argnum=0)),
     r"Cannot tell the output: .* 2 nodes without children"),
    (lambda G: G.nodes["W"].update(value=np.array(["a"])), r"Node 'W': .*dtype"),
])
def test_invalid_graphs_raise_precise_errors(change, pattern):
    G = broken(change)
    with pytest.raises(GraphValidationError, match=pattern):
        ardiff.from_networkx(G)


def test_cycle_error_carries_the_cycle():
    G = broken(lambda G: G.add_edge("L", "a", argnum=2))
    with pytest.raises(GraphValidationError) as info:
        ardiff.from_networkx(G)
    cycle = info.value.cycle
    assert cycle[0] == cycle[-1] and {"a", "h", "y", "L"} == set(cycle)


def test_output_can_be_chosen_and_multidigraph_edges_are_accepted():
    G = broken(lambda G: (G.add_node("z", op="tanh"), G.add_edge("h", "z", argnum=0)))
    g = ardiff.from_networkx(G, output="L")
    assert g.node_of(g.output).name == "L"
    M = nx.MultiDiGraph()
    M.add_node(0, op="input", value=np.array([1.5, -0.5]))
    M.add_node(1, op="multiply")
    M.add_node(2, op="sum")
    M.add_edge(0, 1, argnum=0)
    M.add_edge(0, 1, argnum=1)
    M.add_edge(1, 2, argnum=0)
    np.testing.assert_array_equal(ardiff.backprop(ardiff.from_networkx(M)).grads[0],
                                  [3.0, -1.0])


@pytest.mark.parametrize("text,pattern", [
    ("{not json", "Not valid JSON"),
    ('{"format": "something-else"}', "Not an ardiff graph"),
    ('{"format": "ardiff.graph", "version": 99}', "Unsupported ardiff graph version 99"),
    ('{"format": "ardiff.graph", "version": 1, "nodes": [{"id": 0, "op": "input", '
     '"value": 1.0}], "edges": [{"source": 0, "target": 5, "argnum": 0}]}',
     "refers to a node that is not in the graph"),
])
def test_bad_json_is_refused(text, pattern):
    with pytest.raises(GraphValidationError, match=pattern):
        ardiff.from_json(text)


def test_values_that_json_cannot_hold_are_refused_by_name():
    g = Graph()
    x = g.input(np.ones(2), name="x")
    anp.sum(x * x)
    g.nodes[1].kwargs = {"weird": object()}  # an op argument JSON cannot represent
    with pytest.raises(TypeError, match=r"node 1 .*cannot store a object"):
        ardiff.to_json(g)
