"""Every public op rejects bad input with an error that names the argument."""

import pytest
import torch

from fastgram import ops

X = torch.randn(2, 3, 4, 4)
T = torch.randn(3, 3)
META = torch.randn(2, 3, 4, 4, device="meta")


def bad_calls():
    """(id, call, exception type, text the message must contain)."""
    yield "gram-not-tensor", lambda: ops.gram_matrix([[1.0]]), TypeError, "x"
    yield "gram-int", lambda: ops.gram_matrix(torch.ones(1, 2, 3, dtype=torch.int64)), TypeError, "x"
    yield "gram-bool", lambda: ops.gram_matrix(torch.ones(1, 2, 3, dtype=torch.bool)), TypeError, "x"
    yield "gram-complex", lambda: ops.gram_matrix(torch.ones(1, 2, 3, dtype=torch.complex64)), TypeError, "x"
    yield "gram-rank2", lambda: ops.gram_matrix(torch.randn(3, 4)), ValueError, "x"
    yield "gram-rank5", lambda: ops.gram_matrix(torch.randn(1, 2, 3, 4, 5)), ValueError, "x"
    yield "gram-empty", lambda: ops.gram_matrix(torch.randn(0, 3, 4)), ValueError, "x"
    yield "gram-empty-spatial", lambda: ops.gram_matrix(torch.randn(2, 3, 0, 4)), ValueError, "x"
    yield "gram-normalize", lambda: ops.gram_matrix(X, "yes"), TypeError, "normalize"
    yield "gram-scale-nan", lambda: ops.gram_matrix(X, scale=float("nan")), ValueError, "scale"
    yield "gram-scale-str", lambda: ops.gram_matrix(X, scale="1"), TypeError, "scale"
    yield "gram-backend", lambda: ops.gram_matrix(X, backend="cuda"), ValueError, "backend"

    yield "style-features-type", lambda: ops.style_loss("x", [T]), TypeError, "features"
    yield "style-features-empty", lambda: ops.style_loss([], []), ValueError, "features"
    yield "style-target-count", lambda: ops.style_loss([X, X], [T]), ValueError, "targets"
    yield "style-target-channels", lambda: ops.style_loss([X], [torch.randn(4, 4)]), ValueError, "targets[0]"
    yield "style-target-batch", lambda: ops.style_loss([X], [torch.randn(3, 3, 3)]), ValueError, "targets[0]"
    yield "style-target-rank", lambda: ops.style_loss([X], [torch.randn(3)]), ValueError, "targets[0]"
    yield "style-target-int", lambda: ops.style_loss([X], [torch.ones(3, 3, dtype=torch.int32)]), TypeError, "targets[0]"
    yield "style-feature-int", lambda: ops.style_loss([X, X.long()], [T, T]), TypeError, "features[1]"
    yield "style-feature-rank", lambda: ops.style_loss([X, torch.randn(3, 4)], [T, T]), ValueError, "features[1]"
    yield "style-mixed-dtype", lambda: ops.style_loss([X, X.double()], [T, T]), TypeError, "features[1]"
    yield "style-mixed-device", lambda: ops.style_loss([X, META], [T, T]), ValueError, "features[1]"
    yield "style-target-device", lambda: ops.style_loss([X], [T.to("meta")]), ValueError, "targets[0]"
    yield "style-weights-len", lambda: ops.style_loss([X], [T], [1.0, 2.0]), ValueError, "weights"
    yield "style-weights-nan", lambda: ops.style_loss([X], [T], [float("nan")]), ValueError, "weights[0]"
    yield "style-weights-type", lambda: ops.style_loss([X], [T], "1"), TypeError, "weights"
    yield "style-weights-2d", lambda: ops.style_loss([X], [T], torch.ones(1, 1)), ValueError, "weights"
    yield "style-normalize", lambda: ops.style_loss([X], [T], normalize=None), TypeError, "normalize"

    yield "content-shape", lambda: ops.content_loss(X, X[:1]), ValueError, "target"
    yield "content-int", lambda: ops.content_loss(X.long(), X), TypeError, "features"
    yield "content-device", lambda: ops.content_loss(X, META), ValueError, "target"
    yield "content-empty", lambda: ops.content_loss(X[:0], X[:0]), ValueError, "features"

    yield "in-rank", lambda: ops.instance_norm(torch.randn(3, 4)), ValueError, "x"
    yield "in-int", lambda: ops.instance_norm(X.int()), TypeError, "x"
    yield "in-empty", lambda: ops.instance_norm(torch.randn(2, 0, 3, 3)), ValueError, "x"
    yield "in-eps-zero", lambda: ops.instance_norm(X, eps=0.0), ValueError, "eps"
    yield "in-eps-negative", lambda: ops.instance_norm(X, eps=-1e-5), ValueError, "eps"
    yield "in-eps-inf", lambda: ops.instance_norm(X, eps=float("inf")), ValueError, "eps"
    yield "in-weight-len", lambda: ops.instance_norm(X, torch.ones(4)), ValueError, "weight"
    yield "in-weight-batch", lambda: ops.instance_norm(X, torch.ones(3, 3)), ValueError, "weight"
    yield "in-bias-rank", lambda: ops.instance_norm(X, None, torch.ones(1, 2, 3)), ValueError, "bias"
    yield "in-bias-int", lambda: ops.instance_norm(X, None, torch.ones(3, dtype=torch.int64)), TypeError, "bias"
    yield "in-weight-device", lambda: ops.instance_norm(X, torch.ones(3, device="meta")), ValueError, "weight"
    yield "in-activation", lambda: ops.instance_norm(X, activation="gelu"), ValueError, "activation"
    yield "in-slope", lambda: ops.instance_norm(X, activation="leaky_relu", negative_slope="a"), TypeError, "negative_slope"

    yield "adain-alpha-high", lambda: ops.adain(X, X, alpha=1.5), ValueError, "alpha"
    yield "adain-alpha-low", lambda: ops.adain(X, X, alpha=-0.1), ValueError, "alpha"
    yield "adain-eps", lambda: ops.adain(X, X, eps=0), ValueError, "eps"
    yield "adain-channels", lambda: ops.adain(X, torch.randn(2, 4, 4, 4)), ValueError, "style"
    yield "adain-batch", lambda: ops.adain(X, torch.randn(3, 3, 4, 4)), ValueError, "style"
    yield "adain-rank", lambda: ops.adain(X, torch.randn(2, 3, 16)), ValueError, "style"
    yield "adain-device", lambda: ops.adain(X, META), ValueError, "style"
    yield "adain-content-int", lambda: ops.adain(X.long(), X), TypeError, "content"
    yield "adain-style-empty", lambda: ops.adain(X, torch.randn(2, 3, 0, 4)), ValueError, "style"


CASES = list(bad_calls())


@pytest.mark.parametrize("call, error, name", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_naming_the_argument(call, error, name):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert message.startswith(name + ":"), message


def test_single_tensor_and_list_forms_agree():
    assert torch.equal(ops.style_loss(X, T), ops.style_loss([X], [T]))


def test_zero_dim_tensor_numbers_are_accepted():
    a = ops.instance_norm(X, eps=torch.tensor(1e-3))
    b = ops.instance_norm(X, eps=1e-3)
    assert torch.equal(a, b)
