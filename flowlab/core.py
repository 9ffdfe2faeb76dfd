r"""The core of flowlab: transforms, their composition, the base distribution and the flow.

Convention (one for the whole package): a :class:`Transform` maps **data to latent**,

.. math:: z = f^{-1}(x), \qquad \text{ladj}(x) = \log\left|\det \frac{\partial z}{\partial x}\right|,

which is the direction in which the density is evaluated. ``forward(x)`` returns ``(z, ladj)``,
``inverse(z)`` returns ``(x, ladj)`` where that ``ladj`` is the log-determinant of the inverse
map at ``z``. Tensors are ``(batch, features)``; ``ladj`` is ``(batch,)``.

The change of variables formula then reads, in code,

.. math:: \log p_X(x) = \log p_Z(z) + \text{ladj}(x).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._checks import ArgumentTypeError, check_batch, check_finite, check_positive_int, check_type


class Transform(nn.Module):
    r"""An invertible map between data space and latent space.

    Subclasses implement ``forward(x) -> (z, ladj)`` (data to latent) and
    ``inverse(z) -> (x, ladj)`` (latent to data). Each subclass says which direction is
    explicit and which one is iterative. ``t.inv`` is the same transform with the two
    directions swapped.

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.Reverse(3)
        >>> x = torch.randn(4, 3)
        >>> z, ladj = t(x)
        >>> torch.equal(t.inverse(z)[0], x)
        True
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def inv(self) -> "Transform":
        """This transform with its two directions swapped."""
        return Inverse(self)


class Inverse(Transform):
    r"""The inverse :math:`g^{-1}` of a transform :math:`g`: ``forward`` is ``g.inverse``.

    The parameters are shared with ``g`` (nothing is copied). For example, an inverse
    autoregressive flow (IAF) is ``MAF(...).inv``: cheap to sample, iterative to evaluate.

    Example:
        >>> import torch, flowlab as fl
        >>> t = fl.MAF(2)
        >>> t.inv.inv is t
        True
    """

    def __init__(self, transform: Transform):
        super().__init__()
        self.transform = transform

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

    and the inverse applies the inverses in reverse order.

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

    A module with a buffer, so ``.to(device)`` and ``.double()`` move and cast it.

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

    **dtype rule.** The flow computes in its own dtype, that of its transform's parameters
    (a base in another dtype or on another device is moved to them at construction;
    ``flow.double()`` switches everything to float64). ``log_prob`` converts its input to that dtype:
    float64 data from numpy or scikit-learn, and integer data, work on a float32 flow, and the
    result has the flow's dtype. Samples have the flow's dtype too. Inputs on another device
    are refused (moving data is for the caller to choose), and so are points with NaN or
    infinite coordinates, where no density is defined.

    Example:
        >>> import torch, flowlab as fl
        >>> flow = fl.Flow(fl.SplineAutoregressive(2), fl.StandardNormal(2))
        >>> flow.log_prob(torch.zeros(4, 2)).shape
        torch.Size([4])
        >>> flow.sample(10).shape
        torch.Size([10, 2])
        >>> flow.log_prob(torch.zeros(4, 2, dtype=torch.float64)).dtype  # converted to the flow's dtype
        torch.float32
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

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density of each row of ``x`` (shape ``(batch, features)``); returns ``(batch,)``.

        ``x`` is converted to the flow's dtype (see the dtype rule above); a numpy array is
        accepted too. NaN or infinite coordinates raise a ``ValueError`` naming the rows.
        """
        ref = self._reference()
        if not isinstance(x, (Tensor, str, bytes)) and x is not None:
            try:  # a numpy array (it has no device: it goes to the flow's)
                x = torch.as_tensor(x, device=None if ref is None else ref.device)
            except (TypeError, ValueError, RuntimeError):
                pass  # check_batch says what x must be
        check_batch("x", x, self.features)
        if x.is_complex():
            raise ValueError(f"x must hold real numbers, got dtype {x.dtype}.")
        if ref is not None and x.device != ref.device:
            raise ValueError(
                f"x is on {x.device} but the flow is on {ref.device}: pass x.to('{ref.device}'), "
                f"or move the flow with flow.to('{x.device}')."
            )
        dtype = ref.dtype if ref is not None else (x.dtype if x.is_floating_point() else torch.get_default_dtype())
        if x.dtype != dtype:
            x = x.to(dtype)
        check_finite("x", x, "the density is defined at finite points only: remove or impute them")
        z, ladj = self.transform(x)
        return self.base.log_prob(z) + ladj

    def rsample_and_log_prob(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        r"""``n`` samples, differentiable in the parameters, and their log-density.

        The density comes for free from the sampling pass:
        :math:`\log p(x) = \log p_Z(z) - \log|\det \nabla f(z)|`. This is what the reverse
        KL objective needs.
        """
        z = self.base.sample(n, generator=generator)
        ref = self._reference()
        if ref is not None and (z.dtype != ref.dtype or z.device != ref.device):
            z = z.to(device=ref.device, dtype=ref.dtype)  # a base without an anchor may sample in another dtype
        x, ladj = self.transform.inverse(z)
        return x, self.base.log_prob(z) - ladj

    def rsample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples through which gradients flow to the parameters."""
        return self.rsample_and_log_prob(n, generator=generator)[0]

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples, without gradients."""
        return self.rsample(n, generator=generator)
