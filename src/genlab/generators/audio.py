"""A GAN, VAE or diffusion model trained on log-mel spectrograms, as a Generator of sound.

The family code is the image families' own (``families/gan.py``, ``vae.py``, ``diffusion.py``):
a spectrogram is a one-channel picture. This wrapper adds the codec's second half: the sampled
spectrogram becomes a waveform by Griffin-Lim (``codecs/audio.py``), and the waveform a WAV
artifact with provenance.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from genlab.codecs.audio import MelCodec
from genlab.core import AudioArtifact, GenerationRequest, InvalidRequestError, ModelLoadError
from genlab.generators.image import ImageModel

#: Griffin-Lim iterations when a request names none: past ~32 the measured spectral convergence
#: of real clips barely improves (bench/audio_families.py).
DEFAULT_ITERATIONS = 32


class AudioModel(ImageModel):
    """Generate spoken clips (or any trained sound class) from a family trained on spectrograms."""

    codec: MelCodec

    def read_codec(self, codec: dict[str, Any], where: Path) -> None:
        if not codec:
            raise ModelLoadError(f"{where} lacks the audio codec")
        self.codec = MelCodec.from_dict(codec)

    def generate(
        self,
        request: GenerationRequest | str | None = None,
        progress: Callable[[int, int], None] | None = None,
        **kwargs: Any,
    ) -> list[AudioArtifact]:
        iterations = kwargs.pop("iterations", None)
        iterations = DEFAULT_ITERATIONS if iterations is None else iterations
        if not isinstance(iterations, int) or isinstance(iterations, bool) or not 1 <= iterations <= 1000:
            raise InvalidRequestError(
                f"iterations must be an integer from 1 to 1000, got {iterations!r}", param="iterations"
            )
        options, labels, seeds = self.plan(request, kwargs)
        with torch.no_grad():
            mels = self.sample(labels, seeds, progress=progress, **options)
            waves = self.codec.decode(mels, iterations=iterations).numpy()
        from genlab.safety.watermark import SCHEME, embed_audio, watermark_key

        key = watermark_key()
        artifacts = []
        for i, seed in enumerate(seeds):
            label = self.classes[labels[i]] if labels is not None else None
            samples, marked = embed_audio(waves[i], self.codec.sample_rate, key)
            artifacts.append(
                AudioArtifact.create(
                    samples,
                    self.codec.sample_rate,
                    watermark=SCHEME if marked else None,
                    label=label,
                    model=self.card.name,
                    family=self.card.family,
                    seed=seed,
                    parameters={"class": label, **options, "griffin_lim_iterations": iterations},
                )
            )
        return artifacts
