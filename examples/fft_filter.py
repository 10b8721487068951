"""Fit a filter through an FFT convolution, and check it against a real implementation.

A length-64 signal `x` goes through an unknown 8-tap circular filter and picks up a
little noise, giving `y`.  We recover the taps `h` by gradient descent on the mean
squared error of the model

    y_hat = irfft(rfft(x) * rfft(h padded to 64))        (a circular convolution)

whose intermediates are complex while the parameters and the loss are real: the third
case of ardiff's complex convention (docs/complex.md), so the gradient must be exactly
that of a real implementation of the same program.  We check that against a circulant
matrix product written without any complex number, against finite differences, and
the fitted taps against NumPy's least-squares solution.  Then the same fit in the
frequency domain: 33 complex gains G, a real loss of a complex parameter (the
convention's second case), descending along conj(grad).

Run: python examples/fft_filter.py
"""

import numpy as np

import ardiff
import ardiff.numpy as anp

N, TAPS = 64, 8
rng = np.random.default_rng(0)
x = rng.standard_normal(N)
true_h = np.array([0.9, -0.5, 0.3, 0.2, -0.1, 0.05, 0.02, -0.01])
circulant = np.stack([np.roll(x, k) for k in range(TAPS)], axis=1)  # y = circulant @ h
y = circulant @ true_h + 0.01 * rng.standard_normal(N)


def loss_fft(h):
    """The model through the FFT (complex intermediates)."""
    padded = anp.concatenate([h, np.zeros(N - TAPS)])
    y_hat = anp.fft.irfft(anp.fft.rfft(x) * anp.fft.rfft(padded), n=N)
    return anp.mean((y_hat - y) ** 2)


def loss_real(h):
    """The same program with real numbers only: y_hat[j] = sum_k x[j - k] h[k]."""
    return anp.mean((circulant @ h - y) ** 2)


# 1. The two implementations agree, value and gradient, and match finite differences.
h0 = rng.standard_normal(TAPS) * 0.1
g_fft, g_real = ardiff.grad(loss_fft)(h0), ardiff.grad(loss_real)(h0)
assert g_fft.dtype == np.float64  # a real parameter gets a real gradient
assert abs(loss_fft(h0) - loss_real(h0)) < 1e-12
assert np.allclose(g_fft, g_real, rtol=1e-10, atol=1e-13)
eps = 1e-6
fd = np.array([(loss_fft(h0 + eps * e) - loss_fft(h0 - eps * e)) / (2 * eps)
               for e in np.eye(TAPS)])
assert np.allclose(g_fft, fd, rtol=1e-6, atol=1e-9)
# the gradient as the relaxation's equilibrium (Activation Relaxation) is the same
g_relax = ardiff.grad(loss_fft, method="relax", schedule="parallel", eta=0.5)(h0)
assert np.allclose(g_relax, g_fft, rtol=1e-9, atol=1e-12)
print(f"gradient at the start: FFT vs real implementation max difference "
      f"{np.max(np.abs(g_fft - g_real)):.1e}, vs finite differences "
      f"{np.max(np.abs(g_fft - fd)):.1e}, relaxation vs backprop "
      f"{np.max(np.abs(g_relax - g_fft)):.1e}")

# 2. Fit the taps by gradient descent (the loss is quadratic: step 1 / largest curvature).
hessian = 2.0 * circulant.T @ circulant / N
step = 1.0 / np.linalg.eigvalsh(hessian)[-1]
h = np.zeros(TAPS)
for _ in range(400):
    h = h - step * ardiff.grad(loss_fft)(h)
least_squares = np.linalg.lstsq(circulant, y, rcond=None)[0]
assert np.allclose(h, least_squares, atol=1e-6), (h, least_squares)
assert np.allclose(h, true_h, atol=0.01)
print(f"fitted taps after 400 steps: {np.round(h, 3)}")
print(f"  least squares:             {np.round(least_squares, 3)}")
print(f"  true filter:               {true_h}")

# 3. The same fit in the frequency domain: complex gains G on the 33 rfft bins.  The loss
#    is real, so grad L = dL/dRe G - i dL/dIm G, and descent steps along -conj(grad).
X = np.fft.rfft(x)


def loss_gains(G):
    return anp.mean((anp.fft.irfft(X * G, n=N) - y) ** 2)


G0 = np.zeros(N // 2 + 1, dtype=complex)
g = ardiff.grad(loss_gains)(G0)
assert np.iscomplexobj(g)
k = 5  # check one bin along its real and imaginary directions
e = np.zeros_like(G0)
e[k] = 1.0
d_re = (loss_gains(G0 + eps * e) - loss_gains(G0 - eps * e)) / (2 * eps)
d_im = (loss_gains(G0 + 1j * eps * e) - loss_gains(G0 - 1j * eps * e)) / (2 * eps)
assert np.isclose(g[k], d_re - 1j * d_im, rtol=1e-6, atol=1e-10)
# The loss is a sum over bins of |X_k G_k - Y_k|^2 / N^2 (Parseval), counted twice for the
# bins irfft mirrors: its curvature in bin k is known, so each bin takes its own step
# (a diagonal preconditioner); the direction is still -conj(grad).
weight = np.full(N // 2 + 1, 4.0)
weight[0] = weight[-1] = 2.0
step = 0.5 / (weight * np.abs(X) ** 2 / N ** 2)
G = G0
for _ in range(60):
    G = G - step * np.conj(ardiff.grad(loss_gains)(G))
Y = np.fft.rfft(y)
optimum = Y / X  # the closed-form minimiser (irfft ignores Im G at bins 0 and N/2)
assert np.allclose(G[1:-1], optimum[1:-1], rtol=1e-9)
assert np.allclose(G.real[[0, -1]], optimum.real[[0, -1]], rtol=1e-9)
assert np.all(G.imag[[0, -1]] == 0.0)  # zero gradient there: never moved
assert loss_gains(G) < 1e-20
print(f"frequency-domain fit: loss {loss_gains(G):.1e} after 60 steps (8-tap least squares "
      f"{loss_real(least_squares):.1e}); gain at bin {k}: {G[k]:.4f}, closed form "
      f"{optimum[k]:.4f}")
