"""Our NSF is zuko's coupling NSF with a faster spline: same modules, same densities."""

import torch
import zuko

from emulators.splines import neural_spline_flow


def test_the_fast_spline_flow_matches_zuko_nsf_with_the_same_weights():
    torch.manual_seed(0)
    ours = neural_spline_flow(5, 3, transforms=3, hidden_features=(32, 32))
    theirs = zuko.flows.NSF(5, 3, transforms=3, hidden_features=(32, 32), passes=2)
    with torch.no_grad():  # weights large enough that the bins differ in width
        for p in ours.parameters():
            p.mul_(3.0)
    theirs.load_state_dict(ours.state_dict())  # raises if the modules differ
    ours, theirs = ours.double(), theirs.double()  # equal up to float64 rounding
    theta = torch.randn(2000, 3, dtype=torch.float64)
    x = 2.0 * torch.randn(2000, 5, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(theta).log_prob(x), theirs(theta).log_prob(x))
        z = torch.randn(2000, 5, dtype=torch.float64)
        sampled = ours(theta).transform.inv(z)
        torch.testing.assert_close(sampled, theirs(theta).transform.inv(z))
        torch.testing.assert_close(ours(theta).transform(sampled), z)
        assert ours(theta).log_prob(x).std() > 0.1  # not a degenerate flow
