"""Independent numpy float64 references of InfoCLIP's Eqs. 8-11 (written from the paper's equations, not from
the package), shared by the infoclip and renyi_info tests."""

from __future__ import annotations

import numpy as np


def ref_cosine_gram(samples: np.ndarray) -> np.ndarray:
    z = samples / np.linalg.norm(samples, axis=1, keepdims=True)
    return z @ z.T


def ref_grams(v, t, r, gram_over):
    """G_V, G_L (or None for shared text), G_R as numpy arrays, unnormalised."""
    b, hw, _ = v.shape
    if gram_over == "batch":
        kv = ref_cosine_gram(v.reshape(b, -1))
        kr = ref_cosine_gram(r.reshape(b, -1))
        kl = ref_cosine_gram(t.reshape(b, -1)) if t.ndim == 3 else np.ones((b, b))
    else:
        kv = ref_cosine_gram(v.reshape(b * hw, -1))
        kr = ref_cosine_gram(r.reshape(b * hw, -1))
        image_level = ref_cosine_gram(t.reshape(b, -1)) if t.ndim == 3 else np.ones((b, b))
        kl = np.kron(image_level, np.ones((hw, hw)))  # every token carries its image's classes
    return kv, kl, kr


def tr_norm(k):
    return k / np.trace(k)


def ref_lc_eq9(v, t, r, gram_over="batch"):
    """Eq. 9: L_c = -log2 ||G_R||_F^2 + log2 ||G_VLR||_F^2."""
    kv, kl, kr = ref_grams(v, t, r, gram_over)
    g_r = tr_norm(kr)
    g_vlr = tr_norm(tr_norm(kv) * tr_norm(kl) * g_r)
    return -np.log2(np.sum(g_r**2)) + np.log2(np.sum(g_vlr**2))


def ref_ld_eq11(rt, rs, gram_over="batch"):
    """Eq. 11: L_d = log2 ||G_T||^2 + log2 ||G_S||^2 - log2 ||G_TS||^2."""
    b, hw, _ = rt.shape
    shape = (b, -1) if gram_over == "batch" else (b * hw, -1)
    g_t = tr_norm(ref_cosine_gram(rt.reshape(shape)))
    g_s = tr_norm(ref_cosine_gram(rs.reshape(shape)))
    g_ts = tr_norm(g_t * g_s)
    return np.log2(np.sum(g_t**2)) + np.log2(np.sum(g_s**2)) - np.log2(np.sum(g_ts**2))


def ref_renyi_eig(k, alpha):
    """S_alpha in bits from the eigenvalues of K / tr K (Eq. 2); alpha = 1: von Neumann."""
    lam = np.linalg.eigvalsh(tr_norm(k))
    # Grams over tokens are rank-deficient (rank <= feature dim): their zero eigenvalues come out of
    # eigvalsh as +-1e-17 round-off, which alpha < 1 would amplify; the exact value drops them.
    lam = lam[lam > 1e-12 * lam.max()]
    if alpha == 1:
        return float(-(lam * np.log2(lam)).sum())
    return float(np.log2(np.sum(lam**alpha)) / (1 - alpha))


def ref_lc_eig(v, t, r, alpha, gram_over="batch"):
    """Eq. 8: S(G_R) - S(G_V, G_L, G_R) through eigenvalues."""
    kv, kl, kr = ref_grams(v, t, r, gram_over)
    return ref_renyi_eig(kr, alpha) - ref_renyi_eig(kv * kl * kr, alpha)


def ref_ld_eig(rt, rs, alpha, gram_over="batch"):
    b, hw, _ = rt.shape
    shape = (b, -1) if gram_over == "batch" else (b * hw, -1)
    kt, ks = ref_cosine_gram(rt.reshape(shape)), ref_cosine_gram(rs.reshape(shape))
    return -(ref_renyi_eig(kt, alpha) + ref_renyi_eig(ks, alpha) - ref_renyi_eig(kt * ks, alpha))
