"""`ardiff.scipy.stats`: values against `scipy.stats`, gradients against finite differences.

Every distribution and method is compared with SciPy's at points inside and outside the
support, and differentiated w.r.t. the data and every float parameter it has a
derivative for (to second order with backprop, to first order by relaxation), including
through frozen distributions and in small realistic programs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats as ss

import ardiff
import ardiff.numpy as anp
from ardiff.scipy import stats
from ardiff.testing import check_grads

X = np.array([-1.5, 0.2, 0.7, 2.3])
WEIGHTS = np.array([0.3, -1.1, 0.8, 1.6])

# name, shape parameters, loc, scale (for the location-scale families)
CONTINUOUS = [
    ("norm", (), 0.3, 1.7),
    ("t", (3.5,), 0.3, 1.7),
    ("cauchy", (), 0.3, 1.7),
    ("logistic", (), 0.3, 1.7),
    ("laplace", (), 0.3, 1.7),
    ("expon", (), -0.5, 1.7),
    ("gamma", (2.5,), -0.5, 1.7),
    ("chi2", (3.0,), -0.5, 1.7),
    ("beta", (2.5, 1.5), -2.0, 5.0),
]
CONTINUOUS_METHODS = ("pdf", "logpdf", "cdf", "logcdf", "sf", "logsf")
# shape parameters the distribution functions have no derivative for
NO_SHAPE_DERIVATIVE = {"t", "gamma", "chi2", "beta"}

DISCRETE = [("poisson", (3.2,)), ("binom", (10, 0.3))]
DISCRETE_METHODS = ("pmf", "logpmf", "cdf", "logcdf", "sf", "logsf")
K = np.array([-1.0, 0.0, 2.0, 3.5, 5.0, 12.0])


def _quiet(fun, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fun(*args)


@pytest.mark.parametrize("method", CONTINUOUS_METHODS)
@pytest.mark.parametrize("name, shapes, loc, scale", CONTINUOUS, ids=[c[0] for c in CONTINUOUS])
def test_continuous_values_match_scipy(name, shapes, loc, scale, method):
    points = np.concatenate([X, [-0.5, 3.0, 10.0, -40.0]])  # support edges, far tails
    ours = _quiet(getattr(getattr(stats, name), method), points, *shapes, loc, scale)
    expected = getattr(getattr(ss, name), method)(points, *shapes, loc, scale)
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-300)
    # keywords, and the frozen form
    kw = dict(zip(getattr(stats, name).shapes, shapes), loc=loc, scale=scale)
    np.testing.assert_allclose(getattr(getattr(stats, name), method)(points, **kw), expected,
                               rtol=1e-10, atol=1e-300)
    frozen = getattr(stats, name)(*shapes, loc=loc, scale=scale)
    np.testing.assert_allclose(getattr(frozen, method)(points), expected, rtol=1e-10,
                               atol=1e-300)


@pytest.mark.parametrize("method", CONTINUOUS_METHODS)
@pytest.mark.parametrize("name, shapes, loc, scale", CONTINUOUS, ids=[c[0] for c in CONTINUOUS])
def test_continuous_gradients(name, shapes, loc, scale, method):
    dist = getattr(stats, name)
    inside = X if name not in ("expon", "gamma", "chi2") else np.abs(X) + 0.1
    if name == "beta":
        inside = np.array([-1.5, -0.2, 0.7, 2.3])
    with_shapes = method in ("pdf", "logpdf") or name not in NO_SHAPE_DERIVATIVE
    params = (inside, *map(np.float64, shapes), np.float64(loc), np.float64(scale))

    def fun(args):
        x, *rest = args
        if not with_shapes:
            rest = [*shapes, *rest[len(shapes):]]
        return anp.sum(getattr(dist, method)(x, *rest) * WEIGHTS)

    _quiet(check_grads(fun, order=2, method="backprop"), params)
    _quiet(check_grads(fun, order=1), params)


@pytest.mark.parametrize("method", DISCRETE_METHODS)
@pytest.mark.parametrize("name, shapes", DISCRETE, ids=[c[0] for c in DISCRETE])
def test_discrete_values_and_gradients(name, shapes, method):
    dist = getattr(stats, name)
    ours = _quiet(getattr(dist, method), K, *shapes)
    np.testing.assert_allclose(ours, getattr(getattr(ss, name), method)(K, *shapes), rtol=1e-10)
    np.testing.assert_allclose(getattr(dist, method)(K + 2.0, *shapes, loc=2.0),
                               getattr(getattr(ss, name), method)(K + 2.0, *shapes, loc=2),
                               rtol=1e-10)
    k = np.array([0.0, 1.0, 3.0, 6.0])
    fixed, rate = shapes[:-1], np.float64(shapes[-1])  # mu, or p: the float parameter
    check = lambda r: anp.sum(getattr(dist, method)(k, *fixed, r) * WEIGHTS)  # noqa: E731
    _quiet(check_grads(check, order=2, method="backprop"), rate)
    _quiet(check_grads(check, order=1), rate)


def test_discrete_logpmf_differentiates_the_continuous_extension_in_k():
    k = np.array([1.0, 4.0])
    g = ardiff.grad(lambda k: anp.sum(stats.poisson.logpmf(k, 2.5)), method="backprop")(k)
    from scipy.special import digamma
    np.testing.assert_allclose(g, np.log(2.5) - digamma(k + 1.0), rtol=1e-12)
    # the distribution functions are step functions of k: zero derivative
    g = ardiff.grad(lambda k: anp.sum(stats.binom.cdf(k, 8, 0.4)), method="backprop")(k)
    np.testing.assert_array_equal(g, [0.0, 0.0])


def test_dirichlet_values_and_gradients():
    alpha = np.array([1.5, 2.0, 0.7])
    x = np.random.default_rng(0).dirichlet(alpha, size=4).T  # components along axis 0
    for points in (x, x[:, 0], x[:2], x[:2, 1]):
        np.testing.assert_allclose(stats.dirichlet.logpdf(points, alpha),
                                   ss.dirichlet.logpdf(points, alpha), rtol=1e-12)
        np.testing.assert_allclose(stats.dirichlet.pdf(points, alpha),
                                   ss.dirichlet.pdf(points, alpha), rtol=1e-12)
    _quiet(check_grads(lambda a: anp.sum(stats.dirichlet.logpdf(x, a) * WEIGHTS), order=2,
                       method="backprop"), alpha)
    # w.r.t. x on the simplex: the last component implied by the others
    _quiet(check_grads(lambda z: anp.sum(stats.dirichlet.logpdf(z, alpha) * WEIGHTS), order=2,
                       method="backprop"), x[:2])
    _quiet(check_grads(lambda z: stats.dirichlet.pdf(z, alpha), order=1), x[:2, 0])
    with pytest.raises(ValueError, match="simplex"):
        stats.dirichlet.logpdf(np.array([0.5, 0.6, 0.2]), alpha)


def _spd(n, seed):
    a = np.random.default_rng(seed).standard_normal((n, n))
    return a @ a.T + np.eye(n)


def test_multivariate_normal_values():
    mean, cov = np.array([0.1, -0.2, 0.3]), _spd(3, 1)
    pts = np.random.default_rng(2).standard_normal((5, 3))
    for x in (pts, pts[0], pts[:1], pts.reshape(5, 1, 3)):
        for method in ("logpdf", "pdf"):
            np.testing.assert_allclose(getattr(stats.multivariate_normal, method)(x, mean, cov),
                                       getattr(ss.multivariate_normal, method)(x, mean, cov),
                                       rtol=1e-12)
    for mean_, cov_ in ((None, cov), (0.5, 2.0), (mean, np.array([1.0, 2.0, 3.0]))):
        x = pts[:, 0] if np.ndim(cov_) == 0 else pts
        np.testing.assert_allclose(stats.multivariate_normal.logpdf(x, mean_, cov_),
                                   ss.multivariate_normal.logpdf(x, mean_, cov_), rtol=1e-12)
    frozen = stats.multivariate_normal(mean, cov)
    np.testing.assert_allclose(frozen.logpdf(pts), ss.multivariate_normal(mean, cov).logpdf(pts),
                               rtol=1e-12)
    assert frozen.rvs(size=4, random_state=0).shape == (4, 3)
    with pytest.raises(ValueError, match="positive definite"):
        stats.multivariate_normal.logpdf(pts, mean, -cov)


def test_multivariate_normal_gradients():
    mean, cov = np.array([0.1, -0.2, 0.3]), _spd(3, 1)
    pts = np.random.default_rng(2).standard_normal((4, 3))
    mvn = stats.multivariate_normal

    def fun(args):
        x, m, c = args
        return anp.sum(mvn.logpdf(x, m, c) * WEIGHTS)

    _quiet(check_grads(fun, order=2, method="backprop"), (pts, mean, cov))
    _quiet(check_grads(fun, order=1), (pts, mean, cov))
    # a covariance built symmetric from parameters, as in a GP or a GMM
    a = np.random.default_rng(3).standard_normal((3, 3))
    _quiet(check_grads(lambda a: mvn.pdf(pts[0], mean, a @ a.T + np.eye(3)), order=2,
                       method="backprop"), a)
    # the covariance gradient in closed form: (S^-1 d d^T S^-1 - S^-1) / 2
    g = ardiff.grad(lambda c: mvn.logpdf(pts[0], mean, c), method="backprop")(cov)
    inv = np.linalg.inv(cov)
    d = inv @ (pts[0] - mean)
    np.testing.assert_allclose(g, 0.5 * (np.outer(d, d) - inv), rtol=1e-10)


def test_rvs_passes_through_to_scipy():
    np.testing.assert_array_equal(stats.norm.rvs(1.0, 2.0, size=3, random_state=0),
                                  ss.norm.rvs(1.0, 2.0, size=3, random_state=0))
    np.testing.assert_array_equal(stats.t(4.0).rvs(size=2, random_state=1),
                                  ss.t(4.0).rvs(size=2, random_state=1))
    np.testing.assert_array_equal(stats.poisson.rvs(3.0, size=5, random_state=2),
                                  ss.poisson.rvs(3.0, size=5, random_state=2))


def test_parameters_are_checked():
    with pytest.raises(TypeError, match="missing shape parameter"):
        stats.gamma.logpdf(1.0)
    with pytest.raises(TypeError, match="too many"):
        stats.norm.logpdf(1.0, 0.0, 1.0, 2.0)
    with pytest.raises(TypeError, match="no derivative with respect to argument 0"):
        ardiff.grad(lambda df: stats.t.cdf(0.5, df), method="backprop")(3.0)


@pytest.mark.parametrize("options", [{"method": "backprop"}, {}, {"schedule": "parallel"},
                                     {"method": "triangular"}],
                         ids=["backprop", "relax", "parallel", "triangular"])
def test_realistic_programs(options):
    rng = np.random.default_rng(5)
    data = rng.standard_normal(6)

    def gaussian_fit(params):  # a VAE-style likelihood with a learned scale
        mu, log_sigma = params[0], params[1]
        return -anp.sum(stats.norm.logpdf(data, mu, anp.exp(log_sigma)))

    def robust_fit(params):  # ICA-style heavy-tailed likelihood
        return -anp.sum(stats.t.logpdf(data * params[0], 3.0, params[1], 1.0))

    def censored(params):  # survival: density of the observed, sf of the censored
        return -(anp.sum(stats.gamma.logpdf(np.abs(data), anp.exp(params[0])))
                 + anp.sum(stats.expon.logsf(np.abs(data), 0.0, anp.exp(params[1]))))

    x = np.array([0.2, -0.3])
    for program in (gaussian_fit, robust_fit, censored):
        reference = ardiff.grad(program, method="backprop")(x)
        np.testing.assert_allclose(ardiff.grad(program, **options)(x), reference, rtol=1e-9)
        check_grads(program, order=2, method="backprop")(x)


def test_autograd_import_spelling():
    # `import autograd.scipy.stats.norm as norm` with the package name changed
    import ardiff.scipy.stats.multivariate_normal as mvn
    import ardiff.scipy.stats.norm as norm

    assert norm is stats.norm and mvn is stats.multivariate_normal
    x = np.array([0.3, -1.0])
    np.testing.assert_allclose(norm.logpdf(x, 0.5, 2.0), ss.norm.logpdf(x, 0.5, 2.0), rtol=1e-13)


def test_multivariate_normal_entropy():
    cov = _spd(3, 4)
    assert stats.multivariate_normal.entropy(np.zeros(3), cov) == pytest.approx(
        ss.multivariate_normal.entropy(np.zeros(3), cov), rel=1e-13)
    _quiet(check_grads(lambda a: stats.multivariate_normal.entropy(cov=a @ a.T + np.eye(3)),
                       order=2, method="backprop"), np.eye(3) + 0.1)


def test_multivariate_normal_singular_covariance():
    cov = np.zeros((4, 4))
    cov[:2, :2] = [[1.0, 0.3], [0.3, 1.0]]
    mean = np.array([0.1, 0.2, 0.0, 0.0])
    x = np.array([[0.5, -0.3, 0.0, 0.0], [0.5, -0.3, 0.1, 0.0]])  # the second off the support
    mvn = stats.multivariate_normal
    np.testing.assert_allclose(mvn.logpdf(x, mean, cov, allow_singular=True),
                               ss.multivariate_normal.logpdf(x, mean, cov, allow_singular=True),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="allow_singular"):
        mvn.logpdf(x, mean, cov)

    def on_support(z, m):  # vary the first two coordinates only, as autograd's test does
        pad = np.zeros(2)
        return mvn.logpdf(anp.concatenate([z, pad]), anp.concatenate([m, pad]), cov,
                          allow_singular=True)

    _quiet(check_grads(lambda a: on_support(*a), order=2, method="backprop"),
           (x[0, :2], mean[:2]))
    with pytest.raises(NotImplementedError, match="singular"):
        ardiff.grad(lambda c: mvn.logpdf(x[0], mean, c, allow_singular=True))(cov)
