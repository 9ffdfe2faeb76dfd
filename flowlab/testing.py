r"""The contract every transform keeps, as checks a test, a notebook or a student can call.

A :class:`flowlab.Transform` promises four things, each checked numerically here:

* **invertibility**: :math:`f^{-1}(f(x)) = x` and :math:`f(f^{-1}(z)) = z`;
* **the log-determinant is right**: the ``ladj`` it returns equals
  :math:`\log\lvert\det J\rvert` of the Jacobian :math:`J` that autograd computes, one sample at
  a time, in both directions, and the two directions cancel,
  :math:`\text{ladj}_{f}(x) + \text{ladj}_{f^{-1}}(f(x)) = 0`;
* **it trains**: a loss built from both directions sends a finite, non-zero gradient to every
  parameter;
* **it keeps the tensor's shape, dtype and device**.

A flow's density must also integrate to one, and its samples must follow it:
:func:`density_integral` computes :math:`\int p(x)\,dx` on a 2-D grid, and
:func:`cell_probabilities` against :func:`sample_frequencies` compares the density with a
histogram of samples.

These are test helpers: a failed check raises ``AssertionError`` with a message that says what
is wrong and by how much.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ._checks import check_positive_float, seeded_generator
from .numerics import as_box, box_grid, jacobian_rows

__all__ = [
    "autograd_jacobian",
    "autograd_ladj",
    "cell_probabilities",
    "check_gradients",
    "check_inverse",
    "check_ladj",
    "check_transform",
    "density_integral",
    "folds",
    "sample_frequencies",
    "shaken",
    "signed_det",
]


def _first(out) -> Tensor:
    return out[0] if isinstance(out, tuple) else out


def autograd_jacobian(fn: Callable, x: Tensor) -> Tensor:
    r"""The Jacobian :math:`\partial\, \text{fn}(x)_i / \partial x_j` of each row, by autograd.

    ``fn`` maps ``(batch, D)`` to ``(batch, D_out)`` (or to a tuple whose first element is that,
    like a transform's ``forward``). Each row is differentiated on its own, as a batch of one
    (:func:`flowlab.numerics.jacobian_rows` on it), so a map that mixes the rows of a batch
    cannot hide behind a block-diagonal Jacobian. (:func:`flowlab.numerics.jacobian`
    differentiates the whole batch at once and so assumes the rows independent; this slower one
    is the reference for tests.) Returns ``(batch, D_out, D)``, without a graph.

    Example:
        >>> import torch
        >>> autograd_jacobian(lambda x: 3 * x, torch.ones(2, 2))[0]
        tensor([[3., 0.],
                [0., 3.]])
    """
    rows = []
    with torch.enable_grad():
        for xi in x.detach():
            v = xi.unsqueeze(0).requires_grad_(True)
            rows.append(jacobian_rows(_first(fn(v)), v, create_graph=False)[0])
    return torch.stack(rows)


def autograd_ladj(fn: Callable, x: Tensor) -> Tensor:
    r"""The log-absolute-determinant of the Jacobian of ``fn`` at each row of ``x``, by autograd:

    .. math:: \text{ladj}(x) = \log\left\lvert\det \frac{\partial\, \text{fn}(x)}{\partial x}\right\rvert,

    computed as ``torch.linalg.slogdet`` of the full :math:`D \times D` Jacobian, one sample at a
    time. This costs :math:`O(D)` backward passes and :math:`O(D^3)` per sample: the slow, sure
    reference against which a transform's own ``ladj`` is checked.

    ``fn`` maps ``(batch, D)`` to ``(batch, D)``, or returns a tuple whose first element is the
    image (so a transform, or its ``inverse``, can be passed directly). Returns ``(batch,)``.

    Example:
        >>> import torch
        >>> A = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
        >>> autograd_ladj(lambda x: x @ A.T, torch.randn(4, 2))  # log 6 for every row
        tensor([1.7918, 1.7918, 1.7918, 1.7918])
    """
    return torch.linalg.slogdet(autograd_jacobian(fn, x)).logabsdet


def signed_det(fn: Callable, x: Tensor) -> Tensor:
    r"""The *signed* determinant :math:`\det J(x)` of the Jacobian of ``fn`` at each row of ``x``.

    A normalizing flow's density formula uses :math:`\lvert\det J\rvert`, which cannot see a
    fold: where a map turns the plane over, :math:`\det J` changes sign, the map is no longer
    injective, and the "density" it defines puts mass on some points twice. A map built to be a
    diffeomorphism keeps one sign everywhere (positive for every flowlab transform that starts at
    the identity); a sign change on a grid or a batch is a fold.
    This is that check: the full :math:`D \times D` Jacobian by autograd (:func:`autograd_jacobian`,
    one row at a time, :math:`O(D)` backward passes and :math:`O(D^3)` per sample), then
    ``torch.linalg.det``. Returns ``(batch,)``; see :func:`folds` for the count.

    References: the change of variables needs a bijection, Papamakarios et al. (2021), section 2.1.

    Example:
        >>> import torch
        >>> reflect = lambda x: x * torch.tensor([1.0, -1.0])  # turns the plane over
        >>> signed_det(reflect, torch.zeros(2, 2))
        tensor([-1., -1.])
    """
    return torch.linalg.det(autograd_jacobian(fn, x))


def folds(fn: Callable, x: Tensor) -> tuple[int, float]:
    r"""How many rows of ``x`` have a Jacobian determinant of the other sign than the majority,
    and the smallest :math:`\det J` seen: ``(count, min_det)``.

    A diffeomorphism gives ``count == 0`` and ``min_det > 0`` (for maps that start at the
    identity). Pair every "the density integrates to one" with this check: a map that folds can
    still integrate to one on a coarse grid.

    Example:
        >>> import torch
        >>> folds(lambda x: x**3 - x, torch.linspace(-2, 2, 41, dtype=torch.float64)[:, None])
        (11, -1.0)
    """
    det = signed_det(fn, x)
    negative = int((det < 0).sum())
    count = min(negative, len(det) - negative)
    return count, float(det.min()) if len(det) else float("nan")


def shaken(module: nn.Module, scale: float = 0.3, seed: int = 0, *, fan_in: bool = False) -> nn.Module:
    r"""Add :math:`\text{scale} \cdot \varepsilon`, :math:`\varepsilon \sim N(0, 1)`, to every
    parameter of ``module`` in place, and return it.

    Transforms start at (or near) the identity, where many mistakes cancel: a log-determinant
    that is zero at the start, a mask that is never used. Checks run on shaken parameters, so
    that every weight matters. ``fan_in=True`` divides the noise of a weight matrix by
    :math:`\sqrt{\text{fan in}}` (its second dimension) and uses ``scale / 2`` for vectors, which
    keeps a deep network's output of order ``scale``. The noise comes from a generator seeded
    with ``seed``, in the parameter's dtype, so the same call gives the same module.

    Example:
        >>> import torch, flowlab as fl
        >>> maf = shaken(fl.MAF(2), 0.5, seed=1).double()
        >>> check_transform(maf, torch.randn(8, 2, dtype=torch.float64))
    """
    scale = check_positive_float("scale", scale)
    g = seeded_generator("seed", seed)
    with torch.no_grad():
        for p in module.parameters():
            std = scale
            if fan_in:
                std = scale / p.shape[1] ** 0.5 if p.dim() > 1 else scale / 2
            noise = torch.randn(p.shape, generator=g, dtype=p.dtype if p.is_floating_point() else None)
            p.add_(std * noise.to(p.device))
    return module


def _max_err(a: Tensor, b: Tensor) -> tuple[float, int]:
    err = (a - b).abs()
    if err.dim() > 1:
        err = err.flatten(1).max(dim=1).values
    worst = int(err.argmax())
    return float(err[worst]), worst


def _check_close(what: str, got: Tensor, want: Tensor, atol: float, rtol: float) -> None:
    if not torch.isfinite(got).all():
        bad = (~torch.isfinite(got)).flatten(1).any(1) if got.dim() > 1 else ~torch.isfinite(got)
        raise AssertionError(f"{what}: non-finite values in rows {bad.nonzero().flatten()[:5].tolist()}.")
    ok = (got - want).abs() <= atol + rtol * want.abs()
    if not ok.all():
        err, row = _max_err(got, want)
        raise AssertionError(
            f"{what}: max abs error {err:.3g} (atol={atol:g}, rtol={rtol:g}) at row {row}; "
            f"got {got[row].tolist()}, want {want[row].tolist()}."
        )


def _check_output(what: str, out, x: Tensor) -> tuple[Tensor, Tensor]:
    if not (isinstance(out, tuple) and len(out) == 2):
        raise AssertionError(f"{what} must return a tuple (tensor, ladj), got {type(out).__name__}.")
    y, ladj = out
    if y.shape != x.shape:
        raise AssertionError(f"{what} changed the shape: {tuple(x.shape)} -> {tuple(y.shape)}.")
    if ladj.shape != x.shape[:1]:
        raise AssertionError(f"{what}: ladj must have shape ({x.shape[0]},), got {tuple(ladj.shape)}.")
    for name, t in (("output", y), ("ladj", ladj)):
        if t.dtype != x.dtype:
            raise AssertionError(f"{what}: the {name} has dtype {t.dtype}, the input {x.dtype}.")
        if t.device != x.device:
            raise AssertionError(f"{what}: the {name} is on {t.device}, the input on {x.device}.")
    return y, ladj


def _float64(transform: nn.Module, *points: Tensor) -> tuple:
    """A float64 copy of ``transform`` (the original is not modified) and float64 copies of the points."""
    return (copy.deepcopy(transform).double(), *(p.detach().double() for p in points))


def check_inverse(transform: nn.Module, x: Tensor, z: Tensor | None = None, atol: float = 1e-6,
                  rtol: float = 1e-6) -> None:
    r"""Round trips, in float64: :math:`g(f(x)) \approx x` and :math:`f(g(z)) \approx z`, with
    :math:`f` the data-to-latent map (``forward``) and :math:`g` its ``inverse`` (``z``: ``x``
    by default); and rows are independent: the first row alone gives what it gives within the
    batch, in both directions. Raises ``AssertionError`` saying by how much it fails.

    Example:
        >>> import torch, flowlab as fl
        >>> check_inverse(fl.MAF(3), torch.randn(8, 3))
    """
    z = x if z is None else z
    t, x64, z64 = _float64(transform, x, z)
    with torch.no_grad():
        fx, ladj_f = _check_output("forward (float64)", t(x64), x64)
        gz, ladj_g = _check_output("inverse (float64)", t.inverse(z64), z64)
        x_back, _ = t.inverse(fx)
        z_back, _ = t(gz)
        _check_close("round trip inverse(forward(x)) vs x", x_back, x64, atol, rtol)
        _check_close("round trip forward(inverse(z)) vs z", z_back, z64, atol, rtol)
        for what, fn, v, y, l in (("forward", t, x64, fx, ladj_f), ("inverse", t.inverse, z64, gz, ladj_g)):
            y1, l1 = fn(v[:1])
            _check_close(f"{what} of the first row alone vs within the batch", y1, y[:1], atol, rtol)
            _check_close(f"{what} ladj of the first row alone vs within the batch", l1, l[:1], atol, rtol)


def check_ladj(transform: nn.Module, x: Tensor, z: Tensor | None = None, atol: float = 1e-6,
               rtol: float = 1e-6) -> None:
    r"""Log-determinants, in float64: :math:`\text{ladj}_f(x) = \log\lvert\det \partial f/\partial x\rvert`
    and :math:`\text{ladj}_g(z) = \log\lvert\det \partial g/\partial z\rvert` against
    :func:`autograd_ladj`, and :math:`\text{ladj}_f(x) + \text{ladj}_g(f(x)) \approx 0`.

    Example:
        >>> import torch, flowlab as fl
        >>> check_ladj(shaken(fl.MAF(3)), torch.randn(8, 3))
    """
    z = x if z is None else z
    t, x64, z64 = _float64(transform, x, z)
    with torch.no_grad():
        fx, ladj_f = t(x64)
        _, ladj_g = t.inverse(z64)
        _, ladj_back = t.inverse(fx)
    _check_close("forward ladj against the autograd log|det J|", ladj_f, autograd_ladj(t, x64), atol, rtol)
    _check_close("inverse ladj against the autograd log|det J|", ladj_g, autograd_ladj(t.inverse, z64), atol, rtol)
    _check_close("forward and inverse ladj cancel: ladj_f(x) + ladj_g(f(x))", ladj_f + ladj_back,
                 torch.zeros_like(ladj_f), atol, rtol)


def check_gradients(transform: nn.Module, x: Tensor, z: Tensor | None = None) -> None:
    r"""The scalar :math:`\ell(f(x), \text{ladj}_f) + \tfrac12\,\ell(g(z), \text{ladj}_g)`, with
    :math:`\ell(y, l) = \sum (y^2 + y) + \sum l`, sends a finite gradient that is not all zero
    to every parameter with ``requires_grad`` (in float64; the unequal weights keep the two
    directions from cancelling at the identity).

    Example:
        >>> import torch, flowlab as fl
        >>> check_gradients(fl.MAF(3), torch.randn(8, 3))
    """
    z = x if z is None else z
    t, x64, z64 = _float64(transform, x, z)
    params = [(n, p) for n, p in t.named_parameters() if p.requires_grad]
    fx, ladj_f = t(x64)
    gz, ladj_g = t.inverse(z64)
    loss = (fx.pow(2) + fx).sum() + ladj_f.sum() + 0.5 * ((gz.pow(2) + gz).sum() + ladj_g.sum())
    grads = torch.autograd.grad(loss, [p for _, p in params], allow_unused=True) if params else []
    missing = [n for (n, _), g in zip(params, grads) if g is None]
    bad = [n for (n, _), g in zip(params, grads) if g is not None and not torch.isfinite(g).all()]
    zero = [n for (n, _), g in zip(params, grads) if g is not None and torch.isfinite(g).all() and not g.any()]
    problems = [f"{what} {names}" for what, names in (("no gradient reaches", missing), ("non-finite gradients in", bad),
                                                     ("all-zero gradients in", zero)) if names]
    if problems:
        raise AssertionError("gradients: " + "; ".join(problems) + ".")


def check_transform(
    transform: nn.Module,
    x: Tensor,
    z: Tensor | None = None,
    atol: float = 1e-6,
    rtol: float = 1e-6,
    grad: bool = True,
) -> None:
    r"""Check that ``transform`` keeps the contract of a :class:`flowlab.Transform` at ``x``.

    With :math:`f` the data-to-latent map (``forward``) and :math:`g = f^{-1}` (``inverse``):

    1. ``forward`` and ``inverse`` return ``(tensor, ladj)`` with the input's shape, dtype and
       device, and ``ladj`` of shape ``(batch,)`` (checked in the input's own dtype);
    2. round trips and independent rows (:func:`check_inverse`);
    3. log-determinants against autograd, and the two directions cancel (:func:`check_ladj`);
    4. with ``grad=True``: gradients reach every parameter (:func:`check_gradients`).

    ``z`` are the latent points for the second round trip (default: ``x`` itself, so points far
    in the tails are used in both directions). Checks 2 to 4 run on a float64 copy of
    ``transform`` (the original is not modified), so use a device that has float64. Raises
    ``AssertionError`` saying which check failed and by how much.

    Example:
        >>> import torch, flowlab as fl
        >>> check_transform(fl.MAF(3), torch.randn(8, 3))  # passes silently
        >>> class Double(fl.Transform):  # wrong on purpose: forgets the log-det
        ...     def forward(self, x):
        ...         return 2 * x, x.new_zeros(x.shape[0])
        ...     def inverse(self, z):
        ...         return z / 2, z.new_zeros(z.shape[0])
        >>> try:
        ...     check_transform(Double(), torch.randn(8, 3), grad=False)
        ... except AssertionError as e:
        ...     print(str(e)[:41])
        forward ladj against the autograd log|det
    """
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise AssertionError(f"x must be a (batch, features) tensor, got {getattr(x, 'shape', type(x))}.")
    z = x if z is None else z
    with torch.no_grad():  # 1. shape, dtype and device, in the caller's dtype
        _check_output("forward", transform(x), x)
        _check_output("inverse", transform.inverse(z), z)
    check_inverse(transform, x, z, atol, rtol)
    check_ladj(transform, x, z, atol, rtol)
    if grad:
        check_gradients(transform, x, z)


def _module_dtype_device(m: nn.Module) -> tuple[torch.dtype | None, torch.device | None]:
    for t in list(m.parameters()) + list(m.buffers()):
        if t.is_floating_point():
            return t.dtype, t.device
    return None, None


def _grid_density(flow_or_log_prob, lim, n: int, dtype, device, chunk: int) -> tuple[Tensor, float]:
    """The density at the centres of an ``n x n`` grid of cells (:func:`flowlab.numerics.box_grid`),
    ``(n, n)`` indexed [x, y], and the area of one cell."""
    log_prob = getattr(flow_or_log_prob, "log_prob", flow_or_log_prob)
    if not callable(log_prob):
        raise TypeError(f"expected a flow or a log-density function, got {type(flow_or_log_prob).__name__}.")
    if isinstance(flow_or_log_prob, nn.Module):
        mdtype, mdevice = _module_dtype_device(flow_or_log_prob)
        dtype = dtype or mdtype
        device = device if device is not None else mdevice
    grid, weights = box_grid(as_box(lim, "lim"), cells=n, dtype=dtype or torch.float64, device=device)
    with torch.no_grad():
        p = torch.cat([log_prob(grid[i : i + chunk]).exp() for i in range(0, len(grid), chunk)])
    return p.reshape(n, n), float(weights[0])


def density_integral(
    flow_or_log_prob,
    lim=6.0,
    n: int = 600,
    *,
    dtype: torch.dtype | None = None,
    device=None,
    chunk: int = 65536,
) -> float:
    r"""The integral :math:`\int p(x)\,dx` of a 2-D density over a box, by the midpoint rule.

    The box :math:`[a_1, b_1] \times [a_2, b_2]` is cut into :math:`n \times n` cells of area
    :math:`h_1 h_2`, and

    .. math:: \int p \approx h_1 h_2 \sum_{i,j=1}^{n} p(c_{ij})

    at the cell centres :math:`c_{ij}`. For a smooth density that is negligible at the box's
    edges the error falls like :math:`h^2` or faster; a normalized density gives 1 up to that
    error and the mass outside the box. Features much thinner than a cell (a spline bin of
    width 0.01, say) need a finer grid.

    ``flow_or_log_prob`` is a flow (anything with a ``log_prob`` method) or a function from
    ``(batch, 2)`` points to ``(batch,)`` log-densities. ``lim`` is a number :math:`L` (the box
    :math:`[-L, L]^2`), a pair ``(a, b)`` (the box :math:`[a, b]^2`) or two pairs. The grid is
    built with the module's dtype and device (for a function: float64, on ``device``), unless
    ``dtype``/``device`` say otherwise; cast a flow with ``.double()`` for an accurate integral.

    Example:
        >>> import torch, flowlab as fl
        >>> round(density_integral(fl.StandardNormal(2).double(), lim=6, n=200), 6)
        1.0
        >>> normal = torch.distributions.Normal(0.0, 1.0)
        >>> round(density_integral(lambda x: normal.log_prob(x).sum(-1), lim=(0, 6)), 6)  # a quadrant
        0.25
    """
    p, area = _grid_density(flow_or_log_prob, lim, n, dtype, device, chunk)
    return float(p.sum()) * area


def cell_probabilities(
    flow_or_log_prob,
    lim=6.0,
    cells: int = 12,
    sub: int = 20,
    *,
    dtype: torch.dtype | None = None,
    device=None,
    chunk: int = 65536,
) -> Tensor:
    r"""The probability :math:`P(X \in C_{ij}) = \int_{C_{ij}} p(x)\,dx` of each cell of a
    ``cells x cells`` grid over the box, by the midpoint rule with ``sub x sub`` points per cell.

    Returns ``(cells, cells)``, indexed ``[i, j]`` with :math:`i` along the first coordinate.
    Compare it with :func:`sample_frequencies` of the flow's samples: the two agree up to
    sampling noise (about :math:`\sqrt{p/n}` for :math:`n` samples) exactly when sampling
    and density evaluation describe the same distribution. ``lim``, ``dtype`` and ``device`` as in
    :func:`density_integral`.

    Example:
        >>> import flowlab as fl
        >>> p = cell_probabilities(fl.StandardNormal(2).double(), lim=6, cells=2)
        >>> p.round(decimals=4).tolist()
        [[0.25, 0.25], [0.25, 0.25]]
    """
    p, area = _grid_density(flow_or_log_prob, lim, cells * sub, dtype, device, chunk)
    return p.reshape(cells, sub, cells, sub).sum(dim=(1, 3)) * area


def sample_frequencies(samples: Tensor, lim=6.0, cells: int = 12) -> Tensor:
    r"""The fraction of ``samples`` (shape ``(n, 2)``) in each cell of the grid of
    :func:`cell_probabilities`; samples outside the box count in no cell, so the total is
    the fraction inside. Returns ``(cells, cells)`` in the samples' dtype and device.

    Example:
        >>> import torch
        >>> sample_frequencies(torch.tensor([[-1.0, -1.0], [-1.0, 2.0], [9.0, 0.0]]), lim=6, cells=2)
        tensor([[0.3333, 0.3333],
                [0.0000, 0.0000]])
    """
    lows, highs = zip(*as_box(lim, "lim"))
    low = samples.new_tensor(lows)
    width = samples.new_tensor(highs) - low
    idx = ((samples - low) / width * cells).floor().long()
    inside = ((idx >= 0) & (idx < cells)).all(dim=1)
    idx = idx[inside]
    counts = samples.new_zeros(cells * cells)
    counts.index_add_(0, idx[:, 0] * cells + idx[:, 1], samples.new_ones(len(idx)))
    return counts.reshape(cells, cells) / len(samples)
