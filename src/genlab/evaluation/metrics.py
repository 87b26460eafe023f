"""Sample-quality metrics over classifier features, as the image-generation literature reports them.

- **FID** (Heusel et al., 2017): the Fréchet distance between Gaussians fitted to real and generated
  features, ‖μ_r - μ_g‖² + Tr(Σ_r + Σ_g - 2 (Σ_r Σ_g)^½). Biased in the sample size: compare at equal
  sizes, and next to the real-data floor (held-out real vs training real).
- **KID** (Bińkowski et al., 2018): the unbiased squared MMD with the cubic polynomial kernel
  k(a, b) = (a·b / d + 1)³, averaged over random subsets; unbiased, so usable at small sizes.
- **Precision and recall** (Kynkäänniemi et al., 2019): a k-NN ball around every real feature (radius:
  distance to its k-th nearest real neighbour) approximates the real manifold; precision is the share
  of generated samples inside it (fidelity), recall the share of real samples inside the generated
  manifold built the same way (coverage).
- **Inception score** (Salimans et al., 2016): exp(E_x KL(p(y|x) ‖ p(y))) under the dataset classifier,
  high when each sample is confidently one class and the classes are evenly covered; at most the
  number of classes. SC09 papers (WaveGAN, DiffWave) report it with a digit classifier, as here.
- **Class accuracy**: how often the shipped classifier assigns a conditional sample the class it was
  asked for.
"""

from __future__ import annotations

import numpy as np
import torch


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    from scipy import linalg

    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():  # near-singular product: regularise (as pytorch-fid does)
        offset = np.eye(len(s1)) * 1e-6
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def kid(
    real: np.ndarray, fake: np.ndarray, *, subsets: int = 50, subset_size: int = 100, seed: int = 0
) -> float:
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    m = min(subset_size, len(real), len(fake))
    d = real.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        mmd = (
            (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
            + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean()
        )
        values.append(mmd)
    return float(np.mean(values))


def _knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point (k shrinks for sets of k points or fewer)."""
    if len(x) < 2:
        return torch.full((len(x),), float("inf"))
    d = torch.cdist(x, x)
    return d.kthvalue(min(k, len(x) - 1) + 1, dim=1).values  # +1: a point is its own nearest neighbour


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = 3) -> tuple[float, float]:
    r = torch.as_tensor(np.asarray(real), dtype=torch.float32)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float32)
    r_radii, f_radii = _knn_radii(r, k), _knn_radii(f, k)
    precision = (torch.cdist(f, r) <= r_radii[None, :]).any(dim=1).float().mean()
    recall = (torch.cdist(r, f) <= f_radii[None, :]).any(dim=1).float().mean()
    return float(precision), float(recall)


def distribution_metrics(real: np.ndarray, fake: np.ndarray, *, k: int = 3) -> dict[str, float]:
    precision, recall = precision_recall(real, fake, k=k)
    return {"fid": fid(real, fake), "kid": kid(real, fake), "precision": precision, "recall": recall}


def inception_score(probabilities: np.ndarray) -> float:
    """exp(mean KL(p(y|x) || p(y))) over the rows of a (N, classes) probability matrix."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)
    marginal = p.mean(axis=0, keepdims=True)
    return float(np.exp((p * (np.log(p) - np.log(marginal))).sum(axis=1).mean()))
