"""Batched augmentations: shapes, ranges, determinism, and each op doing what it says."""

from __future__ import annotations

import pytest
import torch

from nocollapse.data import (
    PRESETS,
    BatchAugment,
    augmentation_preset,
    make_augment,
    normalize,
    ops,
    preset_for_images,
    sample_crop_boxes,
)
from nocollapse.errors import ConfigError

# grid_sample's float32 coordinates are off by ~1e-6 of a pixel: far below one grey level
# (1/255 before normalisation), which is what these tolerances guard.
ATOL = 1e-4
IDENTITY = {"crop_scale": (1.0, 1.0), "flip_p": 0.0, "jitter_p": 0.0, "gray_p": 0.0,
            "blur_p": 0.0, "solarize_p": 0.0}


def _images(preset: str, n: int = 6, seed: int = 0) -> torch.Tensor:
    size, channels = PRESETS[preset]["size"], PRESETS[preset]["channels"]
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_views_have_preset_shape_dtype_and_normalised_range(preset: str) -> None:
    augment = make_augment(preset)
    x = _images(preset)
    view = augment(x, _gen(1))
    assert view.shape == x.shape and view.dtype == torch.float32
    mean, std = augment.mean, augment.std
    # Every op keeps pixels in [0, 1] before normalisation.
    assert (view >= (0 - mean) / std - 1e-5).all() and (view <= (1 - mean) / std + 1e-5).all()


@pytest.mark.parametrize("preset", list(PRESETS))
def test_same_seed_same_views_and_successive_views_differ(preset: str) -> None:
    augment, x = make_augment(preset), _images(preset)
    g1, g2 = _gen(7), _gen(7)
    first = augment(x, g1)
    assert torch.equal(first, augment(x, g2))
    assert not torch.allclose(first, augment(x, g1))  # the next draw is another view
    assert not torch.allclose(first, augment(x, _gen(8)))


def test_each_image_gets_its_own_parameters() -> None:
    x = _images("32x3", n=1).expand(16, -1, -1, -1).contiguous()  # 16 copies of one image
    view = make_augment("32x3")(x, _gen(0))
    distinct = {tuple(v.flatten()[:50].tolist()) for v in view}
    assert len(distinct) == 16


def test_normalize_maps_black_and_white_through_mean_and_std() -> None:
    for preset, options in PRESETS.items():
        c = options["channels"]
        x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, c, 3, 3)
        out = normalize(x, preset)
        mean = torch.tensor(options["mean"]).view(1, c, 1, 1)
        std = torch.tensor(options["std"]).view(1, c, 1, 1)
        assert torch.allclose(out[0:1], (-mean / std).expand(1, c, 3, 3))
        assert torch.allclose(out[1:2], ((1 - mean) / std).expand(1, c, 3, 3))


def test_full_crop_without_other_ops_is_the_normalised_input() -> None:
    for preset in PRESETS:
        x = _images(preset)
        view = make_augment(preset, **IDENTITY)(x, _gen(0))
        assert torch.allclose(view, normalize(x, preset), atol=ATOL), preset


def test_flip_mirrors_every_image() -> None:
    x = _images("32x3")
    view = make_augment("32x3", **{**IDENTITY, "flip_p": 1.0})(x, _gen(0))
    assert torch.allclose(view, normalize(x, "32x3").flip(-1), atol=ATOL)


def test_flip_probability_flips_about_half() -> None:
    x = _images("28x1", n=400)
    view = make_augment("28x1", **{**IDENTITY, "flip_p": 0.5})(x, _gen(3))
    flipped = torch.isclose(view, normalize(x, "28x1").flip(-1), atol=1e-5).flatten(1).all(1)
    assert 150 < int(flipped.sum()) < 250


def test_crop_box_resizes_that_region() -> None:
    x = torch.rand(2, 3, 16, 16)
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [8.0, 4.0, 8.0, 8.0]])
    out = ops.crop_flip_resize(x, boxes, torch.tensor([False, True]), 8)
    assert torch.allclose(out[0], x[0, :, :8, :8], atol=1e-5)
    assert torch.allclose(out[1], x[1, :, 4:12, 8:].flip(-1), atol=1e-5)


def test_crop_boxes_lie_inside_the_image_with_area_in_scale() -> None:
    boxes = sample_crop_boxes(500, 20, 30, (0.2, 0.6), (3 / 4, 4 / 3), _gen(0))
    x0, y0, w, h = boxes.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all()
    assert (x0 + w <= 30 + 1e-4).all() and (y0 + h <= 20 + 1e-4).all()
    share = w * h / 600
    assert (share >= 0.2 - 1e-5).all() and (share <= 0.6 + 1e-5).all()
    ratio = w / h
    assert (ratio >= 3 / 4 - 1e-5).all() and (ratio <= 4 / 3 + 1e-5).all()


def test_grayscale_always_gives_equal_channels() -> None:
    x = _images("32x3")
    view = make_augment("32x3", **{**IDENTITY, "gray_p": 1.0}, mean=(0, 0, 0), std=(1, 1, 1))(
        x, _gen(0))
    assert torch.allclose(view[:, 0], view[:, 1]) and torch.allclose(view[:, 1], view[:, 2])


def test_solarize_inverts_bright_pixels() -> None:
    x = _images("28x1")
    view = make_augment("28x1", **{**IDENTITY, "solarize_p": 1.0}, mean=(0,), std=(1,))(
        x, _gen(0))
    raw = x.float() / 255
    assert torch.allclose(view, torch.where(raw >= 0.5, 1 - raw, raw), atol=ATOL)


def test_erasing_zeroes_one_rectangle_per_image_with_area_in_scale() -> None:
    x = torch.full((64, 3, 32, 32), 200, dtype=torch.uint8)
    augment = make_augment("32x3", **IDENTITY, erase_p=1.0, erase_scale=(0.1, 0.2),
                           mean=(0.5,) * 3, std=(1.0,) * 3)
    view = augment(x, _gen(0))
    erased = view == 0.0  # 200/255 - 0.5 elsewhere
    assert torch.equal(erased, erased[:, :1].expand_as(erased))  # every channel alike
    area = erased[:, 0].float().mean(dim=(1, 2))
    assert bool((area > 0.1 - 0.05).all()) and bool((area < 0.2 + 0.05).all())
    for mask in erased[:, 0]:  # a filled rectangle: its bounding box is all erased
        rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
        box = mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert bool(box.all())
    kept = make_augment("32x3", **IDENTITY, erase_p=0.5, mean=(0.5,) * 3,
                        std=(1.0,) * 3)(x, _gen(1))
    untouched = (kept != 0.0).all(dim=(1, 2, 3)).float().mean()
    assert 0.3 < float(untouched) < 0.7


def test_hue_rotation_by_a_third_turns_red_into_green_and_zero_is_identity() -> None:
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 0.8
    green = ops.adjust_hue(red, torch.tensor([1 / 3]))
    assert torch.allclose(green[0, :, 0, 0], torch.tensor([0.0, 0.8, 0.0]), atol=1e-5)
    x = torch.rand(4, 3, 5, 5)
    assert torch.allclose(ops.adjust_hue(x, torch.zeros(4)), x, atol=1e-5)


def test_hue_shift_equals_the_hsv_round_trip() -> None:
    kornia = pytest.importorskip("kornia")
    x = torch.rand(8, 3, 9, 9, generator=_gen(4))
    x[0] = 0.5  # gray: hue undefined, must stay gray
    shift = torch.linspace(-0.5, 0.5, 8)
    expected = kornia.enhance.adjust_hue(x, shift * 2 * torch.pi)
    assert torch.allclose(ops.adjust_hue(x, shift), expected, atol=1e-5)


def test_saturation_zero_is_grayscale_and_contrast_zero_is_the_mean() -> None:
    x = torch.rand(3, 3, 6, 6)
    gray = ops.adjust_saturation(x, torch.zeros(3))
    assert torch.allclose(gray, ops.grayscale(x).expand_as(x), atol=1e-6)
    flat = ops.adjust_contrast(x, torch.zeros(3))
    assert torch.allclose(flat, ops.grayscale(x).mean((1, 2, 3), keepdim=True).expand_as(x))


def test_jitter_changes_pixels_only_for_some_images() -> None:
    x = _images("32x3", n=200)
    view = make_augment("32x3", **{**IDENTITY, "jitter_p": 0.5})(x, _gen(2))
    same = torch.isclose(view, normalize(x, "32x3"), atol=1e-4).flatten(1).all(1)
    assert 60 < int(same.sum()) < 140


def test_blur_keeps_constant_images_and_smooths_noise() -> None:
    const = torch.full((2, 3, 12, 12), 0.3)
    sigma = torch.tensor([0.5, 2.0])
    assert torch.allclose(ops.gaussian_blur(const, sigma, 5), const, atol=1e-6)
    noise = torch.rand(2, 3, 12, 12, generator=_gen(0))
    blurred = ops.gaussian_blur(noise, sigma, 5)
    assert blurred.std() < noise.std() and blurred[1].std() < blurred[0].std()


def test_blur_and_solarize_equal_kornias_own_functions() -> None:
    # ops builds the blur kernels itself and solarizes with a where (kornia's own
    # functions each copy a value between host and device every call); same results.
    from kornia.enhance import solarize as kornia_solarize
    from kornia.filters import gaussian_blur2d

    images = torch.rand(4, 3, 16, 16, generator=_gen(3))
    sigma = torch.tensor([0.1, 0.7, 1.3, 2.0])
    for size in (3, 5, 9):
        ours = ops.gaussian_blur(images, sigma, size)
        theirs = gaussian_blur2d(images, size, sigma.view(-1, 1).expand(-1, 2))
        assert torch.allclose(ours, theirs, atol=1e-6)
    assert torch.equal(ops.solarize(images, 0.5), kornia_solarize(images, 0.5))


def test_bad_options_and_inputs_are_refused_with_the_value() -> None:
    with pytest.raises(ConfigError, match=r"flip_p=1\.5"):
        BatchAugment(32, 3, flip_p=1.5)
    with pytest.raises(ConfigError, match="crop_scale"):
        BatchAugment(32, 3, crop_scale=(0.9, 0.2))
    with pytest.raises(ConfigError, match="erase_scale"):
        BatchAugment(32, 3, erase_scale=(0.5, 0.1))
    with pytest.raises(ConfigError, match=r"erase_p=2"):
        BatchAugment(32, 3, erase_p=2)
    with pytest.raises(ConfigError, match="blur_kernel=4"):
        BatchAugment(32, 3, blur_kernel=4)
    with pytest.raises(ConfigError, match="uint8"):
        make_augment("32x3")(torch.rand(2, 3, 32, 32))
    with pytest.raises(ConfigError, match="valid choices"):
        make_augment("64x3")


def test_presets_follow_the_data_set_geometry() -> None:
    assert augmentation_preset("fashion-mnist") == "28x1"
    assert augmentation_preset("cifar100") == "32x3"
    assert augmentation_preset("stl10") == "96x3"
    assert augmentation_preset("digits") == "8x1"
    for preset in PRESETS:
        assert preset_for_images(_images(preset, n=1)) == preset


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_views_match_cpu_views() -> None:
    augment, x = make_augment("96x3"), _images("96x3")
    cpu = augment(x, _gen(5))
    gpu = augment.to("cuda")(x.cuda(), _gen(5))
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)


@pytest.mark.parametrize("preset", ["32x3", "96x3"])
def test_whole_batch_path_gives_the_views_of_the_subset_path(
        preset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # On an accelerator the jitter/blur/solarize subsets are taken with torch.where over
    # the whole batch (no host sync); on CPU with indexing. Same generator, same views.
    from nocollapse.data import augment as augment_module

    x = _images(preset, n=16)
    options = {"blur_p": 0.5, "solarize_p": 0.3} if preset == "32x3" else {}
    subset = make_augment(preset, **options)(x.clone(), _gen(5))
    original = augment_module._on_subset

    def whole(x: torch.Tensor, mask: torch.Tensor, fn, whole_batch=None) -> torch.Tensor:
        return original(x, mask, fn, whole_batch=True)

    monkeypatch.setattr(augment_module, "_on_subset", whole)
    everything = make_augment(preset, **options)(x.clone(), _gen(5))
    assert torch.allclose(subset, everything, atol=ATOL)
