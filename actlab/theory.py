"""Mean-field signal propagation: what the activation and the initialization predict before any training.

A wide network's pre-activations are Gaussian at initialization when its weights are drawn from
N(0, sigma_w^2 / fan_in) and its biases from N(0, sigma_b^2) (Poole et al. 2016, "Exponential
expressivity in deep neural networks through transient chaos"; Schoenholz et al. 2017, "Deep
Information Propagation"). Two maps then follow one image, and a pair of images, through the layers:

- the **length map**: ``q' = sigma_w^2 E[phi(z)^2] + sigma_b^2``, z ~ N(0, q), the variance of a
  unit's pre-activation in the next layer; it settles at a fixed point q*;
- the **correlation map**: how the correlation c of two images' pre-activations changes from one
  layer to the next; it settles at c*, where c* = 1 means every image ends up alike (the ordered
  phase) and c* < 1 that nearby images are pulled apart (the chaotic phase).

``chi_1 = sigma_w^2 E[phi'(z)^2]`` at q* is the factor by which each layer multiplies a small
difference between two images, and the gradient's squared size on its way back: below 1 both
vanish, above 1 both explode, at 1 (the critical line) they survive any depth. The depth scales
say over how many layers q and c forget where they started.

A ``centred`` network cancels the mean that each layer's activation passes on (its biases hold
``-mean * sum of the row's weights``); the maps then use ``phi - E[phi]`` in place of ``phi``.
Expectations are sums over evenly spaced points weighted by the normal density. The activation is
any ``ActivationFunction``, by name or as a module, a student's own included: autograd gives its derivative.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

from actlab.activations import ActivationFunction, get_activation

POINTS = 1000
"""Points of the rule for each Gaussian expectation, evenly spaced over z in [-10, 10].

Even, so that no point falls on z = 0, where ReLU's slope jumps; evenly spaced, so that a sharp
activation stays resolved at a large variance."""
PAIR_POINTS = 300
"""Points per axis of the rule for a pair of images (300 x 300 over [-8, 8]^2)."""
CHUNK = 16_384
"""The most points given to the activation at once: small pieces keep a phase diagram's memory flat."""
Q_MAX = 1e8
"""A variance above this counts as growing without bound: the length map has no fixed point."""
Q_GROWING = 1e4
"""A variance that still grows above this has no fixed point: a bounded activation's q* lies far below it."""
Q_MIN = 1e-30
"""A variance below this counts as zero; slopes there are those of the limit q -> 0."""
MAX_LAYERS = 300
"""The most layers the maps are iterated to find a fixed point: twice the deepest network of the lab."""


def _rule(points: int, reach: float) -> tuple[np.ndarray, np.ndarray]:
    z = np.linspace(-reach, reach, points)
    weights = np.exp(-(z**2) / 2)
    return z, weights / weights.sum()


_z, _w = _rule(POINTS, 10.0)
_pz, _pw = _rule(PAIR_POINTS, 8.0)
_Z1, _Z2 = (axis.ravel() for axis in np.meshgrid(_pz, _pz, indexing="ij"))
_W2 = np.outer(_pw, _pw).ravel()

Activation = str | ActivationFunction
Function = Callable[..., tuple[np.ndarray, np.ndarray]]
Numbers = float | np.ndarray


def _function(activation: Activation) -> Function:
    """The function phi of ``activation`` and its slope phi', on a NumPy array, in float64 (phi' when asked for)."""
    module = get_activation(activation) if isinstance(activation, str) else activation
    if not isinstance(module, ActivationFunction):
        raise TypeError(f"an activation is a registered name or an ActivationFunction, not {activation!r}")

    def part(x: np.ndarray, slope: bool) -> tuple[np.ndarray, np.ndarray]:
        points = torch.tensor(x, dtype=torch.float64, requires_grad=slope)
        with one_thread(), torch.enable_grad() if slope else torch.no_grad():
            y = module(points)
            dy = torch.autograd.grad(y.sum(), points)[0].numpy() if slope else np.empty(0)
        return y.detach().numpy(), dy

    def values(x: np.ndarray, slope: bool = True) -> tuple[np.ndarray, np.ndarray]:
        pieces = [part(piece, slope) for piece in np.array_split(x.ravel(), max(1, x.size // CHUNK))]
        y = np.concatenate([piece[0] for piece in pieces]).reshape(x.shape)
        return y, np.concatenate([piece[1] for piece in pieces]).reshape(x.shape) if slope else np.empty(0)

    return values


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread inside the ``with`` block: the maps' arrays are too small to gain from more.

    Measured with another process busy on this 2-core machine: a phase diagram took 14 s with two
    threads, which wait for each other, and 0.5 s with one.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _check(sigma_w2: Numbers, sigma_b2: Numbers) -> None:
    w2, b2 = np.asarray(sigma_w2, dtype=float), np.asarray(sigma_b2, dtype=float)
    if not (np.isfinite(w2).all() and (w2 > 0).all() and np.isfinite(b2).all() and (b2 >= 0).all()):
        raise ValueError(f"sigma_w2 must be positive and sigma_b2 at least 0, not {sigma_w2!r} and {sigma_b2!r}")


def _gaussian(values: Function, q: Numbers, slope: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The values phi and phi' at sqrt(q) z for every point z of the rule: arrays of shape q.shape + (POINTS,)."""
    return values(np.sqrt(np.clip(q, Q_MIN, Q_MAX))[..., None] * _z, slope)


def activation_mean(activation: Activation, q: Numbers) -> Numbers:
    """E[phi(z)] for z ~ N(0, q): the mean a layer of this activation passes on to the next."""
    return _gaussian(_function(activation), q, slope=False)[0] @ _w


def _length(values: Function, sigma_w2: Numbers, sigma_b2: Numbers, q: Numbers, centred: bool) -> np.ndarray:
    y, _ = _gaussian(values, q, slope=False)
    if centred:
        y = y - (y @ _w)[..., None]
    return sigma_w2 * (y**2 @ _w) + sigma_b2


def length_map(activation: Activation, sigma_w2: Numbers, sigma_b2: Numbers, q: Numbers,
               centred: bool = False) -> Numbers:
    """The next layer's pre-activation variance, ``sigma_w^2 E[phi(z)^2] + sigma_b^2`` with z ~ N(0, q)."""
    _check(sigma_w2, sigma_b2)
    return _length(_function(activation), sigma_w2, sigma_b2, q, centred)


def layer_variances(activation: Activation, sigma_w2: float, sigma_b2: float, q1: float, layers: int,
                    centred: bool = False) -> list[float]:
    """The pre-activation variance q of each of ``layers`` hidden layers, the first being ``q1``."""
    _check(sigma_w2, sigma_b2)
    values, variances = _function(activation), [q1]
    while len(variances) < layers and variances[-1] < Q_MAX:
        variances.append(float(_length(values, sigma_w2, sigma_b2, variances[-1], centred)))
    return variances + [math.inf] * (layers - len(variances))


def _fixed_point(values: Function, sigma_w2: Numbers, sigma_b2: Numbers, centred: bool) -> np.ndarray:
    """q* for every (sigma_w2, sigma_b2), from q = 1: two steps of the map, then Aitken's extrapolation.

    Where a step grows q (the map's slope there is 1 or more) no extrapolation is made; a q that
    still grows past ``Q_GROWING`` or reaches ``Q_MAX`` has no fixed point (``inf``).
    """
    shape = np.broadcast(sigma_w2, sigma_b2).shape
    w2, b2 = np.broadcast_to(sigma_w2, shape).ravel(), np.broadcast_to(sigma_b2, shape).ravel()
    q, moving = np.ones(w2.shape), np.ones(w2.shape, dtype=bool)
    for _ in range(MAX_LAYERS):
        start = q[moving]
        first = _length(values, w2[moving], b2[moving], start, centred)
        second = _length(values, w2[moving], b2[moving], first, centred)
        step, next_step = first - start, second - first
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = next_step / step
            jumped = second - next_step**2 / (next_step - step)
        shrinking = (rate < 1) & np.isfinite(jumped) & (jumped > 0)
        following = np.where(shrinking, jumped, second)
        grows = (following > Q_MAX) | ((following > Q_GROWING) & ~shrinking)
        settled = grows | (np.abs(next_step) <= 1e-12 * second) | (following < Q_MIN)
        q[moving] = np.where(grows, np.inf, following)
        moving[np.flatnonzero(moving)[settled]] = False
        if not moving.any():
            break
    return q.reshape(shape)


def length_fixed_point(activation: Activation, sigma_w2: Numbers, sigma_b2: Numbers,
                       centred: bool = False) -> Numbers:
    """q*, where the length map settles (from q = 1); ``inf`` where q grows without bound."""
    _check(sigma_w2, sigma_b2)
    return _fixed_point(_function(activation), sigma_w2, sigma_b2, centred)[()]


def _chi_1(values: Function, sigma_w2: Numbers, sigma_b2: Numbers, centred: bool) -> np.ndarray:
    q = _fixed_point(values, sigma_w2, sigma_b2, centred)
    _, slope = _gaussian(values, np.minimum(q, Q_MAX))
    return sigma_w2 * (slope**2 @ _w)


def chi_1(activation: Activation, sigma_w2: Numbers, sigma_b2: Numbers, centred: bool = False) -> Numbers:
    """``sigma_w^2 E[phi'(z)^2]`` at q*: what each layer multiplies a small difference and a gradient's square by.

    Takes arrays too (a whole phase diagram at once); where q* is infinite, the slope at a very large q.
    """
    _check(sigma_w2, sigma_b2)
    return _chi_1(_function(activation), sigma_w2, sigma_b2, centred)[()]


def _pair(values: Function, q: float, c: float, centred: bool) -> tuple[np.ndarray, ...]:
    """Phi and phi' at two pre-activations of variance q with correlation c, on the 2-D rule's points."""
    root = math.sqrt(q)
    y1, d1 = values(root * _Z1)
    y2, d2 = values(root * (c * _Z1 + math.sqrt(max(0.0, 1 - c * c)) * _Z2))
    if centred:
        mean = float(values(math.sqrt(q) * _pz, False)[0] @ _pw)
        y1, y2 = y1 - mean, y2 - mean
    return y1, y2, d1, d2


def _correlation(values: Function, sigma_w2: float, sigma_b2: float, q: float, c: float, centred: bool) -> float:
    y1, y2, _, _ = _pair(values, q, c, centred)
    return (sigma_w2 * float(y1 * y2 @ _W2) + sigma_b2) / float(_length(values, sigma_w2, sigma_b2, q, centred))


def correlation_map(activation: Activation, sigma_w2: float, sigma_b2: float, q: float, c: float,
                    centred: bool = False) -> float:
    """The next layer's correlation of two images whose pre-activations have variance q and correlation c."""
    _check(sigma_w2, sigma_b2)
    return _correlation(_function(activation), sigma_w2, sigma_b2, q, c, centred)


def layer_correlations(activation: Activation, sigma_w2: float, sigma_b2: float, variances: list[float], c1: float,
                       centred: bool = False) -> list[float]:
    """The correlation of two images in each hidden layer, the first being ``c1``, given each layer's variance q."""
    _check(sigma_w2, sigma_b2)
    values, correlations = _function(activation), [c1]
    for q in variances[:-1]:
        correlations.append(_correlation(values, sigma_w2, sigma_b2, min(q, Q_MAX), correlations[-1], centred))
    return correlations


def correlation_fixed_point(activation: Activation, sigma_w2: float, sigma_b2: float, centred: bool = False) -> float:
    """c*: 1 in the ordered phase (chi_1 <= 1), else the correlation below 1 at which the map settles."""
    _check(sigma_w2, sigma_b2)
    values = _function(activation)
    if _chi_1(values, sigma_w2, sigma_b2, centred) <= 1:
        return 1.0
    q = min(float(_fixed_point(values, sigma_w2, sigma_b2, centred)), Q_MAX)
    low, high = -1.0, 1.0 - 1e-9
    for _ in range(50):
        middle = (low + high) / 2
        if _correlation(values, sigma_w2, sigma_b2, q, middle, centred) > middle:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def depth_scales(activation: Activation, sigma_w2: float, sigma_b2: float, centred: bool = False
                 ) -> tuple[float, float]:
    """(xi_q, xi_c): over how many layers the length and the correlation approach their fixed points.

    ``xi_c = -1 / ln(sigma_w^2 E[phi'(u1) phi'(u2)])`` at (q*, c*), infinite on the critical line;
    ``xi_q = -1 / ln(chi_1 + sigma_w^2 E[phi''(z) phi(z)])`` at q*. Where q grows without bound
    there is no fixed point to approach, and a ``ValueError`` says so.
    """
    _check(sigma_w2, sigma_b2)
    values = _function(activation)
    q = float(_fixed_point(values, sigma_w2, sigma_b2, centred))
    if math.isinf(q):
        raise ValueError(f"with sigma_w2={sigma_w2:g} the variance grows without bound from layer to layer: there is "
                         "no fixed point, so no depth scale (the signal explodes)")
    c = correlation_fixed_point(activation, sigma_w2, sigma_b2, centred)
    _, _, d1, d2 = _pair(values, q, c, centred)
    y, slope = _gaussian(values, q)
    if centred:
        y = y - y @ _w
    # E[phi'' phi] without phi'': E[(phi' phi)'] = E[z phi' phi] / q (Stein's lemma), minus E[phi'^2].
    curvature = float(math.sqrt(q) * _z * slope * y @ _w) / q - float(slope**2 @ _w)
    chi_q = sigma_w2 * float(slope**2 @ _w) + sigma_w2 * curvature
    return _scale(chi_q), _scale(sigma_w2 * float(d1 * d2 @ _W2))


def _scale(chi: float) -> float:
    return math.inf if not 0 < chi < 1 - 1e-6 else -1 / math.log(chi)


def depth_scale(activation: Activation, sigma_w2: float, sigma_b2: float, centred: bool = False) -> float:
    """xi_c in layers: how deep a signal that tells two images apart survives (infinite at criticality)."""
    return depth_scales(activation, sigma_w2, sigma_b2, centred)[1]


def critical_sigma_w2(activation: Activation, sigma_b2: float, centred: bool = False) -> float:
    """The sigma_w^2 at which chi_1 = 1 for this sigma_b^2: the critical line between order and chaos."""
    _check(1.0, sigma_b2)
    values = _function(activation)
    low, high = math.log(1e-3), math.log(1e3)
    if _chi_1(values, math.exp(high), sigma_b2, centred) < 1:
        raise ValueError(f"chi_1 of {activation!r} stays below 1 up to sigma_w2 = 1000: it has no critical line")
    for _ in range(40):
        middle = (low + high) / 2
        if _chi_1(values, math.exp(middle), sigma_b2, centred) < 1:
            low = middle
        else:
            high = middle
    return math.exp((low + high) / 2)


def mean_cosine(x: torch.Tensor) -> float:
    """The mean cosine similarity of every pair of rows of ``x`` (images x units): 1 when all images look alike."""
    unit = torch.nn.functional.normalize(x.flatten(1).double(), dim=1)
    n = len(unit)
    return float(((unit @ unit.T).sum() - n) / (n * (n - 1)))


@torch.no_grad()
def measured_propagation(net: torch.nn.Module, imgs: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per hidden layer of a real network, the q and c the theory speaks of, measured on a batch.

    q is the mean square of a unit's pre-activation; c the mean cosine similarity of two images'
    pre-activation vectors, over every pair of the batch.
    """
    from actlab.gradients import preactivations  # the lesson's hooks, imported where they are used

    layers = preactivations(net, imgs)
    return [float(pre.double().square().mean()) for pre in layers], [mean_cosine(pre) for pre in layers]


def predicted_propagation(activation: Activation, sigma_w2: float, sigma_b2: float, q1: float, c1: float,
                          layers: int, centred: bool = False) -> tuple[list[float], list[float]]:
    """The theory's q and c in each of ``layers`` hidden layers, started from the first layer's measured q1 and c1."""
    variances = layer_variances(activation, sigma_w2, sigma_b2, q1, layers, centred)
    return variances, layer_correlations(activation, sigma_w2, sigma_b2, variances, c1, centred)


def _slope(act: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """phi'(z), element by element, from autograd."""
    with torch.enable_grad():
        z = z.detach().requires_grad_()
        (slope,) = torch.autograd.grad(act(z).sum(), z)
    return slope


@torch.no_grad()
def jacobian_singular_values(net: torch.nn.Module, imgs: torch.Tensor) -> np.ndarray:
    """The singular values of d(last hidden layer's output)/d(first hidden layer's pre-activation), over ``imgs``.

    For a plain stack of linear layers and one activation (``BaseNetwork`` without normalization or
    residual blocks): the Jacobian is the product D_L W_L ... D_2 W_2 D_1, with D_l the diagonal of
    the activation's slopes in layer l. Such products stretch some directions and squash others;
    dynamical isometry means that they all stay near 1 (Pennington et al. 2017).
    """
    from actlab.hooks import activation_modules

    linears = [module for module in net.modules() if isinstance(module, torch.nn.Linear)]
    act = activation_modules(net)[0]
    values = []
    for z in linears[0](imgs.flatten(1)):
        jacobian, h = torch.diag(_slope(act, z)), act(z)
        for linear in linears[1:-1]:
            z = linear(h)
            jacobian, h = _slope(act, z)[:, None] * (linear.weight @ jacobian), act(z)
        values.append(torch.linalg.svdvals(jacobian.double()).numpy())
    return np.concatenate(values)
