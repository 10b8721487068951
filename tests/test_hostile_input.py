"""Careless and hostile input (issue 23): graph files fed to `ardiff.from_json`.

Every case feeds what a careless user or an untrusted file would give and checks that the
outcome is a `GraphValidationError` naming the node / field, raised before anything large
is allocated.
"""

import ast
import copy
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ardiff
import ardiff.numpy as anp
from ardiff.interchange import MAX_ARGUMENTS, GraphValidationError


def base_doc() -> dict:
    g = ardiff.trace(lambda x: anp.sum(anp.reshape(anp.tanh(x), (2, 2))),
                     np.array([0.5, -1.0, 2.0, 3.0]))
    return json.loads(ardiff.to_json(g))


def refused(doc_or_text, pattern, **kwargs):
    text = doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text)
    start = time.perf_counter()
    with pytest.raises(GraphValidationError, match=pattern) as info:
        ardiff.from_json(text, **kwargs)
    assert time.perf_counter() - start < 5, "refusal took too long: something was allocated"
    return info.value


def mutated(change):
    doc = base_doc()
    change(doc)
    return doc


def test_base_document_loads():
    g = ardiff.from_json(json.dumps(base_doc()))
    assert len(g) == 4


def test_huge_args_key_is_refused_without_building_a_list():
    doc = mutated(lambda d: d["nodes"][2]["args"].update({"100000000": 1}))
    err = refused(doc, r"Node 2: 'args': argument position '100000000' must be an integer "
                       rf"from 0 to {MAX_ARGUMENTS - 1}")
    assert err.node == 2


def test_huge_edge_argnum_is_refused():
    doc = mutated(lambda d: d["edges"][0].update(argnum=100000000))
    refused(doc, r"Edge 0 -> 1 has argnum 100000000; .* below 1024")


@pytest.mark.parametrize("key", ["a", "1.5", "-1", "", " 1"])
def test_non_integer_args_key_is_refused(key):
    doc = mutated(lambda d: d["nodes"][2]["args"].update({key: 1}))
    refused(doc, r"Node 2: 'args': argument position .* must be an integer")


@pytest.mark.parametrize("dtype", ["V2000000000", "S100", "U5", "O", "<f16x", "float99",
                                   "[('a', '<f8')]", 7])
def test_bad_array_dtype_is_refused_before_allocating(dtype):
    doc = mutated(lambda d: d["nodes"][0]["value"].update(dtype=dtype))
    err = refused(doc, r"Node 0: 'value': 'dtype': .*(not allowed|not a NumPy dtype|must be a "
                       r"string)")
    assert err.node == 0


@pytest.mark.parametrize("dtype", ["V2000000000", "float99", 3])
def test_bad_declared_dtype_is_refused(dtype):
    doc = mutated(lambda d: d["nodes"][1].update(dtype=dtype))
    err = refused(doc, r"Node 1: 'dtype'")
    assert err.node == 1


def test_bad_dtype_argument_is_refused():
    doc = mutated(lambda d: d["nodes"][3]["kwargs"].update(dtype={"__dtype__": "V2000000000"}))
    refused(doc, r"Node 3: 'kwargs'\['dtype'\]: '__dtype__': dtype 'V2000000000' is not allowed")


def test_duplicate_node_id_is_refused():
    # the later node used to win silently: tanh became sin
    doc = mutated(lambda d: d["nodes"].insert(2, {"id": 1, "op": "sin"}))
    err = refused(doc, r"Node 1: the id is used by two nodes \(nodes\[2\] and an earlier one\)")
    assert err.node == 1


@pytest.mark.parametrize("depth", [100_000, 500])
def test_deep_nesting_is_refused_without_recursion_error(depth):
    text = json.dumps(base_doc()).replace('"args": {"1": {"__tuple__": [2, 2]}}',
                                          '"args": {"1": ' + "[" * depth + "]" * depth + "}")
    refused(text, r"nest(s)? (too deeply|more than 64 levels)")


@pytest.mark.parametrize("entry,pattern", [
    (5, r"nodes\[1\] is a int, not an object"),
    ([1, 2], r"nodes\[1\] is a list"),
    ({"op": "tanh"}, r"nodes\[1\] has no 'id'"),
    ({"id": [1], "op": "tanh"}, r"nodes\[1\]: 'id': node ids are integers or strings"),
    ({"id": 1.5, "op": "tanh"}, r"node ids are integers or strings"),
])
def test_node_that_is_not_a_proper_object_is_refused(entry, pattern):
    doc = mutated(lambda d: d["nodes"].__setitem__(1, entry))
    refused(doc, pattern)


@pytest.mark.parametrize("field,value,pattern", [
    ("nodes", {"a": 1}, r"'nodes' must be a list"),
    ("edges", 3, r"'edges' must be a list"),
    ("edges", [7], r"edges\[0\] is a int"),
    ("edges", [{"source": [0], "target": 1, "argnum": 0}], r"edges\[0\]: 'source'"),
    ("output", [3], r"'output': node ids are integers or strings"),
])
def test_bad_top_level_fields_are_refused(field, value, pattern):
    doc = mutated(lambda d: d.__setitem__(field, value))
    refused(doc, pattern)


@pytest.mark.parametrize("value,pattern", [
    ({"__slice__": ["a"]}, r"'__slice__' holds \['a'\]; it must be a list of 1 to 3"),
    ({"__slice__": [1, 2, 3, 4]}, r"'__slice__'"),
    ({"__slice__": 5}, r"'__slice__'"),
    ({"__float__": "abc"}, r"'__float__' holds 'abc'; it must be 'nan', 'inf' or '-inf'"),
    ({"__float__": [1]}, r"'__float__'"),
    ({"__tuple__": 3}, r"'__tuple__' must hold a list"),
    ({"__dict__": [1]}, r"'__dict__' must hold an object"),
    ({"__what__": 1}, r"unrecognised encoded value"),
])
def test_bad_encoded_arguments_are_refused_naming_the_field(value, pattern):
    doc = mutated(lambda d: d["nodes"][2]["args"].update({"1": value}))
    err = refused(doc, r"Node 2: 'args'\['1'\]: " + pattern)
    assert err.node == 2


@pytest.mark.parametrize("value,pattern", [
    ({"__ndarray__": ["a", 1.0, 2.0, 3.0], "dtype": "<f8", "shape": [4]},
     r"element 0 is the string 'a'"),
    ({"__ndarray__": ["nan", 1, 2, 3], "dtype": "<i8", "shape": [4]},
     r"element 0 is the string 'nan'"),
    ({"__ndarray__": [[1.0], 1.0, 2.0, 3.0], "dtype": "<f8", "shape": [4]},
     r"element 0 is \[1.0\]; array elements must be numbers"),
    ({"__ndarray__": [None, 1.0, 2.0, 3.0], "dtype": "<f8", "shape": [4]}, r"element 0 is None"),
    ({"__ndarray__": [1.0, 2.0, 3.0], "dtype": "<f8", "shape": [4]},
     r"shape \[4\] needs 4 element\(s\) but the list holds 3"),
    ({"__ndarray__": [1.0, 2.0], "dtype": "<f8", "shape": [-2, -1]},
     r"'shape': shape must be a list of at most 64 non-negative integers"),
    ({"__ndarray__": [1.0], "dtype": "<f8", "shape": "4"}, r"'shape': shape must be a list"),
    ({"__ndarray__": 5, "dtype": "<f8", "shape": [4]}, r"'__ndarray__' must be a flat list"),
    ({"__ndarray__": [10 ** 30], "dtype": "<i8", "shape": [1]}, r"do not fit dtype <i8"),
    ({"__scalar__": [1.0, 2.0], "dtype": "<f8", "shape": [2]}, r"a '__scalar__' has shape \[\]"),
    ({"__ndarray__": [1.0], "dtype": "<f8", "shape": [100000, 100000, 100000]},
     r"an array of shape \(100000, 100000, 100000\) would take 8,000,000,000,000,000 bytes, "
     r"more than the limit"),
])
def test_bad_arrays_are_refused_naming_the_node(value, pattern):
    doc = mutated(lambda d: d["nodes"][0].update(value=value))
    err = refused(doc, r"Node 0: 'value': .*" + pattern)
    assert err.node == 0


def test_declared_shape_is_checked_and_bounded_before_computing():
    refused(mutated(lambda d: d["nodes"][1].update(shape=[10 ** 6, 10 ** 6])),
            r"Node 1: its declared shape \(1000000, 1000000\) would take .* max_bytes=")
    refused(mutated(lambda d: d["nodes"][1].update(shape="four")), r"Node 1: 'shape'")
    refused(mutated(lambda d: d["nodes"][1].update(shape=[5])),
            r"Node 1 .* declares shape \(5,\) but its arguments give shape \(4,\)")


def test_shape_like_arguments_are_bounded_and_the_bound_can_be_raised():
    doc = base_doc()
    # broadcast_to a huge shape: refused before any op runs, by name
    doc["nodes"][2] = {"id": 2, "op": "broadcast_to",
                       "args": {"1": {"__tuple__": [100000, 100000, 4]}}}
    doc["nodes"][3].pop("shape")
    refused(doc, r"Node 2: 'args'\[1\]: an array of shape \(100000, 100000, 4\)")
    small = base_doc()
    small["nodes"][2] = {"id": 2, "op": "broadcast_to", "args": {"1": {"__tuple__": [300, 4]}}}
    refused(small, r"more than the limit of 1,000", max_bytes=1000)
    assert len(ardiff.from_json(json.dumps(small))) == 4
    big = base_doc()
    big["nodes"][0]["value"] = {"__ndarray__": [0.0] * 200, "dtype": "<f8", "shape": [200]}
    big["nodes"][0].pop("shape")
    for node in big["nodes"][1:]:
        node.pop("shape")
    big["nodes"][2]["args"]["1"] = {"__tuple__": [-1, 2]}
    refused(big, r"Node 0: 'value': an array of shape \(200,\) would take 1,600 bytes",
            max_bytes=1000)
    assert len(ardiff.from_json(json.dumps(big), max_bytes=2000)) == 4


def test_bad_op_name_and_kwargs_are_refused():
    refused(mutated(lambda d: d["nodes"][1].update(op=["tanh"])),
            r"Node 1: 'op' must be an op name \(a string\)")
    refused(mutated(lambda d: d["nodes"][3].update(kwargs=[1])), r"Node 3: 'kwargs': must be")
    refused(mutated(lambda d: d["nodes"][2].update(args=[1])), r"Node 2: 'args': must be")
    refused(mutated(lambda d: d["nodes"][1].update(name=5)), r"Node 1: 'name' must be a string")


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_bare_nan_and_infinity_tokens_are_refused(token):
    text = json.dumps(base_doc()).replace("0.5", token)
    refused(text, rf"bare {token}, which is not JSON; write non-finite floats as")


def test_not_text_is_refused():
    with pytest.raises(GraphValidationError, match=r"expects the JSON text \(a str\), got dict"):
        ardiff.from_json(base_doc())


def test_encoded_non_finite_values_still_load():
    doc = base_doc()
    doc["nodes"][0]["value"]["__ndarray__"][0] = "nan"
    g = ardiff.from_json(json.dumps(doc))
    assert np.isnan(np.asarray(g.nodes[0].value)[0])


# -- a fuzzer of mutated valid documents: each ends loaded or refused ------------------------
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 12, 10 ** 12),
                 st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=6),
                 st.just("V2000000000"), st.just(100000000), st.just([10 ** 9, 10 ** 9]),
                 st.lists(st.integers(-3, 5), max_size=4),
                 st.dictionaries(st.sampled_from(["__slice__", "__float__", "__ndarray__",
                                                  "__tuple__", "__dtype__", "dtype", "shape"]),
                                 st.one_of(st.integers(-2, 5), st.text(max_size=3),
                                           st.lists(st.integers(-2, 5), max_size=3)),
                                 max_size=3))


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for k, v in enumerate(value):
            yield from _paths(v, prefix + (k,))


def _fuzz_doc(base, picks, junks):
    doc = copy.deepcopy(base)
    paths = [p for p in _paths(doc) if p]
    for pick, junk in zip(picks, junks):
        path = paths[pick % len(paths)]
        parent = doc
        try:
            for k in path[:-1]:
                parent = parent[k]
            parent[path[-1]] = junk
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced the container
    return doc


def outcome(text: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ardiff.from_json(text)
        except GraphValidationError:
            return "refused"
    return "loaded"


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(picks=st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=3),
       junks=st.lists(JUNK, min_size=3, max_size=3))
def test_fuzzed_graph_documents_load_or_are_refused(picks, junks):
    doc = _fuzz_doc(base_doc(), picks, junks)
    assert outcome(json.dumps(doc)) in ("loaded", "refused")


# -- non-finite values in a graph file: every solver says converged=False -----------------
X0 = np.array([0.5, -1.0, 2.0, 3.0])
W0 = np.array([1.0, 2.0, 3.0, 4.0])


def _model(x, w):
    return anp.sum(anp.tanh(w * x) * x)


def _numpy_gradients(x, w):
    """d/dx and d/dw of sum(tanh(w x) x), by hand in NumPy (the independent truth)."""
    with np.errstate(all="ignore"):
        t = np.tanh(w * x)
        slope = 1.0 - t ** 2
        return [t + x * w * slope, x * x * slope]


SOLVERS = {
    "relax sequential": dict(schedule="sequential", eta=0.5),
    "relax parallel": dict(schedule="parallel", eta=0.5),
    "relax one sweep": dict(),
    "backprop": dict(method="backprop"),
    "triangular": dict(method="triangular"),
    "units": dict(units="layers", schedule="parallel", eta=0.5),
    "closed form": dict(closed_form=True, schedule="parallel", eta=0.5),
}


def _solve(graph, options):
    options = dict(options)
    method = options.pop("method", "relax")
    if method == "backprop":
        return ardiff.backprop(graph)
    if method == "triangular":
        return ardiff.solve_triangular(graph)
    return ardiff.relax(graph, **options)


def _graph_file(x, w) -> str:
    return ardiff.to_json(ardiff.trace(_model, x, w))


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_finite_graph_file_converges_to_numpys_gradients(solver):
    result = _solve(ardiff.from_json(_graph_file(X0, W0)), SOLVERS[solver])
    assert result.converged is True
    for got, want in zip(result.grads, _numpy_gradients(X0, W0)):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("where", ["x", "w"])
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_non_finite_graph_file_is_never_converged(solver, where, bad):
    doc = json.loads(_graph_file(X0, W0))
    node = 0 if where == "x" else 1
    doc["nodes"][node]["value"]["__ndarray__"][1] = bad  # as to_json writes them
    graph = ardiff.from_json(json.dumps(doc))
    x, w = (np.asarray(graph.nodes[i].value) for i in (0, 1))
    truth = _numpy_gradients(x, w)
    assert not all(np.isfinite(t).all() for t in truth)  # NumPy's own verdict
    with np.errstate(all="ignore"), \
            pytest.warns(ardiff.NonFiniteWarning, match=rf"node {node} '_model:arg{node}'"):
        result = _solve(graph, SOLVERS[solver])
    finite = all(np.isfinite(np.asarray(g)).all() for g in result.grads)
    assert not finite
    assert result.converged is False


def test_the_fuzzer_benchmark_runs_and_every_case_is_loaded_or_refused(tmp_path):
    """`benchmarks/bench_graph_fuzz.py` (its saved run is quoted in docs/solvers.md),
    a few cases in a subprocess: it sets a 2 GiB address-space limit on itself."""
    out = tmp_path / "fuzz.json"
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    subprocess.run([sys.executable, str(root / "benchmarks" / "bench_graph_fuzz.py"),
                    "--cases", "60", "--seed", "3", "--out", str(out)],
                   check=True, capture_output=True, env=env, timeout=300)
    result = json.loads(out.read_text())
    assert result["tried"] == 60 == result["loaded"] + result["refused"]
    assert result["other"] == 0 and result["others"] == []
    assert result["address_space_limit_bytes"] == 2 * 2 ** 30


# -- no loader unpickles or evaluates (issue 23: "keep it so") -----------------------------
#: Modules allowed to run code they build themselves, with the reason.
EXEC_ALLOWED = {
    "ardiff/strategies.py": "hypothesis strategies run the random programs they generate "
                            "from their own templates; nothing is read from a file",
    "ardiff/codegen.py": "compiled replays are source built from ardiff's own op templates, "
                         "node indices and float/int literals (repr); no text of a file or "
                         "a node's name enters it",
}
PICKLE_FAMILY = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle",
                 "joblib", "yaml"}


def _package_sources():
    root = Path(__file__).resolve().parent.parent
    for path in sorted((root / "ardiff").rglob("*.py")):
        yield path.relative_to(root).as_posix(), path.read_text(encoding="utf-8")


def _forbidden(rel: str, source: str) -> list[str]:
    """What `source` does of: import a pickle-like module, pass `allow_pickle`, call
    `eval`/`exec` (outside `EXEC_ALLOWED`), call `np.load`/`pickle.load(s)`/`yaml.load`."""
    found = []
    for node in ast.walk(ast.parse(source, rel)):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            names = []
        found += [f"{rel}:{node.lineno}: imports {n}" for n in names if n in PICKLE_FAMILY]
        if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
            found.append(f"{rel}: allow_pickle=")
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else None
            if name in ("eval", "exec") and rel not in EXEC_ALLOWED:
                found.append(f"{rel}:{node.lineno}: calls {name}")
            if (isinstance(func, ast.Attribute) and func.attr in ("load", "loads")
                    and isinstance(func.value, ast.Name)
                    and func.value.id in ("np", "numpy", "pickle", "yaml", "marshal")):
                found.append(f"{rel}:{node.lineno}: calls {func.value.id}.{func.attr}")
    return found


def test_no_module_unpickles_evaluates_or_allows_pickle():
    found = [hit for rel, source in _package_sources() for hit in _forbidden(rel, source)]
    assert found == []


def test_the_scan_finds_what_it_looks_for():
    bad = ("import pickle\nimport numpy as np\nnp.load('x', allow_pickle=True)\n"
           "eval('1')\npickle.loads(b'')\n")
    assert sorted(_forbidden("ardiff/x.py", bad)) == [
        "ardiff/x.py: allow_pickle=", "ardiff/x.py:1: imports pickle",
        "ardiff/x.py:3: calls np.load", "ardiff/x.py:4: calls eval",
        "ardiff/x.py:5: calls pickle.loads"]
    assert _forbidden("ardiff/codegen.py", "exec('pass')\n") == []
