"""Batched pad-and-crop augmentation (Vineet, CS618 report: pad to 30x30, random 28x28 crop)."""
import torch
import torch.nn.functional as F

from hyperbench.data.geometry import crop_at, random_crop


def test_crop_at_equals_slicing_the_padded_image():
    x = torch.randn(5, 3, 28, 28)
    oy, ox = torch.tensor([0, 1, 2, 0, 2]), torch.tensor([2, 0, 1, 1, 2])
    out = crop_at(x, 1, oy, ox)
    xp = F.pad(x, (1, 1, 1, 1))
    for i in range(5):
        torch.testing.assert_close(out[i], xp[i, :, oy[i]:oy[i] + 28, ox[i]:ox[i] + 28])


def test_zero_offset_shifts_content_by_the_padding():
    x = torch.arange(28 * 28, dtype=torch.float32).view(1, 1, 28, 28)
    out = crop_at(x, 1, torch.tensor([1]), torch.tensor([1]))  # the centred crop is the input
    torch.testing.assert_close(out, x)
    out = crop_at(x, 1, torch.tensor([0]), torch.tensor([0]))  # shifted down-right by one pixel
    assert out[0, 0, 0].abs().sum() == 0 and out[0, 0, :, 0].abs().sum() == 0
    torch.testing.assert_close(out[0, 0, 1:, 1:], x[0, 0, :-1, :-1])


def test_random_crop_gives_one_of_the_nine_crops_and_uses_all_offsets():
    torch.manual_seed(0)
    x = torch.rand(400, 1, 28, 28)
    g = torch.Generator().manual_seed(1)
    out = random_crop(x, 1, g)
    assert out.shape == x.shape
    xp = F.pad(x, (1, 1, 1, 1))
    crops = torch.stack([xp[:, :, dy:dy + 28, dx:dx + 28] for dy in range(3) for dx in range(3)], 1)
    match = (crops == out[:, None]).flatten(2).all(-1)  # [N, 9]
    assert match.any(1).all()
    used = match.float().argmax(1)
    assert set(used.tolist()) == set(range(9))


def test_random_crop_is_reproducible_and_identity_without_padding():
    x = torch.rand(16, 1, 28, 28)
    a = random_crop(x, 1, torch.Generator().manual_seed(3))
    b = random_crop(x, 1, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    assert random_crop(x, 0) is x


def test_affine_grid_equals_torch_affine_grid_and_warp_fills_outside():
    import torch.nn.functional as F

    from hyperbench.data.geometry import affine_grid, warp

    theta = torch.randn(7, 2, 3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(affine_grid(theta, 5, 9), F.affine_grid(theta, [7, 1, 5, 9], align_corners=False), atol=1e-6)
    x = torch.rand(7, 2, 5, 9)
    shift = torch.tensor([[1.0, 0, 5.0], [0, 1.0, 0]]).expand(7, 2, 3)  # samples far outside: all fill
    assert torch.equal(warp(x, shift, fill=-1.0), torch.full_like(x, -1.0))
    identity = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(7, 2, 3)
    assert torch.allclose(warp(x, identity, fill=-1.0), x, atol=1e-6)
