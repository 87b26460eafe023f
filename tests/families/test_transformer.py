import pytest
import torch

from genlab.core import InvalidRequestError
from genlab.families.transformer import GPT, KVCache, TransformerConfig, apply_rope, rope_angles


def _model(positions="rope", **kw):
    torch.manual_seed(0)
    cfg = TransformerConfig(
        vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32, positions=positions, **kw
    )
    model = GPT(cfg).eval()
    with torch.no_grad():  # larger weights than the 0.02 init, so logits are far from uniform
        for p in model.parameters():
            p.mul_(10)
    return model


@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_kv_cache_gives_the_same_logits_as_full_recompute(positions):
    model = _model(positions)
    tokens = torch.randint(0, 50, (1, 12), generator=torch.Generator().manual_seed(1))
    full, _ = model(tokens, targets=tokens)  # (1, 12, V)
    cache = KVCache(model.config, 1, torch.device("cpu"), torch.float32)
    logits, _ = model(tokens[:, :5], cache=cache)
    torch.testing.assert_close(logits[0, -1], full[0, 4], rtol=1e-4, atol=1e-4)
    for t in range(5, 12):
        logits, _ = model(tokens[:, t : t + 1], cache=cache)
        torch.testing.assert_close(logits[0, -1], full[0, t], rtol=1e-4, atol=1e-4)


def test_cached_and_uncached_sampling_agree_within_the_window():
    model = _model()
    prompt = [1, 2, 3]
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = list(model.sample_tokens(prompt, 13, temperature=1.0, generator=g1, use_cache=True))
    b = list(model.sample_tokens(prompt, 13, temperature=1.0, generator=g2, use_cache=False))
    assert a == b and len(set(a)) > 1


def test_sampling_slides_past_the_block_size():
    model = _model()
    out = list(model.sample_tokens([1, 2], 40, temperature=1.0, generator=torch.Generator().manual_seed(0)))
    assert len(out) == 40


def test_greedy_top_k_1_and_top_p_tiny_agree():
    model = _model()
    greedy = list(model.sample_tokens([4, 5], 10, temperature=0))
    k1 = list(
        model.sample_tokens([4, 5], 10, temperature=1.0, top_k=1, generator=torch.Generator().manual_seed(3))
    )
    p0 = list(
        model.sample_tokens(
            [4, 5], 10, temperature=1.0, top_p=1e-6, generator=torch.Generator().manual_seed(9)
        )
    )
    assert greedy == k1 == p0


def test_rope_rotates_pairs_and_keeps_norms():
    cos, sin = rope_angles(8, 4, 10000.0)
    x = torch.randn(1, 1, 4, 8)
    y = apply_rope(x, cos, sin)
    torch.testing.assert_close(y[..., 0, :], x[..., 0, :])  # position 0: angle 0
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))  # rotations preserve length


def test_embedding_is_tied_and_loss_is_cross_entropy():
    model = _model()
    names = [n for n, _ in model.named_parameters()]
    assert not any("lm_head" in n for n in names)
    tokens = torch.randint(0, 50, (2, 8))
    _, loss = model(tokens, targets=tokens)
    assert loss.ndim == 0 and loss > 0


def test_bad_configs_are_refused():
    with pytest.raises(InvalidRequestError, match="divisible"):
        TransformerConfig(vocab_size=10, n_embd=30, n_head=4)
    with pytest.raises(InvalidRequestError, match="positions"):
        TransformerConfig(vocab_size=10, positions="alibi")
    model = _model()
    with pytest.raises(InvalidRequestError, match="exceeds block_size"):
        model(torch.zeros((1, 17), dtype=torch.long))
