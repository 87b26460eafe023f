"""The `genlab` command in real subprocesses: output people read, JSON scripts parse, and one
clear line (never a traceback) for every mistake a user can make."""

import json

import pytest

from ..conftest import EMBEDDED, assert_clean_error, genlab_cli


@pytest.fixture()
def home(tmp_path, session_home):
    """A fresh GENLAB_HOME that reuses the session's assembled GGUF."""
    h = tmp_path / "home"
    (h / "cache").mkdir(parents=True)
    for f in (session_home / "cache").glob("*"):
        (h / "cache" / f.name).symlink_to(f)
    return h


def test_help_explains_the_commands(home):
    out = genlab_cli("--help", home=home)
    assert out.returncode == 0
    for command in ("models", "generate", "doctor", "demo"):
        assert command in out.stdout
    sub = genlab_cli("generate", "text", "--help", home=home)
    assert "--max-tokens" in sub.stdout and "--json-schema" in sub.stdout and "Example" in sub.stdout


def test_models_lists_the_embedded_model_as_table_and_json(home, gemma):
    table = genlab_cli("models", home=home)
    assert table.returncode == 0 and EMBEDDED in table.stdout and "transformer" in table.stdout
    listed = json.loads(genlab_cli("models", "--json", home=home).stdout)
    by_name = {m["name"]: m for m in listed}
    assert {EMBEDDED, "shakespeare-char"} <= set(by_name)  # the embedded LLM and the shipped models
    assert by_name[EMBEDDED]["kind"] == "embedded-gguf" and by_name[EMBEDDED]["licence"].startswith("Gemma")


def test_models_show_prints_the_card(home):
    out = genlab_cli("models", "show", EMBEDDED, home=home)
    assert out.returncode == 0
    assert "training data" in out.stdout and "reproduce" in out.stdout and "pip install" in out.stdout
    card = json.loads(genlab_cli("models", "show", EMBEDDED, "--json", home=home).stdout)
    assert card["family"] == "transformer"


def test_generate_text_streams_a_completion(home):
    out = genlab_cli(
        "generate", "text", "The capital of France is", "--max-tokens", "8", "--seed", "1", home=home
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    assert "Traceback" not in out.stderr


def test_generate_text_json_prints_artifacts_with_provenance(home):
    out = genlab_cli(
        "generate",
        "text",
        "1, 2, 3,",
        "--max-tokens",
        "6",
        "--seed",
        "3",
        "--n",
        "2",
        "--temperature",
        "0",
        "--json",
        home=home,
    )
    assert out.returncode == 0, out.stderr
    arts = json.loads(out.stdout)
    assert len(arts) == 2
    assert [a["provenance"]["seed"] for a in arts] == [3, 4]
    assert arts[0]["provenance"]["model"] == EMBEDDED and arts[0]["usage"]["completion_tokens"] == 6


def test_generate_text_reads_stdin_and_saves(home, tmp_path):
    target = tmp_path / "out.json"
    out = genlab_cli(
        "generate", "text", "-", "--max-tokens", "4", "--save", str(target), home=home, stdin="Hello"
    )
    assert out.returncode == 0, out.stderr
    saved = json.loads(target.read_text())
    assert saved["text"] and saved["provenance"]["sha256"]


def test_generate_with_grammar_file_and_schema(home, tmp_path):
    grammar = tmp_path / "yn.gbnf"
    grammar.write_text('root ::= " yes" | " no"\n')
    out = genlab_cli("generate", "text", "Is fire hot?", "--grammar", f"@{grammar}", "--json", home=home)
    assert json.loads(out.stdout)[0]["text"] in (" yes", " no")
    # bounded, so the object always closes within the token limit on any CPU (the engine enforces maximum)
    schema = '{"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 999}}, "required": ["n"]}'
    out = genlab_cli("generate", "text", "A number as JSON:", "--json-schema", schema, "--json", home=home)
    assert out.returncode == 0, out.stderr
    assert 0 <= json.loads(json.loads(out.stdout)[0]["text"])["n"] <= 999


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ["generate", "text", "--model", "gemma-3-27m", "hi"],
            ["unknown model", "did you mean: gemma-3-270m"],
        ),
        (["generate", "text", ""], ["prompt is empty"]),
        (["generate", "text", "hi", "--max-tokens", "0"], ["max_tokens"]),
        (["generate", "text", "hi", "--max-tokens", "100000"], ["do not fit the context"]),
        (["generate", "text", "hi", "--temperature", "-1"], ["temperature"]),
        (["generate", "text", "hi", "--grammar", "root ::= ("], ["grammar does not compile"]),
        (["generate", "text", "hi", "--json-schema", "{nope"], ["not valid json"]),
        (["generate", "text", "hi", "--grammar", "@/no/such/file.gbnf"], ["does not exist"]),
        (["generate", "text", "hi", "--max-tokens", "lots"], ["--max-tokens", "valid integer", "--help"]),
        (["generate", "text", "hi", "--no-such-option"], ["no such option"]),
        (["models", "show", "../../etc"], ["unknown model"]),
        (["models", "remove", EMBEDDED], ["built in"]),
        (["models", "add", "x"], ["exactly one of --gguf"]),
        (["models", "add", "x", "--gguf", "/no/such.gguf"], ["no such file"]),
        (["models", "add", "x", "--openai-url", "http://127.0.0.1:9/v1"], ["--remote-model"]),
        (["models", "add", "x", "--openai-url", "nope", "--remote-model", "m"], ["not an http"]),
    ],
)
def test_user_mistakes_give_one_clear_line(home, args, needles):
    assert_clean_error(genlab_cli(*args, home=home), *needles)


def test_add_not_gguf_and_bad_sha(home, tmp_path, gemma_gguf):
    fake = tmp_path / "model.gguf"
    fake.write_text("definitely not a model")
    assert_clean_error(genlab_cli("models", "add", "x", "--gguf", str(fake), home=home), "not a gguf file")
    bad = genlab_cli("models", "add", "x", "--gguf", str(gemma_gguf), "--sha256", "ab" * 32, home=home)
    assert_clean_error(bad, "sha256", "was expected")
    names = [m["name"] for m in json.loads(genlab_cli("models", "--json", home=home).stdout)]
    assert EMBEDDED in names and "x" not in names  # nothing half-added


def test_add_generate_remove_a_user_gguf(home, gemma_gguf):
    added = genlab_cli(
        "models", "add", "mine", "--gguf", str(gemma_gguf), "--n-ctx", "256", "--json", home=home
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["context_length"] == 256
    out = genlab_cli("generate", "text", "Hello", "-m", "mine", "--max-tokens", "300", home=home)
    assert_clean_error(out, "context of 256")
    assert (
        genlab_cli("generate", "text", "Hello", "-m", "mine", "--max-tokens", "3", home=home).returncode == 0
    )
    assert genlab_cli("models", "remove", "mine", home=home).returncode == 0
    assert_clean_error(genlab_cli("models", "show", "mine", home=home), "unknown model")


def test_doctor_reports_versions_home_and_models(home):
    out = genlab_cli("doctor", "--json", home=home)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["genlab_home"] == str(home) and report["genlab_home_writable"]
    assert report["packages"]["llama-cpp-python"]
    assert {"espeak-ng", "chromium", "pg_ctl"} <= set(report["system"])
    assert {"name": EMBEDDED, "backend": "llamacpp", "status": "ok"} in report["models"]
    assert all(m["status"] == "ok" for m in report["models"])
    settings = {row["variable"]: row for row in report["settings"]}
    assert settings["GENLAB_HOME"]["value"] == str(home) and settings["GENLAB_QUEUE_LIMIT"]["help"]


def test_doctor_fails_when_a_model_does_not_load(home, gemma_gguf, tmp_path):
    import shutil

    copy = tmp_path / "copy.gguf"
    shutil.copyfile(gemma_gguf, copy)
    assert genlab_cli("models", "add", "fragile", "--gguf", str(copy), home=home).returncode == 0
    copy.unlink()
    out = genlab_cli("doctor", home=home)
    assert out.returncode == 1
    assert "fragile" in out.stdout and "no such file" in out.stdout


def test_demo_shows_card_and_streams(home):
    out = genlab_cli("demo", "--max-tokens", "12", home=home)
    assert out.returncode == 0, out.stderr
    assert "model card" in out.stdout and "Gemma Terms of Use" in out.stdout
    assert "tokens/s" in out.stdout


def test_version(home):
    out = genlab_cli("--version", home=home)
    assert out.returncode == 0 and out.stdout.strip() == "0.1.0"


def test_a_json_object_cut_by_the_token_limit_is_an_error_not_json(home):
    schema = '{"type": "object", "properties": {"name": {"type": "string", "minLength": 40}}, "required": ["name"]}'
    out = genlab_cli(
        "generate", "text", "A person as JSON:", "--json-schema", schema, "--max-tokens", "3", home=home
    )
    assert_clean_error(out, "cut at --max-tokens 3", "maxLength")
    assert out.stdout.startswith("{")  # the prefix is still shown
    unsupported = genlab_cli(
        "generate", "text", "x", "--json-schema", '{"type": "array", "uniqueItems": true}', home=home
    )
    assert_clean_error(unsupported, "uniqueItems")
    assert_clean_error(genlab_cli("generate", "text", "x", "--regex", "((", home=home), "regular expression")


def test_threads_are_one_setting_and_doctor_shows_them(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    out = genlab_cli("--threads", "1", "doctor", "--json", "--no-load", home=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["threads"] == 1 and report["omp_wait_policy"] == "PASSIVE"  # threads wait, not spin
    default = json.loads(genlab_cli("doctor", "--json", "--no-load", home=tmp_path).stdout)
    assert 1 <= default["threads"] <= (default["cpu_count"] or 1)
    assert_clean_error(genlab_cli("--threads", "0", "models", home=tmp_path), "--threads must be at least 1")
    monkeypatch.setenv("GENLAB_THREADS", "many")
    assert_clean_error(genlab_cli("models", home=tmp_path), "GENLAB_THREADS must be an integer")


@pytest.mark.parametrize("args", [(), ("generate",), ("review",)])
def test_a_bare_command_prints_its_help_once(tmp_path, args):
    out = genlab_cli(*args, home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("Usage: genlab") == 1 and "Traceback" not in out.stderr


def test_a_busy_port_is_one_line_naming_the_port_option(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = genlab_cli("serve", "--port", str(port), home=tmp_path, timeout=60)
    assert_clean_error(out, f"127.0.0.1:{port}", "--port")
    assert "genlab studio at" not in out.stdout  # no banner for a server that never started


def test_doctor_warns_about_an_unreachable_remote_model_but_passes(tmp_path):
    """The README's tour adds a remote model whose server is not running: doctor still passes."""
    home = tmp_path / "home"
    added = genlab_cli(
        "models",
        "add",
        "big",
        "--openai-url",
        "http://127.0.0.1:9/v1",
        "--remote-model",
        "Qwen/Qwen2.5-7B",
        "--api-key-env",
        "VLLM_KEY",
        home=home,
    )
    assert added.returncode == 0, added.stderr
    out = genlab_cli("doctor", "--json", home=home)
    assert out.returncode == 0, out.stdout
    big = next(m for m in json.loads(out.stdout)["models"] if m["name"] == "big")
    assert big["status"] == "unavailable" and "VLLM_KEY" in big["error"]
    shown = genlab_cli("doctor", home=home)
    assert shown.returncode == 0 and "unavailable (a warning)" in shown.stdout


def test_chat_in_the_terminal_keeps_history_and_takes_commands(home):
    script = "Hello!\n/system Answer in one word.\nWhat colour is the sky?\n/reset\n/nope\n"
    out = genlab_cli("chat", "--max-tokens", "16", "--seed", "1", home=home, stdin=script)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("smollm2-135m-instruct>") == 2  # two answers, each streamed
    assert "system prompt set" in out.stderr and "conversation forgotten" in out.stderr
    assert "unknown command /nope" in out.stderr
    assert_clean_error(genlab_cli("chat", "--model", "gan-digits", home=home, stdin="hi\n"), "makes images")


def test_models_add_takes_a_chat_template(home, gemma_gguf, tmp_path):
    out = genlab_cli(
        "models",
        "add",
        "gemma-chatml",
        "--gguf",
        str(gemma_gguf),
        "--chat-template",
        "chatml",
        "--json",
        home=home,
    )
    assert out.returncode == 0, out.stderr
    assert "--chat-template" in json.loads(out.stdout)["chat"]
    bad = tmp_path / "bad.jinja"
    bad.write_text("{% for m in messages %}{{ m['content'] + 1 }}{% endfor %}")
    assert_clean_error(
        genlab_cli("models", "add", "g2", "--gguf", str(gemma_gguf), "--chat-template", str(bad), home=home),
        "chat template does not render",
    )
    assert_clean_error(
        genlab_cli("models", "add", "g3", "--gguf", str(gemma_gguf), "--chat-template", "nope", home=home),
        "chatml, llama-3, gemma",
    )


def test_speak_then_transcribe_from_the_command_line(home, tmp_path):
    wav = tmp_path / "order.wav"
    said = genlab_cli(
        "generate",
        "audio",
        "--model",
        "piper-joe",
        "--prompt",
        "Your order has shipped.",
        "--out",
        str(wav),
        home=home,
    )
    assert said.returncode == 0, said.stderr
    heard = genlab_cli("transcribe", str(wav), home=home)
    assert heard.returncode == 0 and "order" in heard.stdout.lower()
    srt = genlab_cli("transcribe", str(wav), "--format", "srt", home=home)
    assert srt.stdout.startswith("1\n00:00:00,000 -->")
    assert_clean_error(genlab_cli("transcribe", str(wav), "--format", "docx", home=home), "--format must be")
    assert_clean_error(genlab_cli("transcribe", str(tmp_path / "none.wav"), home=home), "no such file")
