"""The FFT family (`ardiff.numpy.fft`) against independent truth.

* Gradients of real losses of every transform, for every norm, odd and even lengths,
  padded and truncated inputs and several axes, against central finite differences
  taken separately along the real and the imaginary direction of every input element
  (`fd_grad`: du/dx - i du/dy, the convention of docs/complex.md).
* Second order: Hessian-vector products against finite differences of the gradient
  (`ardiff.testing.check_grads`, order 2).
* Closed forms: the adjoint identity of the DFT matrix written out in the test.
* Forward values equal NumPy's own functions; `np.fft.*` on traced values dispatches
  here; the relaxation (both schedules, eta 0.5/1/1.5, both inits) and the triangular
  solver give backprop's gradients through transforms.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import ardiff
import ardiff.numpy as anp
from ardiff.testing import check_grads

NORMS = [None, "backward", "ortho", "forward"]
RNG = np.random.default_rng(20261130)


def fd_grad(f, z, eps=1e-6):
    """du/dx - i du/dy of the real part u of the scalar f, by central differences along
    the real and (for complex z) the imaginary direction of every element."""
    z = np.asarray(z)
    complex_input = np.iscomplexobj(z)
    g = np.zeros(z.shape, dtype=complex if complex_input else float)
    for idx in np.ndindex(z.shape):
        e = np.zeros(z.shape, dtype=z.dtype)
        e[idx] = 1.0
        du_dx = (np.real(f(z + eps * e)) - np.real(f(z - eps * e))) / (2 * eps)
        g[idx] = du_dx
        if complex_input:
            du_dy = (np.real(f(z + 1j * eps * e)) - np.real(f(z - 1j * eps * e))) / (2 * eps)
            g[idx] = du_dx - 1j * du_dy
    return g


def crandn(*shape):
    return RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)


def real_loss(transform, out_shape, complex_out=True):
    """Re(sum(w * transform(x))) with a fixed random (complex) weight: a real loss whose
    gradient is the transform's VJP of w."""
    w = crandn(*out_shape) if complex_out else RNG.standard_normal(out_shape)
    return lambda x: anp.real(anp.sum(w * transform(x)))


def assert_grad_matches_fd(transform, x, rtol=1e-6):
    out = np.asarray(transform(x))
    loss = real_loss(transform, out.shape, np.iscomplexobj(out))
    g = ardiff.grad(loss)(x)
    assert np.iscomplexobj(g) == np.iscomplexobj(x)
    np.testing.assert_allclose(g, fd_grad(loss, x), rtol=rtol, atol=rtol * 10)


# -- one-axis transforms: every norm, lengths odd/even, padded/truncated --------------------
ONE_AXIS = ["fft", "ifft", "rfft", "irfft", "hfft", "ihfft"]
LENGTH_CASES = [None, 3, 4, 7, 8]


def _input_for(name, rows, m):
    if name in ("rfft", "ihfft"):
        return RNG.standard_normal((rows, m))
    return crandn(rows, m)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ONE_AXIS)
@pytest.mark.parametrize("m", [5, 6])
def test_one_axis_transform_gradients_match_finite_differences(name, m, norm):
    fun = getattr(anp.fft, name)
    x = _input_for(name, 2, m)
    for n, axis in itertools.product(LENGTH_CASES, (-1, 0)):
        if axis == 0 and n not in (None, 3):
            continue
        assert_grad_matches_fd(lambda v, n=n, axis=axis: fun(v, n=n, axis=axis, norm=norm), x)


@pytest.mark.parametrize("name", ONE_AXIS)
def test_one_axis_forward_equals_numpy_and_dispatches(name):
    x = _input_for(name, 3, 6)
    ours, theirs = getattr(anp.fft, name), getattr(np.fft, name)
    for n, norm in [(None, None), (5, "ortho"), (9, "forward")]:
        graph = ardiff.trace(lambda v: ours(v, n=n, norm=norm), x)
        np.testing.assert_allclose(graph.output.value, theirs(x, n=n, norm=norm),
                                   rtol=1e-14, atol=1e-14)
        # np.fft.<name> on a traced value reaches the same traced function
        via_numpy = ardiff.trace(lambda v: theirs(v, n=n, norm=norm), x)
        assert isinstance(via_numpy.output, ardiff.Tracer)
        np.testing.assert_array_equal(via_numpy.output.value, graph.output.value)


# -- several axes ------------------------------------------------------------------------
MANY_AXES = [
    ("fft2", {}), ("ifft2", {"s": (3, 4)}), ("fftn", {"axes": (0, 2)}),
    ("ifftn", {"s": (2, 5), "axes": (2, 0)}), ("rfft2", {}),
    ("rfftn", {"s": (3, 2, 5), "axes": (0, 1, 2)}), ("irfft2", {}), ("irfft2", {"s": (2, 5)}),
    ("irfftn", {"axes": (0, 1)}), ("irfftn", {"s": (4, 3, 4), "axes": (0, 1, 2)}),
    ("fftn", {}), ("rfftn", {"axes": (1,)}), ("irfftn", {"s": (3, 6), "axes": (1, 2)}),
]


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name, options", MANY_AXES,
                         ids=[f"{n}-{'-'.join(map(str, o.values()))}" for n, o in MANY_AXES])
def test_many_axes_transform_gradients_match_finite_differences(name, options, norm):
    fun = getattr(anp.fft, name)
    x = RNG.standard_normal((3, 2, 4)) if name.startswith("rfft") else crandn(3, 2, 4)
    transform = (lambda v: fun(v, norm=norm, **options))
    np.testing.assert_allclose(np.asarray(transform(x)),
                               getattr(np.fft, name)(x, norm=norm, **options), rtol=1e-14)
    assert_grad_matches_fd(transform, x)


# -- closed forms ---------------------------------------------------------------------------
def test_fft_vjp_is_the_transpose_of_the_dft_matrix():
    """fft(x) = W x with W[k, j] = exp(-2 pi i jk / n): the VJP of g is W^T g (no conjugate)
    and, for n < len(x), zero on the truncated entries."""
    n, m = 5, 7
    W = np.exp(-2j * np.pi * np.outer(np.arange(n), np.arange(n)) / n)
    x, g = crandn(m), crandn(n)
    vjp, _ = ardiff.make_vjp(lambda v: anp.fft.fft(v, n=n))(x)
    expected = np.concatenate([W.T @ g, np.zeros(m - n)])
    np.testing.assert_allclose(vjp(g), expected, rtol=1e-12, atol=1e-12)


def test_irfft_reads_a_hermitian_spectrum():
    """irfft(X, n) = (1/n) sum_k Z_k e^{2 pi i jk/n} with Z the Hermitian extension of X:
    the gradient of sum(w * y) is (1/n) c_k sum_j w_j e^{2 pi i jk/n}, c_k = 1 at k = 0
    and at n/2 (n even), 2 elsewhere; imaginary parts of those bins have no effect."""
    for n in (6, 7):
        K = n // 2 + 1
        X = crandn(K)
        w = RNG.standard_normal(n)
        g = ardiff.grad(lambda v: anp.sum(w * anp.fft.irfft(v, n)))(X)
        c = np.full(K, 2.0)
        c[0] = 1.0
        if n % 2 == 0:
            c[-1] = 1.0
        expected = c * (np.exp(2j * np.pi * np.outer(np.arange(K), np.arange(n)) / n) @ w) / n
        np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-14)
        assert abs(g[0].imag) < 1e-15 and (n % 2 or abs(g[-1].imag) < 1e-15)


def test_parseval_gradient():
    """sum |fft(x, norm='ortho')|^2 = sum |x|^2, so the gradient is 2 conj(x)."""
    z = crandn(3, 4)
    g = ardiff.grad(lambda v: anp.sum(anp.abs(anp.fft.fftn(v, norm="ortho")) ** 2))(z)
    np.testing.assert_allclose(g, 2 * np.conj(z), rtol=1e-12)
    x = RNG.standard_normal(6)
    g = ardiff.grad(lambda v: anp.sum(anp.abs(anp.fft.fft(v, norm="ortho")) ** 2))(x)
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, 2 * x, rtol=1e-12)


def test_fft_convolution_equals_direct_convolution_gradient():
    """A circular convolution through rfft/irfft has the gradient of the direct sum."""
    n = 8
    x, k, t = RNG.standard_normal(n), RNG.standard_normal(n), RNG.standard_normal(n)

    def via_fft(k):
        y = anp.fft.irfft(anp.fft.rfft(x) * anp.fft.rfft(k), n)
        return anp.sum((y - t) ** 2)

    def direct(k):
        y = anp.stack([anp.sum(x * anp.roll(k[::-1], j + 1)) for j in range(n)])
        return anp.sum((y - t) ** 2)

    np.testing.assert_allclose(via_fft(k), direct(k), rtol=1e-12)
    np.testing.assert_allclose(ardiff.grad(via_fft)(k), ardiff.grad(direct)(k), rtol=1e-10)


@pytest.mark.filterwarnings("ignore:`axes` should not be `None`:DeprecationWarning")
def test_lengths_without_axes_take_the_last_axes_as_numpy_does():
    x = crandn(3, 2, 4)
    for name in ("fftn", "ifftn", "irfftn"):
        fun = getattr(anp.fft, name)
        assert_grad_matches_fd(lambda v: fun(v, s=(3, 5)), x)
        np.testing.assert_allclose(fun(ardiff.Graph().input(x), s=(3, 5)).value,
                                   getattr(np.fft, name)(x, s=(3, 5)), rtol=1e-14)


def test_shifts_are_rolls():
    x = crandn(4, 5)
    for fun in (anp.fft.fftshift, anp.fft.ifftshift):
        name = fun.__name__
        for axes in (None, 0, (1,), (0, 1)):
            np.testing.assert_array_equal(fun(ardiff.Graph().input(x), axes=axes).value,
                                          getattr(np.fft, name)(x, axes=axes))
            w = crandn(4, 5)
            g = ardiff.grad(lambda v: anp.real(anp.sum(w * fun(v, axes=axes))))(x)
            # the adjoint of a roll is the opposite roll
            inverse = np.fft.ifftshift if name == "fftshift" else np.fft.fftshift
            np.testing.assert_allclose(g, inverse(w, axes=axes), rtol=1e-15)
    assert anp.fft.fftfreq is np.fft.fftfreq and anp.fft.rfftfreq is np.fft.rfftfreq


# -- second order ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["fft", "ifft", "rfft", "irfft", "hfft", "ihfft", "fft2",
                                  "irfftn"])
def test_second_order_through_transforms(name):
    fun = getattr(anp.fft, name)
    x = RNG.standard_normal((2, 5)) if name in ("rfft", "ihfft") else crandn(2, 5)
    # a non-linear real loss so that the Hessian is not zero
    check_grads(lambda v: anp.sum(anp.abs(fun(v, norm="ortho")) ** 3), order=2)(x)
    check_grads(lambda v: fun(anp.sin(v), norm="forward"), order=2, modes=["fwd", "rev"])(x)


# -- solvers ---------------------------------------------------------------------------------
def _spectral_program(x):
    X = anp.fft.rfft(anp.tanh(x), n=9)
    y = anp.fft.irfft(X * anp.conj(X) + anp.fft.fft(x)[:5], 9)
    return anp.sum(anp.abs(anp.fft.fftshift(y)) ** 1.5)


def test_relaxation_and_triangular_equal_backprop_through_transforms():
    x = RNG.standard_normal(7)
    graph = ardiff.trace(_spectral_program, x)
    reference = ardiff.backprop(graph).grads[0]
    np.testing.assert_allclose(reference, fd_grad(_spectral_program, x), rtol=1e-6)
    for schedule, eta, init in itertools.product(("sequential", "parallel"), (1.0, 0.5, 1.5),
                                                 ("zeros", "forward")):
        result = ardiff.relax(graph, schedule=schedule, eta=eta, init=init, max_iter=5000)
        assert result.converged
        np.testing.assert_allclose(result.grads[0], reference, rtol=1e-9, atol=1e-12,
                                   err_msg=f"{schedule} eta={eta} init={init}")
    triangular = ardiff.solve_triangular(graph)
    np.testing.assert_allclose(triangular.grads[0], reference, rtol=1e-12, atol=1e-14)


def test_bad_options_raise_clear_errors():
    x = ardiff.Graph().input(np.ones(4))
    with pytest.raises(ValueError, match="norm='bad'"):
        anp.fft.fft(x, norm="bad")
    with pytest.raises(ValueError, match="invalid transform length 0"):
        anp.fft.fft(x, n=0)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        anp.fft.fft(x, axis=2)
    with pytest.raises(ValueError, match="s and axes have different lengths"):
        anp.fft.fftn(x, s=(2, 2), axes=(0,))
    z = ardiff.Graph().input(np.ones(4, complex))
    with pytest.raises(TypeError, match="rfft.*must be real"):
        anp.fft.rfft(z)
