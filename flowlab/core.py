r"""The core of flowlab: transforms, their composition, the base distribution and the flow.

Convention (one for the whole package): a :class:`Transform` maps **data to latent**,

.. math:: z = f^{-1}(x), \qquad \text{ladj}(x) = \log\left|\det \frac{\partial z}{\partial x}\right|,

which is the direction in which the density is evaluated. ``forward(x)`` returns ``(z, ladj)``,
``inverse(z)`` returns ``(x, ladj)`` where that ``ladj`` is the log-determinant of the inverse
map at ``z``. Tensors are ``(batch, features)``; ``ladj`` is ``(batch,)``.

The change of variables formula then reads, in code,

.. math:: \log p_X(x) = \log p_Z(z) + \text{ladj}(x).

References: Papamakarios et al. 2021 (Normalizing flows for probabilistic modeling and
inference), sections 2.1-2.2; Rezende & Mohamed 2015.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor, nn

from ._checks import ArgumentTypeError, check_batch, check_finite, check_like, check_positive_int, check_type


def check_input(transform: nn.Module, name: str, x) -> None:
    """``x`` can enter ``transform``: a tensor of shape ``(batch, features)`` (when the transform
    says how many features it has) with the dtype and device of its parameters. Otherwise a
    ``ValueError`` names ``name`` and says which conversion to make: a layer called directly
    does not convert (:meth:`Flow.log_prob` does)."""
    features = getattr(transform, "features", None)
    if isinstance(features, int) and not isinstance(features, bool):
        check_batch(name, x, features)
    elif not isinstance(x, Tensor):
        check_type(name, x, Tensor, "a torch.Tensor of shape (batch, features)")
    check_like(name, x, transform)


def _checking(method, name: str):
    """``method`` (a ``forward`` or ``inverse``) preceded by :func:`check_input` on its input."""

    @functools.wraps(method)
    def checked(self, x, *args, **kwargs):
        check_input(self, name, x)
        return method(self, x, *args, **kwargs)

    checked.checks_input = True
    return checked


class Transform(nn.Module):
    r"""An invertible map :math:`f^{-1}` from data space to latent space, with its log-determinant.

    Subclasses implement ``forward(x) -> (z, ladj)`` (data to latent, the density direction),

    .. math:: z = f^{-1}(x), \qquad \text{ladj}(x) = \log\left|\det \frac{\partial f^{-1}(x)}{\partial x}\right|,

    and ``inverse(z) -> (x, ladj)`` (latent to data, the sampling direction), whose ``ladj`` is
    :math:`\log|\det \partial f(z)/\partial z| = -\text{ladj}(f(z))`. Each subclass says which
    direction is explicit and which one is iterative, and what each costs. ``t.inv`` is the same
    transform with the two directions swapped (:class:`Inverse`, no cost).

    **Input check.** Before a subclass's ``forward`` or ``inverse`` runs, its input is checked
    (:func:`check_input`): a ``(batch, features)`` tensor (when the subclass sets
    ``features``) with the dtype and device of the transform's parameters. A float64 batch
    given to a float32 layer gets a ``ValueError`` that says to pass ``x.float()`` or to convert
    the layer with ``.double()``, not a torch error from deep inside a matrix product. (The
    subclass's methods are wrapped once, when the class is defined.)

    References: Papamakarios et al. 2021, section 2; Rezende & Mohamed 2015.

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.Reverse(3)
        >>> x = torch.randn(4, 3)
        >>> z, ladj = t(x)
        >>> torch.equal(t.inverse(z)[0], x)
        True
        >>> fl.LU(2)(torch.zeros(4, 2, dtype=torch.float64))
        Traceback (most recent call last):
        ...
        ValueError: x has dtype torch.float64 but the LU's parameters have dtype torch.float32: pass x.float(), or convert the model with .to(torch.float64). (A fl.Flow's log_prob converts its input itself.)
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for method, name in (("forward", "x"), ("inverse", "z")):
            own = cls.__dict__.get(method)
            if callable(own) and not getattr(own, "checks_input", False):
                setattr(cls, method, _checking(own, name))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def inv(self) -> "Transform":
        """This transform with its two directions swapped."""
        return Inverse(self)


class Inverse(Transform):
    r"""The inverse :math:`g^{-1}` of a transform :math:`g`: ``forward`` is ``g.inverse`` and
    ``inverse`` is ``g.forward``, so

    .. math:: \text{ladj}_{g^{-1}}(x) = \text{ladj}_{g,\text{inverse}}(x) = -\text{ladj}_g(g^{-1}(x)).

    The parameters are shared with ``g`` (nothing is copied), and each direction costs what the
    other direction of ``g`` costs. For example, an inverse autoregressive flow (IAF) is
    ``MAF(...).inv``: cheap to sample, iterative to evaluate.

    References: Kingma et al. 2016 (IAF, the inverse of an autoregressive flow); Papamakarios
    et al. 2021, section 3.1.

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.MAF(2)
        >>> t.inv.inv is t
        True
    """

    def __init__(self, transform: Transform):
        super().__init__()
        check_type("transform", transform, Transform, "a flowlab Transform such as fl.MAF(2)")
        self.transform = transform
        self.features = _one(declared_features(transform))  # None when g does not say

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.transform.inverse(x)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.transform.forward(z)

    @property
    def inv(self) -> Transform:
        return self.transform


class Compose(Transform):
    r"""The composition of transforms, applied in the order given (data to latent).

    For :math:`z = g_L(\dots g_1(x))` the log-determinants add up along the way,

    .. math:: \text{ladj}(x) = \sum_{\ell=1}^{L} \text{ladj}_\ell(x_{\ell-1}),
              \qquad x_0 = x,\; x_\ell = g_\ell(x_{\ell-1}),

    and the inverse applies the inverses in reverse order. Each direction costs the sum of its
    parts' costs in that direction, plus :math:`O(L)` additions of ``(batch,)`` vectors.

    References: Papamakarios et al. 2021, section 2.2 (composing flows).

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.Compose(fl.MAF(2), fl.Reverse(2), fl.MAF(2))
        >>> x = torch.randn(5, 2)
        >>> z, ladj = t(x)
        >>> torch.allclose(t.inverse(z)[0], x, atol=1e-5)
        True
    """

    def __init__(self, *transforms: Transform):
        super().__init__()
        if not transforms:
            raise ValueError("Compose needs at least one transform.")
        for i, t in enumerate(transforms):
            name = f"Compose takes flowlab Transforms: argument {i}"
            check_type(name, t, Transform, "a flowlab Transform such as fl.MAF(2)")
        sizes = sorted(set().union(*(declared_features(t) for t in transforms)))
        if len(sizes) > 1:
            raise ValueError(
                f"Compose joins transforms of one size, but these work on {' and '.join(map(str, sizes))} features: "
                "build every transform with the same features."
            )
        self.transforms = nn.ModuleList(transforms)
        self.features = sizes[0] if sizes else None  # None when no transform says

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        ladj = x.new_zeros(x.shape[0])
        for t in self.transforms:
            x, l = t(x)
            ladj = ladj + l
        return x, ladj

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        ladj = z.new_zeros(z.shape[0])
        for t in reversed(self.transforms):
            z, l = t.inverse(z)
            ladj = ladj + l
        return z, ladj

    def trajectory(self, x: Tensor) -> list[Tensor]:
        """The intermediate points ``[x, g_1(x), g_2(g_1(x)), ..., z]`` (data to latent)."""
        points = [x]
        for t in self.transforms:
            x, _ = t(x)
            points.append(x)
        return points

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, i: int) -> Transform:
        return self.transforms[i]


class StandardNormal(nn.Module):
    r"""The standard normal base distribution :math:`\mathcal N(0, I_D)`.

    .. math:: \log p_Z(z) = -\tfrac12 \lVert z\rVert^2 - \tfrac D2 \log(2\pi).

    ``log_prob`` and ``sample`` each cost :math:`O(D)` per point. A module with a buffer, so
    ``.to(device)`` and ``.double()`` move and cast it.

    References: Papamakarios et al. 2021, section 2.1 (the base distribution).

    Example:
        >>> import flowlab as fl
        >>> base = fl.StandardNormal(2)
        >>> base.sample(3).shape
        torch.Size([3, 2])
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = check_positive_int("features", features)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor) -> Tensor:
        check_batch("z", z, self.features)
        return -0.5 * z.pow(2).sum(-1) - 0.5 * self.features * math.log(2 * math.pi)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        n = check_positive_int("n", n)
        a = self._anchor
        if generator is not None:
            example = "a torch.Generator, such as torch.Generator().manual_seed(0), or None"
            check_type("generator", generator, torch.Generator, example)
            if generator.device.type != a.device.type:
                raise ValueError(
                    f"generator is on {generator.device} but the samples are drawn on {a.device}: "
                    f"pass torch.Generator(device='{a.device}')."
                )
        return torch.randn(n, self.features, dtype=a.dtype, device=a.device, generator=generator)

    def extra_repr(self) -> str:
        return f"features={self.features}"


def declared_features(t: Transform) -> set[int]:
    """The numbers of features that ``t`` says it works on (its ``features`` attribute, or those
    of the transforms it is made of); empty when it does not say."""
    if isinstance(t, Inverse):
        return declared_features(t.transform)
    if isinstance(t, Compose):
        return set().union(*(declared_features(s) for s in t.transforms))
    f = getattr(t, "features", None)
    return {int(f)} if isinstance(f, int) and not isinstance(f, bool) else set()


def _one(sizes: set[int]) -> int | None:
    return next(iter(sizes)) if len(sizes) == 1 else None


def _first_float(module: nn.Module) -> Tensor | None:
    """The first parameter of ``module``, else its first floating-point buffer, else None."""
    for p in module.parameters():
        return p
    return next((b for b in module.buffers() if b.is_floating_point()), None)


def _check_base(base) -> None:
    if isinstance(base, StandardNormal):
        return
    if isinstance(base, nn.Module) and all(callable(getattr(base, m, None)) for m in ("log_prob", "sample")):
        if isinstance(getattr(base, "features", None), int):
            return  # another base distribution written like StandardNormal
    if isinstance(base, torch.distributions.Distribution):
        raise ArgumentTypeError(
            f"base must be a flowlab base distribution such as fl.StandardNormal(2), got the torch distribution "
            f"{type(base).__name__}: flowlab's base is a module of batches (batch, D), so that flow.to(device) "
            "moves it; use fl.StandardNormal(features)."
        )
    check_type("base", base, StandardNormal, "a flowlab base distribution such as fl.StandardNormal(2)")  # raises


class Flow(nn.Module):
    r"""A normalizing flow: a transform (data to latent) and a base distribution.

    * density: :math:`\log p(x) = \log p_Z(f^{-1}(x)) + \log|\det \nabla f^{-1}(x)|`,
      one call of ``transform.forward``;
    * sampling: :math:`x = f(z),\ z \sim p_Z`, one call of ``transform.inverse``.

    Each costs what that direction of the transform costs, plus :math:`O(D)` per point for
    the base.

    **dtype rule.** The flow computes in its own dtype, :attr:`dtype`, that of its transform's
    parameters (a base in another dtype or on another device is moved to them at construction;
    ``flow.double()`` switches everything to float64). ``log_prob`` converts its input to that
    dtype: float64 data from numpy or scikit-learn, and integer data, work on a float32 flow,
    and the result has the flow's dtype. Samples have the flow's dtype too. Inputs on another
    device than :attr:`device` are refused (moving data is for the caller to choose), and so
    are points with NaN or infinite coordinates, where no density is defined.

    References: Papamakarios et al. 2021, section 2.1; Rezende & Mohamed 2015.

    Example:
        >>> import torch, flowlab as fl
        >>> flow = fl.Flow(fl.SplineAutoregressive(2), fl.StandardNormal(2))
        >>> flow.log_prob(torch.zeros(4, 2)).shape
        torch.Size([4])
        >>> flow.sample(10).shape
        torch.Size([10, 2])
        >>> flow.log_prob(torch.zeros(4, 2, dtype=torch.float64)).dtype  # converted to the flow's dtype
        torch.float32
        >>> flow.dtype, flow.device
        (torch.float32, device(type='cpu'))
    """

    def __init__(self, transform: Transform, base: StandardNormal):
        super().__init__()
        check_type("transform", transform, Transform, "a flowlab Transform such as fl.MAF(2)")
        _check_base(base)
        sizes = declared_features(transform)
        if sizes and sizes != {base.features}:
            raise ValueError(
                f"the transform works on {' and '.join(map(str, sorted(sizes)))} features but the base distribution "
                f"has {base.features}: use fl.StandardNormal({min(sizes)}), or build the transform for "
                f"{base.features} features."
            )
        self.transform = transform
        self.base = base
        ref, anchor = _first_float(transform), getattr(base, "_anchor", None)
        if ref is not None and isinstance(anchor, Tensor) and (anchor.dtype, anchor.device) != (ref.dtype, ref.device):
            base.to(device=ref.device, dtype=ref.dtype)  # one dtype and device for the whole flow

    @property
    def features(self) -> int:
        return self.base.features

    def _reference(self) -> Tensor | None:
        """A tensor with the flow's dtype and device: the base's anchor buffer, which moves and
        casts with the flow (a lookup, not a search through the parameters)."""
        anchor = getattr(self.base, "_anchor", None)
        return anchor if isinstance(anchor, Tensor) else _first_float(self.transform)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the flow computes in (see the dtype rule above)."""
        ref = self._reference()
        return ref.dtype if ref is not None else torch.get_default_dtype()

    @property
    def device(self) -> torch.device:
        """The device the flow's parameters and base live on."""
        ref = self._reference()
        return ref.device if ref is not None else torch.device("cpu")

    def _as_input(self, x) -> Tensor:
        """``x`` as a finite ``(batch, features)`` tensor in the flow's dtype, on its device, or a
        ``ValueError`` that says what to pass (the dtype rule above)."""
        if not isinstance(x, (Tensor, str, bytes)) and x is not None:
            try:  # a numpy array (it has no device: it goes to the flow's)
                x = torch.as_tensor(x, device=self.device)
            except (TypeError, ValueError, RuntimeError):
                pass  # check_batch says what x must be
        check_batch("x", x, self.features)
        if x.is_complex():
            raise ValueError(f"x must hold real numbers, got dtype {x.dtype}.")
        if x.device != self.device:
            raise ValueError(
                f"x is on {x.device} but the flow is on {self.device}: pass x.to('{self.device}'), "
                f"or move the flow with flow.to('{x.device}')."
            )
        x = x.to(self.dtype)
        check_finite("x", x, "the density is defined at finite points only: remove or impute them")
        return x

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density of each row of ``x`` (shape ``(batch, features)``); returns ``(batch,)``.

        ``x`` is converted to the flow's dtype (see the dtype rule above); a numpy array is
        accepted too. NaN or infinite coordinates raise a ``ValueError`` naming the rows.
        """
        z, ladj = self.transform(self._as_input(x))
        return self.base.log_prob(z) + ladj

    def rsample_and_log_prob(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        r"""``n`` samples, differentiable in the parameters, and their log-density.

        The density comes for free from the sampling pass:
        :math:`\log p(x) = \log p_Z(z) - \log|\det \nabla f(z)|`. This is what the reverse
        KL objective needs.
        """
        z = self.base.sample(n, generator=generator)
        z = z.to(device=self.device, dtype=self.dtype)  # a no-op, unless a base without an anchor samples otherwise
        x, ladj = self.transform.inverse(z)
        return x, self.base.log_prob(z) - ladj

    def rsample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples through which gradients flow to the parameters."""
        return self.rsample_and_log_prob(n, generator=generator)[0]

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples, without gradients."""
        return self.rsample(n, generator=generator)


def check_flow(name: str, value) -> None:
    """A :class:`Flow`; a bare transform gets told how to wrap it."""
    if isinstance(value, Flow):
        return
    if isinstance(value, Transform):
        raise ArgumentTypeError(
            f"{name} must be a flowlab Flow, got the transform {type(value).__name__}: wrap it with its base "
            "distribution, fl.Flow(transform, fl.StandardNormal(features))."
        )
    check_type(name, value, Flow, "a flowlab Flow such as fl.Flow(fl.MAF(2), fl.StandardNormal(2))")
