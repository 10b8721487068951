"""The plan (ardiff/solvers/plan.py) against references written here (issue 20, point 3).

Truth:

* pruning: the nodes on a path from `wrt` to the output, found by plain set searches
  over the recorded parents (forward from `wrt`, backward from the output), and the
  docstring's orders of each node's children, on drawn graphs with drawn outputs and
  `wrt` lists (inputs, intermediate nodes, repeats, nodes after the output);
* `resolve`: the node indices the user's references name, and the errors it promises;
* the sums of VJPs: NumPy's own left-to-right sums of copies of the terms, and that
  no array a caller or the graph still holds is written;
* the slice scatter: NumPy's boolean masks for `_box` and `_tiles`, and for
  `scatter_slices` the general path spelled out in NumPy (a zero array per child with
  the cotangent in its slice, added left to right), bit for bit;
* gradients: closed forms written by hand, and a result handed to the user is not
  changed by a later call.
"""

import warnings
import weakref

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ardiff
import ardiff.numpy as anp
from ardiff.graph import Released
from ardiff.op import OPS
from ardiff.recorder import TracedCall
from ardiff.solvers import compile_plan
from ardiff.solvers.plan import add_into, resolve, scatter_slices, sum_of_vjps
from ardiff.strategies import random_graphs

# -- pruning: an independent reference ------------------------------------------------------


def reference_plan(graph, out, wrt):
    """(relevant, relaxing, children, sources) by set searches over `node.parents`."""
    nodes = graph.nodes
    parents = [[p for _, p in n.parents] for n in nodes]
    below = set(wrt)  # descends from (or is) a wrt node
    for k in range(len(nodes)):
        if any(p in below for p in parents[k]):
            below.add(k)
    above = {out}  # the output or an ancestor of it
    for k in range(out, -1, -1):
        if k in above:
            above.update(parents[k])
    relevant = sorted(below & above)
    kept = set(relevant)
    has_parent = {k for k in relevant if any(p in kept for p in parents[k])}
    relaxing = [k for k in relevant if k in has_parent and k != out]
    children = {}
    for k in relevant:  # topological order: the children of each node, first to last
        for argnum, p in nodes[k].parents:
            if p in kept:
                children.setdefault(p, []).append((k, argnum))
    for p, kids in children.items():
        if p not in has_parent:  # a source: summed from the last child down
            kids.reverse()
    sources = [i for i in dict.fromkeys(wrt)
               if i != out and i in children and i not in has_parent]
    return relevant, relaxing, children, sources


def check_plan(graph, out, wrt):
    relevant, relaxing, children, sources = reference_plan(graph, out, wrt)
    for stage in (True, False):
        plan = compile_plan(graph, out, wrt, stage=stage)
        assert plan.output == out and plan.wrt == wrt
        assert plan.relevant == relevant
        assert plan.relaxing == relaxing
        assert plan.sources == sources
        assert len(plan.children) >= max([out, *wrt]) + 1
        for i, kids in enumerate(plan.children):
            assert kids == children.get(i), (i, kids, children.get(i))
        assert plan.staged == stage
        edges = plan.edges  # staged on first use
        assert plan.staged
        assert list(edges) == relevant
        for i in relevant:
            assert [c for c, _ in edges[i]] == [c for c, _ in children.get(i, [])]
    return plan


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(drawn=random_graphs(min_nodes=6, max_nodes=18, kinks=False), pick=st.randoms())
def test_pruning_matches_set_searches_on_drawn_graphs(drawn, pick):
    graph, out, wrt = drawn
    n = len(graph.nodes)
    outputs = [out._node, pick.randrange(n), pick.randrange(n)]
    differentiable = [k for k in range(n) if graph.nodes[k].op != "constant"]
    for output in outputs:
        check_plan(graph, output, [w._node for w in wrt])  # some inputs
        chosen = pick.sample(differentiable, min(len(differentiable), pick.randint(1, 4)))
        check_plan(graph, output, chosen)  # intermediate nodes, after the output too
        check_plan(graph, output, chosen + chosen[:1])  # a repeat
        check_plan(graph, output, [n.index for n in graph._inputs])  # every input


def test_pruning_of_a_hand_built_graph():
    """Every case at once, written out: a skip connection, a node read twice, an input
    not differentiated, a constant, a dead branch, a wrt node after the output."""
    g = ardiff.Graph()
    x = g.input(np.array([0.5, -1.0]), name="x")       # 0
    w = g.input(np.array([2.0, 3.0]), name="w")        # 1
    c = g.constant(np.array([1.0, 1.0]), name="c")     # 2
    h = x * w                                          # 3
    e = anp.exp(h)                                     # 4
    s = h * e                                          # 5 (skip: h and exp(h))
    q = s * s                                          # 6 (read twice)
    anp.sin(x)                                         # 7 (not an ancestor of out)
    r = q + c                                          # 8
    out = anp.sum(r)                                   # 9
    late = anp.cos(w)                                  # 10 (after the output)
    plan = check_plan(g, out._node, [x._node])
    assert plan.relevant == [0, 3, 4, 5, 6, 8, 9]
    assert plan.relaxing == [3, 4, 5, 6, 8]
    assert plan.children[0] == [(3, 0)]
    assert plan.children[3] == [(4, 0), (5, 0)]
    assert plan.children[6] == [(8, 0)]
    assert plan.children[5] == [(6, 0), (6, 1)]
    assert plan.children[1] is None and plan.children[7] is None  # w not differentiated
    assert plan.sources == [0]
    # both inputs: every root but the constant is differentiated
    plan = check_plan(g, out._node, [x._node, w._node])
    assert plan.relevant == [0, 1, 3, 4, 5, 6, 8, 9] and plan.sources == [0, 1]
    # a source with several children sums them from the last one down
    plan = check_plan(g, s._node, [h._node])
    assert plan.children[3] == [(5, 0), (4, 0)] and plan.relaxing == [4]
    # wrt after the output and wrt equal to the output: no path, nothing relaxes
    plan = check_plan(g, out._node, [late._node, out._node])
    assert plan.relevant == [9] and plan.relaxing == [] and plan.sources == []
    assert len(plan.children) == 11
    assert plan.depth == {9: 0} and plan.max_depth == 0
    # no wrt: nothing is relevant; an output that does not descend from wrt: nor here
    plan = check_plan(g, out._node, [])
    assert plan.relevant == [] and plan.relaxing == [] and plan.sources == []
    plan = check_plan(g, 7, [w._node])
    assert plan.relevant == [] and plan.children[1] is None
    # stage=True is the default
    assert compile_plan(g, out._node, [x._node]).staged
    assert compile_plan(g, out, [x]).staged
    # depth: longest path to the output
    plan = check_plan(g, out._node, [x._node])
    assert plan.depth == {9: 0, 8: 1, 6: 2, 5: 3, 4: 4, 3: 5, 0: 6}
    assert plan.max_depth == 5
    # a node that is both in wrt and relaxing is not a source
    plan = check_plan(g, out._node, [x._node, h._node, x._node])
    assert plan.sources == [0]


# -- resolve -------------------------------------------------------------------------------

# the messages in full: what a user reads
NO_OUTPUT = r"^No output given: pass output=\.\.\. \(a traced value of the graph\)\.$"
CONSTANT = (r"^Cannot differentiate with respect to .*k.*: it was added with Graph\.constant; "
            r"use Graph\.input for differentiable leaves\.$")
NO_MATCH = (r"^Rule .* matches no node between the inputs and the output of this graph, so "
            r"it would do nothing; remove it or check the graph\.$")


def test_resolve_names_every_kind_of_reference():
    g = ardiff.Graph()
    x = g.input(np.array([0.5, -1.0]), name="x")
    w = g.input(np.array(2.0), name="w")
    k = g.constant(np.array(3.0), name="k")
    y = anp.sum(anp.tanh(x * w) * k)
    g.output = y
    expected = (y._node, [x._node, w._node])
    assert resolve(g, y, [x, w]) == expected
    assert resolve(g, None, None) == expected  # the graph's output and inputs
    assert resolve(g, y._node, ("x", w._node)) == expected
    assert resolve(g, g.nodes[y._node], [g.nodes[x._node], "w"]) == expected
    assert resolve(g, y, [w]) == (y._node, [w._node])
    assert resolve(g, y, [x, "w"]) == expected  # traced values mixed with names
    assert resolve(g, x, [x]) == (x._node, [x._node])
    assert resolve(g, y, []) == (y._node, [])
    for wrt in ([k], [x, k], ("k",), [k._node]):
        with pytest.raises(ValueError, match=CONSTANT):
            resolve(g, y, wrt)
    with pytest.raises(TypeError, match=r"^wrt must be a list or tuple of traced values \(or "
                       r"node indices/names\)\.$"):
        resolve(g, y, x)
    other = ardiff.Graph()
    z = other.input(np.array(1.0))
    with pytest.raises(ValueError, match="different graph"):
        resolve(g, y, [z])
    with pytest.raises(ValueError, match="different graph"):
        resolve(g, anp.sin(z), [x])
    empty = ardiff.Graph()
    empty.input(np.array(1.0))
    with pytest.raises(ValueError, match=NO_OUTPUT):
        resolve(empty, None, None)


def test_compile_plan_refuses_constants_and_missing_outputs():
    g = ardiff.Graph()
    x = g.input(np.array([0.5, -1.0]), name="x")
    k = g.constant(np.array(3.0), name="k")
    y = anp.sum(x * k)
    with pytest.raises(ValueError, match=CONSTANT):
        compile_plan(g, y, [x, k])
    with pytest.raises(ValueError, match=NO_OUTPUT):
        compile_plan(g)
    g.output = y
    assert compile_plan(g).wrt == [x._node]


# -- rules in the plan ---------------------------------------------------------------------


class ScaleVJP:
    """A rule replacing the VJP of every edge out of the nodes named in `names` by
    `g * value` (the names are read from the graph the plan passes)."""

    def __init__(self, names, value):
        self.names, self.value = names.split(), value

    def local_vjp(self, graph, node, argnum):
        parent = dict((a, p) for a, p in node.parents)[argnum]
        if graph.nodes[parent].name not in self.names:
            return None
        return lambda g: g * self.value


def test_rules_replace_the_edges_they_match_and_must_match_one():
    g = ardiff.Graph()
    x = g.input(np.array([0.5, -1.0]), name="tanh")  # the edges out of x: into tanh
    t = anp.tanh(x)
    g.nodes[t._node].name = "sin"  # the edge out of tanh(x): into sin
    y = anp.sum(anp.sin(t))
    by_hand = np.cos(np.tanh([0.5, -1.0])) * 3.0  # tanh's VJP replaced by 3 g
    plan = compile_plan(g, y, [x], rules=[ScaleVJP("tanh", 3.0)], stage=False)
    assert plan.staged  # rules stage at once
    res = ardiff.relax(g, y, [x], rules=[ScaleVJP("tanh", 3.0)])
    np.testing.assert_allclose(res.grads[0], by_hand, rtol=1e-14)
    # the first rule that matches an edge gives its VJP: tanh 5 g, sin 2 g
    res = ardiff.relax(g, y, [x], rules=[ScaleVJP("tanh", 5.0), ScaleVJP("sin tanh", 2.0)])
    np.testing.assert_allclose(res.grads[0], [10.0, 10.0], rtol=1e-14)
    res = ardiff.relax(g, y, [x], rules=[ScaleVJP("sin", 7.0), ScaleVJP("sin tanh", 2.0)])
    np.testing.assert_allclose(res.grads[0], [14.0, 14.0], rtol=1e-14)
    for rules in ([ScaleVJP("exp", 1.0)], [ScaleVJP("x", 1.0)],
                  [ScaleVJP("tanh", 1.0), ScaleVJP("exp", 1.0)],
                  [ScaleVJP("exp", 1.0), ScaleVJP("tanh", 1.0)],
                  [ScaleVJP("sin tanh", 1.0), ScaleVJP("tanh", 2.0)]):  # shadowed
        with pytest.raises(ValueError, match=NO_MATCH):
            compile_plan(g, y, [x], rules=rules)


# -- sums of VJPs ----------------------------------------------------------------------------


def left_to_right(terms):
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def same_bits(a, b):
    return (type(a) is type(b) and np.shape(a) == np.shape(b)
            and np.asarray(a).dtype == np.asarray(b).dtype
            and np.asarray(a).tobytes() == np.asarray(b).tobytes())


TERM_KINDS = ["fresh", "held", "view", "readonly", "scalar", "float", "zero-d", "row",
              "float32", "complex"]


def make_term(kind, rng, shape):
    """(vjp, the array a caller still holds or None) for one kind of VJP result."""
    values = rng.standard_normal(shape)
    if kind == "fresh":
        return (lambda _: values.copy()), None
    if kind == "held":
        return (lambda _: values), values
    if kind == "view":
        base = rng.standard_normal((shape[0] + 1, *shape[1:]))
        return (lambda _: base[1:]), base
    if kind == "readonly":
        values.flags.writeable = False
        return (lambda _: values), values
    if kind == "scalar":
        return (lambda _: np.float64(values.flat[0])), None
    if kind == "float":
        return (lambda _: float(values.flat[0])), None
    if kind == "zero-d":
        return (lambda _: np.array(values.flat[0])), None
    if kind == "row":  # broadcasts against the others
        return (lambda _: values[0].copy()), None
    if kind == "float32":
        return (lambda _: values.astype(np.float32)), None
    return (lambda _: values * (1 + 0.5j)), None


@settings(max_examples=200, deadline=None)
@given(kinds=st.lists(st.sampled_from(TERM_KINDS), min_size=1, max_size=5),
       seed=st.integers(0, 2 ** 16))
def test_sum_of_vjps_is_numpys_left_to_right_sum_and_writes_nothing_it_does_not_own(kinds,
                                                                                    seed):
    rng = np.random.default_rng(seed)
    shape = (3, 4)
    edges, held = [], []
    for child, kind in enumerate(kinds):
        vjp, keep = make_term(kind, rng, shape)
        edges.append((child, vjp))
        if keep is not None:
            held.append((keep, keep.copy()))
    x = dict.fromkeys(range(len(kinds)))
    expected = left_to_right([np.copy(vjp(None)) if isinstance(vjp(None), np.ndarray)
                              else vjp(None) for _, vjp in edges])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        got = sum_of_vjps(edges, x)
    if type(expected) is np.ndarray:
        assert type(got) is np.ndarray and got.dtype == expected.dtype
        assert got.shape == expected.shape and got.tobytes() == expected.tobytes()
    else:  # a 0-d array summed in place stays one where NumPy gives a scalar: same bits
        assert np.ndim(got) == 0 and np.asarray(got).dtype == np.asarray(expected).dtype
        assert np.asarray(got).tobytes() == np.asarray(expected).tobytes(), (got, expected)
    for array, before in held:  # nothing a caller holds is written
        assert array.tobytes() == before.tobytes()
        if len(kinds) > 1:
            assert not np.shares_memory(got, array)
    assert sum_of_vjps([], x) is None


def test_sum_of_vjps_adds_into_a_fresh_term_nothing_else_holds():
    """The sum owns a VJP's fresh result held by no other name and adds into it (the
    docstring's promise, which keeps a shared weight's sum from allocating an array per
    term); a term still held elsewhere is never the one written."""
    made = []

    def fresh(value):
        def vjp(_):
            out = np.full(3, value)
            made.append(weakref.ref(out))  # a weak reference: the array stays unshared
            return out
        return vjp

    held = np.full(3, 0.25)
    for edges, expected, owner in (
            ([(0, fresh(1.0)), (1, fresh(2.0)), (2, fresh(4.0))], 7.0, None),
            ([(0, lambda _: held), (1, fresh(2.0)), (2, fresh(4.0))], 6.25, None),
            ([(0, fresh(1.0)), (1, lambda _: held), (2, lambda _: held)], 1.5, 0)):
        made.clear()
        got = sum_of_vjps(edges, dict.fromkeys(range(3)))
        np.testing.assert_array_equal(got, np.full(3, expected))
        assert any(got is ref() for ref in made)
        if owner is not None:  # the only fresh term: the first
            assert got is made[owner]()
        np.testing.assert_array_equal(held, np.full(3, 0.25))


def test_sum_of_vjps_with_one_edge_is_the_vjp_itself():
    held = np.array([1.0, 2.0])
    assert sum_of_vjps([(0, lambda g: held)], {0: None}) is held
    assert sum_of_vjps([(5, lambda g: g * 2.0)], {5: np.array([1.5])})[0] == 3.0


def test_sum_of_vjps_stages_recorded_edges_like_the_staged_ones():
    """With `nodes`, the pairs are (child, argnum) and each VJP is staged on the way:
    the sum is the same as that of the staged plan's VJPs, and both are the gradient
    written by hand."""
    g = ardiff.Graph()
    x = g.input(np.array([0.3, -0.7, 1.1]), name="x")
    a = anp.sin(x)
    b = x * x
    c = anp.exp(x)
    out = anp.sum(a + b * c)
    plan = compile_plan(g, out, [x], stage=False)
    kids = plan.children[x._node]
    assert len(kids) == 4  # sin, the square twice, exp
    rng = np.random.default_rng(0)
    acts = {k: rng.standard_normal(3) for k, _ in kids}
    xv = np.array([0.3, -0.7, 1.1])
    by_hand = np.zeros(3)
    for k, _ in kids:
        by_hand = by_hand + {a._node: np.cos(xv), b._node: xv, c._node: np.exp(xv)}[k] * acts[k]
    unstaged = plan.activity_target(x._node, acts)
    np.testing.assert_allclose(unstaged, by_hand, rtol=1e-14)
    plan.stage()
    staged = plan.activity_target(x._node, acts)
    assert staged.tobytes() == unstaged.tobytes()
    assert sum_of_vjps(kids, acts, g.nodes).tobytes() == unstaged.tobytes()


def test_add_into_is_numpys_sum():
    rng = np.random.default_rng(1)
    total = rng.standard_normal((2, 3))
    for term in (rng.standard_normal((2, 3)), rng.standard_normal(3), np.float64(2.5), 1.5,
                 rng.standard_normal((2, 3)).astype(np.float32),
                 rng.standard_normal((2, 3)) * 1j, rng.standard_normal((4, 2, 3))):
        before = np.copy(term)
        expected = np.copy(total) + term
        got = add_into(np.copy(total), term)
        assert same_bits(got, expected)
        assert np.array_equal(np.asarray(term), before)  # the term is never written
    # the same shape and dtype: written into the running sum itself
    mine = np.copy(total)
    assert add_into(mine, np.ones((2, 3))) is mine


# -- slices scattered into one array ---------------------------------------------------------


def slice_strategy(dim):
    bound = st.one_of(st.none(), st.integers(-dim - 2, dim + 2))
    return st.builds(slice, bound, bound,
                     st.sampled_from([None, 1, 1, 1, 2, -1]))


@st.composite
def slicings(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim)))
    items = []
    for _ in range(draw(st.integers(1, 4))):
        length = draw(st.integers(1, ndim))
        index = tuple(draw(slice_strategy(shape[k])) for k in range(length))
        kind = draw(st.sampled_from(["tuple", "tuple", "tuple", "bare", "int", "list"]))
        if kind == "bare":
            index = index[0]
        elif kind == "int":
            index = (draw(st.integers(0, shape[0] - 1)), *index[1:])
        elif kind == "list":
            index = (list(range(shape[0]))[:1], *index[1:])
        items.append(index)
    return shape, items


def covers(shape, index):
    mask = np.zeros(shape, dtype=bool)
    mask[index] = True
    return mask


def applies(shape, items):
    """The docstring's condition, by NumPy masks: two or more unit-step basic slices and
    no element in all of them."""
    if len(items) < 2:
        return False
    for index in items:
        parts = index if type(index) is tuple else (index,)
        if len(parts) > len(shape) or any(
                type(p) is not slice or p.indices(shape[k])[2] != 1
                for k, p in enumerate(parts)):
            return False
    return not np.logical_and.reduce([covers(shape, i) for i in items]).any()


def check_scatter(shape, items, dtype, seed, lean):
    rng = np.random.default_rng(seed)
    z0 = rng.standard_normal(shape).astype(dtype)

    def f(z):
        z = z * 1.0  # nothing reads this answer: a lean recording releases it
        return sum(anp.sum(anp.real(z[index])) for index in items)

    call = TracedCall(f, 0, (z0,), {}, lean=lean)
    nodes = call.graph.nodes
    assert (type(nodes[1].value) is Released) == lean
    kids = [(n.index, 0) for n in nodes if n.op is OPS["getitem"]]
    assert len(kids) == len(items)
    x = {}
    for k, _ in kids:
        g = rng.standard_normal(np.shape(nodes[k].value)).astype(dtype)
        if g.size:
            g.flat[0] = -0.0
            g.flat[-1] = np.nan if rng.random() < 0.3 else 0.0
        x[k] = g
    terms = []  # the general path: a zero array per child, its cotangent in its slice
    for index, (k, _) in zip(items, kids):
        term = np.zeros(shape, dtype=dtype)
        term[index] = x[k]
        terms.append(term)
    # freed buffers of this size full of 7s: an element the scatter leaves unwritten in an
    # uninitialised array most likely reads 7 (NumPy and malloc recycle them)
    poison = [np.full(shape, 7.0, dtype=dtype) for _ in range(8)]
    del poison
    got = scatter_slices(kids, x, nodes)
    if not applies(shape, items):
        assert got is None
        return
    expected = left_to_right(terms)
    assert type(got) is np.ndarray and got.dtype == dtype and got.shape == shape
    assert got.tobytes() == expected.tobytes(), (items, got, expected)
    for k, _ in kids:  # cotangents are read, not written
        assert not np.shares_memory(got, x[k])


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(drawn=slicings(), dtype=st.sampled_from([np.float64, np.float32, np.complex128]),
       seed=st.integers(0, 2 ** 16), lean=st.booleans())
def test_scatter_slices_is_the_general_sum_bit_for_bit(drawn, dtype, seed, lean):
    """Also on a lean recording, where the sliced value is released (`Released`)."""
    check_scatter(*drawn, dtype, seed, lean)


SCATTER_CASES = [
    ((4, 1), (np.s_[:3], np.s_[1:])),  # overlapping rows, a one-wide axis not indexed
    ((4, 1), (np.s_[:2], np.s_[2:])),  # tiles
    ((2, 3), (np.s_[:1], np.s_[1:])),  # tiles, the last axis not indexed
    ((3, 4), (0, 1)),  # integers, not slices
    ((3, 4), ([0], [1])),  # advanced indices
    ((6,), (np.s_[0:2], np.s_[1:3], np.s_[3:5])),  # no common element, pairs overlap, a gap
    ((6,), (np.s_[0:1], np.s_[2:3])),  # disjoint, not covering
    ((6,), (np.s_[0:2], np.s_[4:6])),  # disjoint, not covering
    ((2, 6), (np.s_[:, 0:2], np.s_[:, 2:3], np.s_[:, 3:])),  # tiles
    ((2, 6), (np.s_[:, 0:2], np.s_[:, 2:3], np.s_[1:, 3:])),  # one row short of tiling
]


@pytest.mark.parametrize("lean", [False, True])
@pytest.mark.parametrize("shape, items", SCATTER_CASES)
def test_scatter_slices_on_written_out_cases(shape, items, lean):
    for seed in range(3):
        check_scatter(shape, items, np.float64, seed, lean)


def test_scatter_slices_declines_what_it_cannot_prove():
    """A child of another op or argument, cotangents that are not arrays of the sliced
    array's dtype, slices of different arrays: None, and the general path runs."""
    z0 = np.arange(12.0).reshape(3, 4)

    def kids_of(f, *args):
        call = TracedCall(f, tuple(range(len(args))), args, {})
        nodes = call.graph.nodes
        kids = [(c, argnum) for c, argnum in call.graph.children()[0]]
        return kids, nodes

    kids, nodes = kids_of(lambda z: anp.sum(z[:1]) + anp.sum(z[1:]), z0)
    x = {k: np.ones(np.shape(nodes[k].value)) for k, _ in kids}
    assert scatter_slices(kids, x, nodes) is not None  # the control: it applies
    assert scatter_slices(kids[:1], x, nodes) is None
    for k, _ in kids:
        for bad in (x[k].astype(np.float32), x[k].tolist(), np.float64(1.0)):
            changed = dict(x)
            changed[k] = bad
            assert scatter_slices(kids, changed, nodes) is None
    kids, nodes = kids_of(lambda z: anp.sum(z[:1]) + anp.sum(z * 2.0), z0)
    x = {k: np.ones(np.shape(nodes[k].value)) for k, _ in kids}
    assert scatter_slices(kids, x, nodes) is None
    kids, nodes = kids_of(lambda z: anp.sum(z[:1]) + anp.sum(z[1:]), 1.0 * np.arange(4.0))
    x = {k: np.ones(np.shape(nodes[k].value)) for k, _ in kids}
    assert scatter_slices(kids, x, nodes) is not None
    # slices of two different arrays
    g = ardiff.Graph()
    a = g.input(np.arange(4.0))
    b = g.input(np.arange(4.0))
    s1, s2 = a[:2], b[2:]
    anp.sum(s1) + anp.sum(s2)
    kids = [(s1._node, 0), (s2._node, 0)]
    x = {s1._node: np.ones(2), s2._node: np.ones(2)}
    assert scatter_slices(kids, x, g.nodes) is None
    s3 = a[2:]
    kids = [(s1._node, 0), (s3._node, 0)]
    x[s3._node] = np.ones(2)
    assert scatter_slices(kids, x, g.nodes) is not None  # the control
    assert scatter_slices([(s1._node, 1), (s3._node, 0)], x, g.nodes) is None  # argnum


# -- results handed to the user ----------------------------------------------------------------


def rnn_loss(w, x):
    h = x
    for _ in range(6):  # the weight is read by every step: its sum has 6 terms
        h = anp.tanh(w * h + 0.1)
    return anp.sum(h ** 2)


def rnn_grad_by_hand(w, x):
    hs = [x]
    for _ in range(6):
        hs.append(np.tanh(w * hs[-1] + 0.1))
    gh = 2 * hs[-1]
    gw = np.zeros_like(w)
    for k in range(6, 0, -1):
        pre = gh * (1 - hs[k] ** 2)
        gw = gw + pre * hs[k - 1]
        gh = pre * w
    return gw


def test_a_returned_gradient_is_not_overwritten_by_later_calls():
    x = np.array([0.4, -0.3, 0.9])
    ws = [np.array([0.5, 1.2, -0.8]), np.array([-1.1, 0.3, 0.7]), np.array([2.0, 2.0, 2.0])]
    for make in (lambda: ardiff.grad(rnn_loss),
                 lambda: ardiff.grad(rnn_loss, method="backprop"),
                 lambda: ardiff.grad(rnn_loss, schedule="parallel", closed_form=False,
                                     max_iter=50),
                 lambda: ardiff.compile(rnn_loss)):
        fun = make()
        kept = []
        for w in ws + ws:
            got = fun(w, x)
            np.testing.assert_allclose(got, rnn_grad_by_hand(w, x), rtol=1e-12)
            kept.append((got, got.copy()))
        for got, copy in kept:
            assert got.tobytes() == copy.tobytes()
        assert len({id(got) for got, _ in kept}) == len(kept)
