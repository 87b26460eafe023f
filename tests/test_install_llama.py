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
