"""MNIST-C translate and scale against the corruption definition (google-research/mnist-c, severity 3)."""

import numpy as np
import pytest
import torch

from kdtune.train.data.augment import random_translate
from kdtune.train.data.corruptions import scale, shift_images, translate


def _reference_warp(img: np.ndarray, inverse_map) -> np.ndarray:
    """skimage.transform.warp(img, inverse_map, order=1, mode='constant', cval=0), written out."""
    h, w = img.shape
    out = np.zeros_like(img)
    for r in range(h):
        for c in range(w):
            sr, sc = inverse_map(r, c)
            r0, c0 = int(np.floor(sr)), int(np.floor(sc))
            val = 0.0
            for rr, wr in ((r0, 1 - (sr - r0)), (r0 + 1, sr - r0)):
                for cc, wc in ((c0, 1 - (sc - c0)), (c0 + 1, sc - c0)):
                    if 0 <= rr < h and 0 <= cc < w:
                        val += wr * wc * img[rr, cc]
            out[r, c] = val
    return np.clip(out, 0, 1)


def test_translate_moves_every_image_by_exactly_shift_on_both_axes():
    x = torch.zeros(64, 1, 28, 28)
    x[:, 0, 14, 10] = 1.0  # one bright pixel
    out = translate(x, shift=3, generator=torch.Generator().manual_seed(0))
    pos = out[:, 0].flatten(1).argmax(1)
    dr, dc = pos // 28 - 14, pos % 28 - 10
    assert set(dr.abs().tolist()) == {3} and set(dc.abs().tolist()) == {3}
    assert {(a, b) for a, b in zip(dr.tolist(), dc.tolist(), strict=True)} == {(-3, -3), (-3, 3), (3, -3), (3, 3)}
    assert torch.equal(out.sum((1, 2, 3)), torch.ones(64))


def test_translate_equals_skimage_warp_with_translation_inverse_map():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(8, 1, 28, 28, generator=g)
    out = translate(x, shift=3, generator=torch.Generator().manual_seed(5))
    signs = torch.randint(0, 2, (8, 2), generator=torch.Generator().manual_seed(5)) * 2 - 1
    for i in range(8):
        dx, dy = 3 * int(signs[i, 0]), 3 * int(signs[i, 1])
        ref = _reference_warp(x[i, 0].numpy(), lambda r, c, dx=dx, dy=dy: (r + dy, c + dx))
        np.testing.assert_allclose(out[i, 0].numpy(), ref, atol=1e-6)


def test_translate_is_reproducible_for_a_fixed_seed():
    x = torch.rand(16, 1, 12, 12)
    a = translate(x, 2, torch.Generator().manual_seed(7))
    b = translate(x, 2, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_scale_equals_skimage_warp_with_scale_about_the_centre():
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    out = scale(x, factor=0.7)
    s = 1 / 0.7
    for i in range(2):
        ref = _reference_warp(x[i, 0].numpy().astype(np.float64), lambda r, c: (13.5 + (r - 13.5) * s, 13.5 + (c - 13.5) * s))
        np.testing.assert_allclose(out[i, 0].numpy(), ref, atol=1e-5)


def test_scale_of_a_linear_ramp_is_exact_inside_and_zero_far_outside():
    r, c = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    ramp = ((r * 28 + c) / (28 * 28)).reshape(1, 1, 28, 28)
    out = scale(ramp, factor=0.7)[0, 0]
    # output (13, 13) reads the input at 13.5 + (13 - 13.5) / 0.7: bilinear of a linear function is exact
    src = 13.5 - 0.5 / 0.7
    assert out[13, 13].item() == pytest.approx((src * 28 + src) / 784, abs=1e-6)
    # output (0, 0) reads at 13.5 - 13.5 / 0.7 < 0: outside the image, 0
    assert out[0, 0].item() == 0.0
    assert out[27, 27].item() == 0.0  # reads at 32.79 > 27


def test_shift_images_zero_fills_and_moves_content_opposite_to_the_offset():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = shift_images(x, torch.tensor([1]), torch.tensor([-1]))
    expected = torch.tensor([[0, 4, 5, 6], [0, 8, 9, 10], [0, 12, 13, 14], [0, 0, 0, 0]], dtype=torch.float32)
    assert torch.equal(out[0, 0], expected)


def test_random_translate_augmentation_stays_within_max_shift():
    x = torch.zeros(200, 1, 12, 12)
    x[:, 0, 6, 6] = 1
    out = random_translate(x, torch.Generator().manual_seed(0), max_shift=2)
    pos = out[:, 0].flatten(1).argmax(1)
    dr, dc = pos // 12 - 6, pos % 12 - 6
    assert dr.abs().max() <= 2 and dc.abs().max() <= 2
    assert len(set(zip(dr.tolist(), dc.tolist(), strict=True))) == 25
