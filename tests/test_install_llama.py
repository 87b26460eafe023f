"""scripts/install_llama.py: the first install says what the llama.cpp compile is doing."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install_llama.py"
sys.path.insert(0, str(SCRIPT.parent))
import install_llama  # noqa: E402


def test_it_reads_the_pin_and_the_build_tools_progress():
    assert install_llama.pinned_version() == __import__("llama_cpp").__version__
    share, step = install_llama.progress("[12/150] Building C object vendor/ggml/src/ggml-cpu/ggml-cpu.c.o")
    assert share == 12 / 150 and install_llama.what(step) == "ggml-cpu.c"
    assert install_llama.progress("[ 45%] Building CXX object src/llama.cpp.o")[0] == 0.45
    assert install_llama.progress("Collecting numpy") is None


def test_an_installed_pin_is_not_rebuilt():
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "is installed" in out.stdout


def test_the_build_turns_amx_off_and_its_wheel_is_keyed_by_the_flags(monkeypatch):
    """llama.cpp's AMX kernels crash on Q4_K weights (Sapphire Rapids): the default build has none,
    and a wheel built with other CMAKE_ARGS is never handed back for these."""
    monkeypatch.delenv("CMAKE_ARGS", raising=False)
    assert "-mno-amx-int8" in install_llama.cmake_args() and "CMAKE_CXX_FLAGS" in install_llama.cmake_args()
    monkeypatch.setenv("CMAKE_ARGS", "-DGGML_NATIVE=OFF")
    assert install_llama.cmake_args() == "-DGGML_NATIVE=OFF"
    ours = install_llama.wheel_dir("0.3.36", install_llama.DEFAULT_CMAKE_ARGS)
    assert ours != install_llama.wheel_dir("0.3.36", "-DGGML_NATIVE=OFF")
    assert ours != install_llama.wheel_dir("0.3.37", install_llama.DEFAULT_CMAKE_ARGS)


def test_the_embedded_model_scores_a_whole_prompt(gemma):
    """A prompt of many tokens in one batch (the path AMX's matmul crashed on, in every
    logprobs and bits-per-character request): it runs, and gives finite figures."""
    bits = gemma.bits_per_char("To be, or not to be, that is the question: whether 'tis nobler in the mind.")
    assert 0 < bits < 8
