"""GAN, VAE and diffusion: trained (tiny) through the one Trainer, loaded from the registry, sampled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from genlab.core import ImageArtifact, InvalidRequestError, UnsupportedError, load_artifact
from genlab.core.settings import Settings
from genlab.data.images import load_digits
from genlab.evaluation.classifier import fid_scorer
from genlab.families.diffusion import Diffusion, DiffusionConfig
from genlab.families.gan import GAN, GANConfig
from genlab.families.vae import VAE, VAEConfig, discretized_logistic_log_prob
from genlab.registry import Registry
from genlab.training.image import train_image_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def image_home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One tiny model of each family (conditional, digits), trained once for this module."""
    settings = Settings(home=tmp_path_factory.mktemp("image-home"))
    for family in ("gan", "vae", "diffusion"):
        train_image_model(
            family, "digits", preset_name="tiny", settings=settings, progress=False, gan_scorer=fid_scorer
        )
    return settings


@pytest.fixture(scope="module")
def image_registry(image_home: Settings) -> Registry:
    return Registry(image_home)


@pytest.mark.parametrize("family", ["gan", "vae", "diffusion"])
def test_each_family_generates_the_asked_class_reproducibly(image_registry: Registry, family: str):
    model = image_registry.load(f"{family}-digits")
    assert model.card.family == family and model.card.modality == "image"
    assert model.supports_streaming is False
    images = (
        model.generate("seven", n=3, seed=11, steps=5)
        if family == "diffusion"
        else model.generate("seven", n=3, seed=11)
    )
    assert [a.label for a in images] == ["7", "7", "7"]
    assert all(isinstance(a, ImageArtifact) and a.pixels.shape == (16, 16) for a in images)
    assert [a.provenance.seed for a in images] == [11, 12, 13]
    # image i depends only on its own seed: generated alone it is the same picture
    kwargs = {"steps": 5} if family == "diffusion" else {}
    alone = model.generate("7", n=1, seed=12, **kwargs)[0]
    assert np.array_equal(alone.pixels, images[1].pixels)
    assert not np.array_equal(images[0].pixels, images[1].pixels)
    with pytest.raises(UnsupportedError):
        next(iter(model.stream("7")))


def test_images_carry_provenance_in_their_png(image_registry: Registry, tmp_path: Path):
    artifact = image_registry.load("vae-digits").generate("3", n=1, seed=5)[0]
    path = artifact.save(tmp_path / "three.png")
    loaded = load_artifact(path)
    assert loaded.provenance.model == "vae-digits" and loaded.provenance.family == "vae"
    assert loaded.provenance.parameters["class"] == "3"
    assert loaded.content_sha256() == artifact.sha256


def test_unconditioned_request_cycles_through_classes(image_registry: Registry):
    images = image_registry.load("gan-digits").generate(n=10, seed=0)
    assert sorted(a.label for a in images) == [str(i) for i in range(10)]


def test_bad_requests_are_refused_clearly(image_registry: Registry):
    diffusion = image_registry.load("diffusion-digits")
    with pytest.raises(InvalidRequestError, match=r"no class 'eleven'.*valid classes: 0, 1"):
        diffusion.generate("eleven")
    with pytest.raises(InvalidRequestError, match="steps must be a positive integer"):
        diffusion.generate("7", steps=0)
    with pytest.raises(InvalidRequestError, match="guidance must be a number >= 0"):
        diffusion.generate("7", guidance=-1.0)
    with pytest.raises(InvalidRequestError, match="unknown sampler"):
        diffusion.generate("7", sampler="euler")
    with pytest.raises(InvalidRequestError, match="apply to diffusion models"):
        image_registry.load("gan-digits").generate("7", steps=10)


def test_diffusion_samplers_and_guidance(image_registry: Registry):
    model = image_registry.load("diffusion-digits")
    ddim = [model.generate("4", n=1, seed=2, steps=4, sampler="ddim")[0].pixels for _ in range(2)]
    assert np.array_equal(*ddim)  # DDIM with η = 0 is deterministic given the initial noise
    dpm = model.generate("4", n=1, seed=2, steps=4, sampler="dpm++")[0].pixels
    ddpm = model.generate("4", n=1, seed=2, steps=4, sampler="ddpm")[0].pixels
    unguided = model.generate("4", n=1, seed=2, steps=4, guidance=0.0)[0].pixels
    assert not np.array_equal(ddim[0], dpm) and not np.array_equal(ddim[0], ddpm)
    assert not np.array_equal(ddim[0], unguided)


def test_trained_diffusion_folder_is_a_plain_diffusers_pipeline(tmp_path: Path):
    from diffusers import DDPMPipeline

    settings = Settings(home=tmp_path)
    train_image_model(
        "diffusion",
        "digits",
        name="uncond",
        conditional=False,
        preset_name="tiny",
        steps=20,
        settings=settings,
        progress=False,
    )
    entry = Registry(settings).get("uncond")
    snapshot = (entry.path / entry.config["weights"]).parent.parent
    assert (snapshot / "model_index.json").is_file()
    pipe = DDPMPipeline.from_pretrained(str(snapshot))
    out = pipe(
        batch_size=2, num_inference_steps=3, output_type="np", generator=torch.Generator().manual_seed(0)
    )
    assert out.images.shape == (2, 16, 16, 1)
    ours = Registry(settings).load("uncond")
    assert ours.generate(n=1, seed=0, steps=3)[0].label is None
    with pytest.raises(InvalidRequestError, match="unconditional"):
        ours.generate("7")


def test_vae_bounds_and_interpolation():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(size=16, num_classes=10, width=16, z_dim=4))
    data = load_digits()
    x, y = data.val[:4], data.val_labels[:4]
    # the discretised logistic is a distribution over the 256 levels: its masses sum to 1
    grid = torch.linspace(-1, 1, 256)
    mass = discretized_logistic_log_prob(grid, torch.tensor(0.1), torch.tensor(-1.0)).exp().sum()
    assert float(mass) == pytest.approx(1.0, abs=1e-3)
    with torch.no_grad():
        rec, kl = vae.elbo_terms(x, y)
    elbo_bpd = float(-(rec - kl).mean()) / (256 * np.log(2))
    iwae_bpd = vae.iwae_bits_per_dim(x, y, k=32)
    assert iwae_bpd < elbo_bpd + 0.5  # the IWAE bound is at least as tight as the ELBO (up to noise)
    frames = vae.interpolate(torch.zeros(4), torch.ones(4), steps=5, label=torch.tensor([3]))
    assert frames.shape == (5, 1, 16, 16)


def test_gan_objectives_and_phases_update_only_their_player():
    from genlab.training.image import ImageTask
    from genlab.training.trainer import TrainConfig, Trainer

    data = load_digits()
    for objective in ("hinge", "wgan-gp"):
        gan = GAN(GANConfig(size=16, num_classes=10, z_dim=8, width=16, objective=objective))
        batch = (data.train[:8], data.train_labels[:8])
        assert torch.isfinite(gan.loss(batch, "discriminator")) and torch.isfinite(
            gan.loss(batch, "generator")
        )
    gan = GAN(GANConfig(size=16, num_classes=10, z_dim=8, width=16))
    task = ImageTask(gan, data, gan_score=fid_scorer(data.name))
    phases = task.phases()
    assert [p.name for p in phases] == ["discriminator", "generator"]
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    trainer = Trainer(
        task,
        TrainConfig(steps=1, batch_size=8, eval_every=100, warmup_steps=0),
        Path("/nonexistent"),
        progress=False,
    )
    loss = trainer._phased_step(gan, 1e-3)
    assert np.isfinite(loss)
    changed = {k for k, v in gan.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("generator.") for k in changed) and any(
        k.startswith("discriminator.") for k in changed
    )
    assert trainer.optimizers.keys() == {"discriminator", "generator"}


def test_gan_resume_is_exact_with_two_optimisers_and_ema(tmp_path: Path):
    """A run resumed from its checkpoint makes the same updates as one never interrupted."""
    whole = Settings(home=tmp_path / "whole")
    parts = Settings(home=tmp_path / "parts")
    common = {
        "preset_name": "tiny",
        "progress": False,
        "overrides": {"eval_every": 10},
        "gan_scorer": fid_scorer,
    }
    train_image_model("gan", "digits", name="g", steps=20, settings=whole, **common)
    train_image_model("gan", "digits", name="g", steps=10, settings=parts, **common)
    train_image_model("gan", "digits", name="g", steps=20, settings=parts, resume=True, **common)
    from safetensors.torch import load_file

    a = load_file(str(next((whole.models_dir / "g" / "checkpoints").glob("step-*/ema.safetensors"))))
    b = load_file(str(next((parts.models_dir / "g" / "checkpoints").glob("step-*/ema.safetensors"))))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert (parts.models_dir / "g" / "checkpoints").glob("step-*/optimizer-generator.safetensors")


def test_family_configs_reject_bad_shapes():
    with pytest.raises(InvalidRequestError, match="multiple of 4"):
        GAN(GANConfig(size=10))
    with pytest.raises(InvalidRequestError, match="objective"):
        GAN(GANConfig(objective="minimax"))
    with pytest.raises(InvalidRequestError, match="halve"):
        Diffusion(DiffusionConfig(size=12, widths=[8, 8, 8, 8]))


def test_a_users_folder_trains_generates_by_class_name_and_gets_a_classifier(tmp_path: Path):
    from PIL import Image

    from genlab.evaluation.classifier import FeatureSpace, train_classifier

    rng = np.random.default_rng(0)
    for name, row in (("bars", slice(6, 10)), ("blank", slice(0, 0))):
        folder = tmp_path / "shapes" / name
        folder.mkdir(parents=True)
        for i in range(12):
            img = rng.integers(0, 30, (16, 16), dtype=np.uint8)
            img[row, :] = 255
            Image.fromarray(img).save(folder / f"{i}.png")
    settings = Settings(home=tmp_path / "home")
    train_image_model(
        "vae", str(tmp_path / "shapes"), preset_name="tiny", steps=20, settings=settings, progress=False
    )
    model = Registry(settings).load("vae-shapes")
    assert model.classes == ["bars", "blank"]
    assert [a.label for a in model.generate("bars", n=2, seed=0)] == ["bars", "bars"]
    from genlab.data.images import load_folder

    data = load_folder(tmp_path / "shapes")
    metrics = train_classifier(data, settings.home / "classifiers" / data.name, steps=30, progress=False)
    assert metrics["val_accuracy"] >= 0.5
    assert FeatureSpace("shapes", settings).name == "classifier-shapes"
    assert FeatureSpace("never-seen", settings).name == "pixels"


@pytest.mark.parametrize("family", ["gan", "vae", "diffusion"])
@pytest.mark.parametrize(("channels", "size"), [(1, 8), (3, 28)])
def test_every_family_handles_other_sizes_and_colour(family: str, channels: int, size: int):
    from genlab.families.build import build_family

    small = {
        "gan": {"width": 16, "z_dim": 8},
        "vae": {"width": 16, "z_dim": 4},
        "diffusion": {"widths": [8, 16], "attention": False},
    }[family]
    model = build_family(family, {"channels": channels, "size": size, "num_classes": 3, **small})
    x, y = torch.rand(4, channels, size, size) * 2 - 1, torch.tensor([0, 1, 2, 0])
    loss = model.loss((x, y), "generator") if family == "gan" else model.loss((x, y))
    assert torch.isfinite(loss)
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    out = model.sample(y[:2], gens, steps=2) if family == "diffusion" else model.sample(y[:2], gens)
    assert out.shape == (2, channels, size, size) and out.min() >= -1 and out.max() <= 1
