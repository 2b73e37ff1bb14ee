"""The Gram and fused style-loss kernels compile for sm_90 (H100), even on a
machine without a GPU, as the launchers really launch them (see
tests/sm90_compile.py): the Gram forward and backward and the style loss
forward and backward (keeping G or 2 G - T - T^T), with targets in the
features' dtype and in float32, on the VGG19 relu1_1..relu5_1 features at
256^2 and 512^2, batch 1 and 8, in bf16, fp16, fp32 (IEEE and TF32) and
fp64, and every configuration must fit the shared memory of an sm_90 block.
The features are meta tensors: the launchers only read their shapes,
strides and dtypes. On CUDA machines the numerical suite compiles and runs
the kernels for real, so this test is not needed there."""

import pytest
import torch

import sm90_compile

VGG19_CHANNELS = (64, 128, 256, 512, 512)  # relu1_1 .. relu5_1, each at half the size before


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason="with CUDA the numerical suite compiles and runs the kernels")
def test_gram_kernels_compile_for_sm90():
    pytest.importorskip("triton", reason="the Triton kernels need triton installed")
    sm90_compile.run_script(__file__, timeout=900)


def _meta(*shape, dtype):
    return torch.empty(shape, dtype=dtype, device="meta")


def _gram(features) -> None:
    from fastgram.kernels import gram

    for x in features:
        gram.gram_backward(gram.gram_forward(x, 0.5), x, 0.5)


def _style_loss(features, target_dtype) -> None:
    from fastgram.kernels import style_loss

    targets = [_meta(x.shape[1], x.shape[1], dtype=target_dtype) for x in features]
    weights = [1.0] * len(features)
    scales = [1.0 / x[0, 0].numel() for x in features]
    for keep_gram in (False, True):
        loss, saved = style_loss.style_loss_forward(features, targets, weights, scales, keep_gram)
        style_loss.style_loss_backward(_meta(dtype=loss.dtype), features, targets, saved,
                                       weights, scales, keep_gram)


def _run_launchers() -> None:
    modes = [(torch.bfloat16, False), (torch.float16, False), (torch.float32, False),
             (torch.float32, True), (torch.float64, False)]
    saved_tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        for dtype, tf32 in modes:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            for size in (256, 512):
                for batch in (1, 8):
                    features = [_meta(batch, c, size >> i, size >> i, dtype=dtype)
                                for i, c in enumerate(VGG19_CHANNELS)]
                    _gram(features)
                    for target_dtype in {dtype, torch.float32}:
                        _style_loss(features, target_dtype)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved_tf32


if __name__ == "__main__":
    raise SystemExit(sm90_compile.compile_launches(_run_launchers))
