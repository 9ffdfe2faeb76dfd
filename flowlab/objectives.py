r"""The two objectives a flow is trained by: the forward and the reverse KL divergence.

Minimizing the forward KL divergence :math:`D_{\mathrm{KL}}(p_X \,\|\, p_\theta)` over
:math:`\theta` is the same as minimizing the negative log-likelihood of data
:math:`x^{(1..m)} \sim p_X`,

.. math:: \mathcal L(\theta) = -\frac1m \sum_{j=1}^{m} \log p_\theta(x^{(j)}),

because the two differ by the entropy of :math:`p_X`, which does not depend on :math:`\theta`.

Training by the reverse KL divergence (:func:`reverse_kl`) needs no data, only an unnormalized
log-density :math:`\log \tilde p = \log (Z\, p_X)` that can be evaluated anywhere. It minimizes

.. math:: \mathcal L(\theta) = \mathbb E_{x \sim p_\theta}\big[\log p_\theta(x) - \log \tilde p(x)\big]
          = D_{\mathrm{KL}}(p_\theta \,\|\, p_X) - \log Z,

estimated with samples of the flow itself, so :math:`\mathcal L \ge -\log Z`.

:class:`flowlab.train.Training` minimizes either, one step at a time.

References: Papamakarios et al. 2021 (Normalizing flows for probabilistic modeling and
inference, section 2.3).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._checks import check_callable, check_positive_int
from .core import Flow, check_flow

__all__ = ["REVERSE_KL_SAMPLES", "forward_kl", "reverse_kl"]

REVERSE_KL_SAMPLES = 256
"""Samples of the flow per step for the reverse KL when ``batch_size`` is ``None``."""


def forward_kl(flow: Flow, x: Tensor) -> Tensor:
    r"""The forward KL objective up to a constant: the mean negative log-likelihood of ``x``.

    Example:
        >>> import torch, flowlab as fl
        >>> flow = fl.Flow(fl.MAF(2), fl.StandardNormal(2))
        >>> float(fl.forward_kl(flow, torch.zeros(3, 2)).detach()) > 0
        True
    """
    check_flow("flow", flow)
    return -flow.log_prob(x).mean()


def reverse_kl(flow: Flow, log_prob_fn: Callable[[Tensor], Tensor], n: int, generator: torch.Generator | None = None) -> Tensor:
    r"""The reverse KL objective up to a constant, estimated with ``n`` samples of the flow.

    With :math:`x^{(j)} = f(z^{(j)})`, :math:`z^{(j)} \sim p_Z`, and ``log_prob_fn`` an
    unnormalized log-density :math:`\log \tilde p = \log(Z\, p_X)`,

    .. math:: \hat{\mathcal L} = \frac1n \sum_{j=1}^{n}
              \big[\log p_\theta(x^{(j)}) - \log \tilde p(x^{(j)})\big],
              \qquad \mathbb E\,\hat{\mathcal L} = D_{\mathrm{KL}}(p_\theta \,\|\, p_X) - \log Z.

    The samples come from :meth:`Flow.rsample_and_log_prob` (one call of
    ``transform.inverse``), so gradients flow through them to the parameters
    (reparametrization): use a flow whose sampling direction is the cheap one, such as
    ``MAF(...).inv``. A ``log_prob_fn`` that returns NaN or :math:`-\infty` at finite samples
    raises a ``ValueError`` that shows where.

    Example:
        >>> import flowlab as fl
        >>> from flowlab.train import reverse_kl
        >>> flow = fl.Flow(fl.MAF(2).inv, fl.StandardNormal(2))
        >>> loss = reverse_kl(flow, fl.targets.banana_log_prob, 128)
        >>> loss.shape
        torch.Size([])
    """
    check_flow("flow", flow)
    check_callable("log_prob_fn", log_prob_fn, "a function of x of shape (n, D) returning log densities of shape (n,)")
    n = check_positive_int("n", n)
    x, log_q = flow.rsample_and_log_prob(n, generator=generator)
    log_p = log_prob_fn(x)
    if not isinstance(log_p, Tensor) or log_p.shape != (n,):
        shape = tuple(log_p.shape) if isinstance(log_p, Tensor) else type(log_p).__name__
        raise ValueError(f"log_prob_fn must map samples of shape ({n}, {flow.features}) to a tensor of shape ({n},), got {shape}.")
    bad = ~torch.isfinite(log_p) & torch.isfinite(x).all(1) & ~(log_p == math.inf)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"log_prob_fn returned {float(log_p[i].detach())} at {int(bad.sum())} of {n} samples of the flow, for example at "
            f"x = {[round(v, 4) for v in x[i].tolist()]}. An unnormalized log-density must be finite wherever the "
            "flow puts mass: check it there (a log of 0 or of a negative number?)."
        )
    return (log_q - log_p).mean()
