"""Reference loops for the output metrics, written straight from eqs. 8–10: answer pairs, Rank-ρ, NTR and JSD."""
import math

import numpy as np
from scipy.stats import spearmanr


def ref_pairs(unk_answers, held_answers):
    """(unknown, held) index pairs whose answers agree, case- and space-insensitively."""
    return [(u, h) for u in range(len(unk_answers)) for h in range(len(held_answers))
            if unk_answers[u].casefold().strip() == held_answers[h].casefold().strip()]


def ref_output_metrics(z_unk, z_held, z0_held, pairs, k, log_base=math.e):
    """Rank-ρ, NTR and JSD straight from eqs. 8–10 with full-vocabulary logits."""
    rhos, ntrs, jsds = [], [], []
    for u, h in pairs:
        top0 = np.argsort(-z0_held[h])[:k]  # I
        rho = spearmanr(z_unk[u][top0], z0_held[h][top0]).statistic
        rhos.append(rho)
        top_u = set(np.argsort(-z_unk[u])[:k])
        top_h = set(np.argsort(-z_held[h])[:k])
        ntrs.append(len(top_u & top_h) / k)
        p = np.exp(z_unk[u][top0] - z_unk[u][top0].max())
        p /= p.sum()
        q = np.exp(z0_held[h][top0] - z0_held[h][top0].max())
        q /= q.sum()
        m = (p + q) / 2
        kl = lambda a, b: sum(a[j] * math.log(a[j] / b[j]) for j in range(len(a)) if a[j] > 0)  # noqa: E731
        jsds.append((0.5 * kl(p, m) + 0.5 * kl(q, m)) / math.log(log_base))
    return float(np.nanmean(rhos)), float(np.mean(ntrs)), float(np.mean(jsds))
