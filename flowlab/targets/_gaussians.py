r"""The log-density of a mixture of Gaussians with diagonal covariances, shared by the targets.

.. math:: \log p(x) = \log \sum_{k=1}^{K} w_k \prod_{d=1}^{D} \mathcal N(x_d;\, m_{kd}, s_{kd}^2),

evaluated with ``logsumexp`` over the components, so that a point far from every mean gets a
finite (very negative) value instead of :math:`\log 0`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def mixture_log_prob(x: Tensor, means, stds, log_weights=0.0, normalized: bool = True) -> Tensor:
    r""":math:`\log \sum_k w_k\, \mathcal N(x; m_k, \mathrm{diag}(s_k^2))` at the rows of ``x``, shape ``(n, D)``;
    returns ``(n,)``.

    ``means`` has shape ``(K, D)``, or ``(n, K, D)`` for means that depend on the point; ``stds``
    and ``log_weights`` (:math:`\log w_k`, shape ``(K,)``) broadcast against them, so a number
    serves for all components. With ``normalized=False`` each component is the Gaussian kernel
    :math:`e^{-\lVert (x - m_k)/s_k \rVert^2 / 2}`, without :math:`\prod_d (2\pi s_{kd}^2)^{-1/2}`:
    the form of the unnormalised energies. The caller checks ``x``; the parameters are taken in
    the dtype and on the device of ``x``.

    Example:
        >>> import torch
        >>> x = torch.zeros(1, 2, dtype=torch.float64)
        >>> float(mixture_log_prob(x, torch.zeros(1, 2), 1.0)) == -LOG_2PI  # N(0; 0, I) in 2-D
        True
        >>> round(float(mixture_log_prob(x, torch.zeros(2, 2), 1.0, normalized=False)), 4)  # log(e^0 + e^0) = log 2
        0.6931
    """
    means, stds, log_weights = (torch.as_tensor(v, dtype=x.dtype, device=x.device) for v in (means, stds, log_weights))
    z = (x[:, None, :] - means) / stds  # (n, K, D)
    per = -0.5 * (z**2).sum(-1)
    if normalized:
        per = per - torch.log(stds).expand_as(z).sum(-1) - 0.5 * x.shape[1] * LOG_2PI
    return torch.logsumexp(log_weights + per, dim=1)
