"""The audio codec (log-mel <-> waveform), WAV reading, the spoken-digits dataset and audio folders."""

import numpy as np
import pytest
import soundfile
import torch

from genlab.codecs.audio import MelCodec, mel_filterbank, read_audio, spectral_convergence
from genlab.codecs.image import resolve_class
from genlab.core import InvalidRequestError
from genlab.core.settings import Settings
from genlab.data.audio import Clip, load_audio_folder, load_spoken_digits, synthesise
from genlab.data.datasets import load_image_dataset

CODEC = MelCodec()


def tone(freq: float, seconds: float = 0.5, rate: int = 16000, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t) * np.hanning(len(t))).astype(np.float32)


def test_codec_shapes_and_range():
    wave = CODEC.fit(tone(440))
    assert wave.shape == (16000,) and abs(np.abs(wave).max() - 0.9) < 1e-6
    x = CODEC.encode(wave)
    assert x.shape == (1, 1, 32, 32) and x.min() >= -1 and x.max() <= 1
    # a 440 Hz tone lights the mel band that holds 440 Hz, not the top of the spectrum
    band = x[0, 0].mean(1).argmax().item()
    edges = mel_filterbank(16000, 1024, 32, CODEC.f_min, CODEC.f_max)
    freqs = torch.linspace(0, 8000, 513)
    assert abs(float(freqs[edges[band].argmax()]) - 440) < 120


def test_codec_refuses_a_non_square_spectrogram():
    with pytest.raises(InvalidRequestError, match="square"):
        MelCodec(hop=300)


def test_griffin_lim_round_trip_recovers_a_harmonic_sound():
    t = np.arange(8000) / 16000
    voiced = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 12)) * np.hanning(8000)
    wave = CODEC.fit(voiced.astype(np.float32))
    back = CODEC.decode(CODEC.encode(wave), iterations=32)[0]
    assert back.shape == (16000,)
    once = CODEC.decode(CODEC.encode(wave), iterations=1)[0]
    sc32, sc1 = (spectral_convergence(wave, w.numpy(), CODEC) for w in (back, once))
    assert sc32 < sc1  # iterating makes the phase consistent with the magnitudes
    # and the spectrogram of what comes back is close to the one that went in
    assert (CODEC.encode(back.numpy()) - CODEC.encode(wave)).abs().mean() < 0.1
    assert torch.equal(back, CODEC.decode(CODEC.encode(wave), iterations=32)[0])  # deterministic


def test_read_audio_downmixes_and_resamples(tmp_path):
    left = tone(300, seconds=1.0, rate=44100)
    stereo = np.stack([left, -left * 0.0], axis=1)
    soundfile.write(tmp_path / "s.wav", stereo, 44100)
    wave = read_audio(tmp_path / "s.wav", 16000)
    assert wave.ndim == 1 and abs(len(wave) - 16000) <= 1
    assert abs(np.abs(wave).max() - 0.25) < 0.02  # the mean of the two channels


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEjunk", b"hello"])
def test_unreadable_audio_is_one_clear_error(tmp_path, content):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(InvalidRequestError, match="not a readable audio file"):
        read_audio(path, 16000)


def test_an_empty_wav_is_refused(tmp_path):
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(InvalidRequestError, match="no audio samples"):
        read_audio(tmp_path / "empty.wav", 16000)


def test_prompts_that_say_a_digit():
    classes = [str(i) for i in range(10)]
    for prompt in ("7", "seven", "say seven", "Say 7", "speak seven", "the word seven"):
        assert resolve_class(prompt, classes) == 7, prompt
    with pytest.raises(InvalidRequestError, match="'say eleven'"):
        resolve_class("say eleven", classes)


def write_tone_folder(root, *, rates=(16000,), per_class=6, channels=1):
    """Three classes of tones (low, mid, high pitch), in varied rates and channel counts."""
    for name, freq in (("low", 200.0), ("mid", 800.0), ("high", 2500.0)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            rate = rates[i % len(rates)]
            wave = tone(freq * (1 + 0.03 * i), seconds=0.4 + 0.05 * i, rate=rate)
            data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
            soundfile.write(root / name / f"{i}.wav", data, rate)
    return root


def test_audio_folder_with_classes(tmp_path, capsys):
    folder = write_tone_folder(tmp_path / "tones", rates=(16000, 22050, 8000), channels=2)
    data = load_image_dataset(str(folder), Settings(home=tmp_path / "home"))
    assert data.modality == "audio" and data.codec == CODEC.to_dict()
    assert data.class_names == ["high", "low", "mid"]
    assert data.train.shape[1:] == (1, 32, 32) and len(data.train) + len(data.val) == 18
    assert "resampled and downmixed" in capsys.readouterr().err
    # the classes differ where they should: the high tones' energy sits in higher mel bands
    high = data.train[data.train_labels == 0].mean(0)[0].mean(1).argmax()
    low = data.train[data.train_labels == 1].mean(0)[0].mean(1).argmax()
    assert high > low


def test_audio_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "a" / "x.wav").write_bytes(b"")
    with pytest.raises(InvalidRequestError, match="at least 4"):
        load_audio_folder(empty)
    silent = tmp_path / "silent"
    silent.mkdir()
    for i in range(4):
        soundfile.write(silent / f"{i}.wav", np.zeros(8000, np.float32), 16000)
    with pytest.raises(InvalidRequestError, match="is silent"):
        load_audio_folder(silent)
    broken = write_tone_folder(tmp_path / "broken")
    (broken / "low" / "zz.wav").write_bytes(b"not audio at all")
    with pytest.raises(InvalidRequestError, match=r"zz\.wav is not a readable audio file"):
        load_audio_folder(broken)


def test_espeak_clips_are_deterministic_speech():
    clip = Clip(digit=7, voice="en-us", variant="m3", pitch=50, rate=160)
    a, b = synthesise(clip, CODEC), synthesise(clip, CODEC)
    assert np.array_equal(a, b) and a.shape == (16000,)
    spoken = np.flatnonzero(np.abs(a) > 0.01)
    assert 0.2 < (spoken[-1] - spoken[0]) / 16000 < 1.0  # "seven" lasts a fraction of a second


@pytest.mark.slow
def test_spoken_digits_split_voices_and_cache(tmp_path):
    settings = Settings(home=tmp_path)
    data = load_spoken_digits(settings, variants=8)
    assert data.modality == "audio" and data.class_names == [str(i) for i in range(10)]
    m = data.manifest()
    assert not set(m["variants_train"]) & set(m["variants_val"]) and m["variants_val"]
    n_voices = len(m["voices"])
    assert len(data.train) + len(data.val) == n_voices * 8 * 10
    assert torch.bincount(data.train_labels).tolist() == [len(data.train) // 10] * 10
    assert len(list(settings.datasets_dir.glob("spoken-digits-*.safetensors"))) == 1
    again = load_spoken_digits(settings, variants=8)  # from the cache, identical
    assert torch.equal(again.train, data.train) and torch.equal(again.val_labels, data.val_labels)
    # different digits look different: the mean spectrograms of "zero" and "six" differ
    zero = data.train[data.train_labels == 0].mean(0)
    six = data.train[data.train_labels == 6].mean(0)
    assert (zero - six).abs().mean() > 0.05
