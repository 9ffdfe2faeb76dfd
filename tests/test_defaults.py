"""The defaults generalize: the opening example trained with the plain call reaches a
held-out NLL close to the true density's."""

import torch

import flowlab as fl


def test_default_spline_flow_generalizes_on_circles(device):
    torch.manual_seed(0)
    flow = fl.Flow(fl.SplineAutoregressive(2), fl.StandardNormal(2)).to(device)
    x = fl.targets.circles(1000, seed=0).to(device)
    fl.fit(flow, x, steps=2000, lr=5e-3, progress=False)
    x_test = fl.targets.circles(20000, seed=12345)
    with torch.no_grad():
        nll = float(-flow.log_prob(x_test.to(device)).mean())
    true_nll = float(-fl.targets.circles_log_prob(x_test).mean())
    assert abs(true_nll - 1.765) < 0.02  # the floor: the entropy of the data
    assert true_nll - 0.01 < nll <= 1.90, f"held-out NLL {nll:.3f} (true density {true_nll:.3f})"
