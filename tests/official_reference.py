"""A slow, literal, loop-by-loop restatement of the official DCASE2023 and DCASE2024 Task 3 scorers.

It follows the official baselines' algorithm step by step — text parsing, per-frame dictionaries, 1 s segment
dictionaries, per-frame Hungarian matching, the final averages — with none of av-seld's vectorisation, so that the
tests can check ``av_seld.metrics`` against it on random and real label files. It is test code only.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment

EPS = np.finfo(float).eps


def load_rows(path, cm2m=False):
    """{frame: [[class, track, a, b(, c)(, distance)], ...]} the way the official loader reads a CSV."""
    out = {}
    words = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            words = line.strip().split(",")
            frame = int(words[0])
            out.setdefault(frame, [])
            if len(words) == 5:
                out[frame].append([int(words[1]), int(words[2]), float(words[3]), float(words[4])])
            elif len(words) == 6:  # reference with distance (cm), kept for 2024
                out[frame].append([int(words[1]), int(words[2]), float(words[3]), float(words[4]),
                                   float(words[5]) / 100 if cm2m else float(words[5])])
            elif len(words) == 7:  # Cartesian prediction with distance (m)
                out[frame].append([int(words[1]), int(words[2]), float(words[3]), float(words[4]), float(words[5]),
                                   float(words[6])])
    if len(words) == 7:
        out = cart_to_polar(out)
    return out


def cart_to_polar(d):
    out = {}
    for frame, rows in d.items():
        out[frame] = []
        for r in rows:
            x, y, z = r[2], r[3], r[4]
            az = np.arctan2(y, x) * 180 / np.pi
            el = np.arctan2(z, np.sqrt(x**2 + y**2)) * 180 / np.pi
            out[frame].append(r[0:2] + [az, el] + r[5:])
    return out


def polar_to_cart(d):
    out = {}
    for frame, rows in d.items():
        out[frame] = []
        for r in rows:
            el = r[3] * np.pi / 180.0
            az = r[2] * np.pi / 180.0
            c = np.cos(el)
            out[frame].append(r[0:2] + [np.cos(az) * c, np.sin(az) * c, np.sin(el)] + r[4:])
    return out


def dist_polar(a1, e1, a2, e2):
    d = np.sin(e1) * np.sin(e2) + np.cos(e1) * np.cos(e2) * np.cos(np.abs(a1 - a2))
    return np.arccos(np.clip(d, -1, 1)) * 180 / np.pi


def dist_cart(x1, y1, z1, x2, y2, z2):
    n1 = np.sqrt(x1**2 + y1**2 + z1**2 + 1e-10)
    n2 = np.sqrt(x2**2 + y2**2 + z2**2 + 1e-10)
    d = (x1 / n1) * (x2 / n2) + (y1 / n1) * (y2 / n2) + (z1 / n1) * (z2 / n2)
    return np.arccos(np.clip(d, -1, 1)) * 180 / np.pi


def hungarian(gt, pred):
    gt, pred = np.asarray(gt), np.asarray(pred)
    cost = np.zeros((len(gt), len(pred)))
    for i in range(len(gt)):
        for j in range(len(pred)):
            if gt.shape[1] == 3:
                cost[i, j] = dist_cart(*gt[i], *pred[j])
            else:
                cost[i, j] = dist_polar(*(gt[i] * np.pi / 180), *(pred[j] * np.pi / 180))
    row, col = linear_sum_assignment(cost)
    return cost[row, col], row, col


def segment(d, max_frames, block=10):
    n_blocks = int(np.ceil(max_frames / float(block)))
    out = {b: {} for b in range(n_blocks)}
    for start in range(0, max_frames, block):
        b = start // block
        loc = {}
        for frame in range(start, start + block):
            for value in d.get(frame, []):
                loc.setdefault(value[0], {}).setdefault(frame - start, []).append(value[1:])
        for cls in loc:
            out[b].setdefault(cls, []).append([list(loc[cls].keys()), list(loc[cls].values())])
    return out


class Segment2023:
    def __init__(self, n_classes=13, thr=20.0):
        self.C, self.T = n_classes, thr
        z = lambda: np.zeros(n_classes)  # noqa: E731
        self.TP, self.FP, self.FPs, self.FN, self.Nref = z(), z(), z(), z(), z()
        self.DE, self.DE_TP, self.DE_FP, self.DE_FN = z(), z(), z(), z()
        self.S = self.D = self.I = 0

    def update(self, pred, gt):
        for b in range(len(gt)):
            lfn = lfp = 0
            for c in range(self.C):
                ng = max(len(v) for v in gt[b][c][0][1]) if c in gt[b] else None
                npd = max(len(v) for v in pred[b][c][0][1]) if c in pred[b] else None
                if ng is not None:
                    self.Nref[c] += ng
                if c in gt[b] and c in pred[b]:
                    tdist, tcnt = {}, {}
                    gframes, pframes = gt[b][c][0][0], pred[b][c][0][0]
                    for gi, gf in enumerate(gframes):
                        if gf in pframes:
                            garr = np.array(gt[b][c][0][1][gi])
                            pi = pframes.index(gf)
                            parr = np.array(pred[b][c][0][1][pi])
                            dists, rows, _ = hungarian(garr[:, 1:3], parr[:, 1:3])
                            for k, dv in enumerate(dists):
                                tdist.setdefault(rows[k], []).append(dv)
                                tcnt.setdefault(rows[k], []).append(pi)
                    if not tdist:
                        lfn += npd
                        self.FN[c] += npd
                        self.DE_FN[c] += npd
                    else:
                        for t in tdist:
                            avg = sum(tdist[t]) / len(tcnt[t])
                            self.DE[c] += avg
                            self.DE_TP[c] += 1
                            if avg <= self.T:
                                self.TP[c] += 1
                            else:
                                lfp += 1
                                self.FPs[c] += 1
                        if npd > ng:
                            lfp += npd - ng
                            self.FP[c] += npd - ng
                            self.DE_FP[c] += npd - ng
                        elif npd < ng:
                            lfn += ng - npd
                            self.FN[c] += ng - npd
                            self.DE_FN[c] += ng - npd
                elif c in gt[b]:
                    lfn += ng
                    self.FN[c] += ng
                    self.DE_FN[c] += ng
                elif c in pred[b]:
                    lfp += npd
                    self.FP[c] += npd
                    self.DE_FP[c] += npd
            self.S += min(lfp, lfn)
            self.D += max(0, lfn - lfp)
            self.I += max(0, lfp - lfn)

    def scores(self, average="macro"):
        ER = (self.S + self.D + self.I) / (self.Nref.sum() + EPS)
        if average == "micro":
            F = self.TP.sum() / (EPS + self.TP.sum() + self.FPs.sum() + 0.5 * (self.FP.sum() + self.FN.sum()))
            LE = self.DE.sum() / float(self.DE_TP.sum() + EPS) if self.DE_TP.sum() else 180
            LR = self.DE_TP.sum() / (EPS + self.DE_TP.sum() + self.DE_FN.sum())
            return dict(ER=ER, F=F, LE=LE, LR=LR, SELD=np.mean([ER, 1 - F, LE / 180, 1 - LR]))
        F = self.TP / (EPS + self.TP + self.FPs + 0.5 * (self.FP + self.FN))
        LE = self.DE / (self.DE_TP + EPS)
        LE[self.DE_TP == 0] = 180.0
        LR = self.DE_TP / (EPS + self.DE_TP + self.DE_FN)
        seld = np.mean([np.repeat(ER, self.C), 1 - F, LE / 180, 1 - LR], 0)
        return dict(ER=ER, F=F.mean(), LE=LE.mean(), LR=LR.mean(), SELD=seld.mean(), classwise_F=F, classwise_LE=LE)


def score_2023(ref_paths, pred_paths, average="macro"):
    m = Segment2023()
    for rp, pp in zip(ref_paths, pred_paths):
        gt = load_rows(rp)
        gt = {f: [r[:4] for r in rows] for f, rows in gt.items()}  # the 2023 loader drops a distance column
        n = max(gt.keys())
        pred = load_rows(pp)
        pred = {f: [r[:4] for r in rows] for f, rows in pred.items()}
        m.update(segment(pred, n), segment(gt, n))
    return m.scores(average)


def organize(d, max_frames):
    out = {f: {} for f in range(max_frames)}
    for f in range(max_frames):
        for cls, track, *loc in d.get(f, []):
            out[f].setdefault(cls, {})
            if track not in out[f][cls]:
                out[f][cls][track] = loc
            else:
                lowest = min(out[f][cls].keys())
                out[f][cls][lowest - 1 if lowest < 0 else -1] = loc
    return out


class Frame2024:
    def __init__(self, n_classes=13, thr=20.0, dist_thr=math.inf, rel_thr=1.0, eval_dist=True):
        self.C, self.T, self.dT, self.rT, self.ed = n_classes, thr, dist_thr, rel_thr, eval_dist
        z = lambda: np.zeros(n_classes)  # noqa: E731
        self.TP, self.FP, self.FPs, self.FN, self.Nref = z(), z(), z(), z(), z()
        self.AE, self.DE, self.RDE, self.DE_TP, self.DE_FP, self.DE_FN = z(), z(), z(), z(), z(), z()
        self.S = self.D = self.I = 0

    def update(self, pred, gt):
        for f in range(len(gt)):
            lfn = lfp = 0
            for c in range(self.C):
                if c in gt[f]:
                    self.Nref[c] += len(gt[f][c])
                if c in gt[f] and c in pred[f]:
                    g = np.array(list(gt[f][c].values()))
                    p = np.array(list(pred[f][c].values()))
                    errs, rows, cols = hungarian(g[:, :3], p[:, :3])
                    fail = errs > self.T
                    if self.ed:
                        de = np.abs(g[rows, 3] - p[cols, 3])
                        rde = de / (g[rows, 3] + EPS)
                        fail = fail + (de > self.dT) + (rde > self.rT)
                        self.DE[c] += de.sum()
                        self.RDE[c] += rde.sum()
                    Pc, Rc = len(p), len(g)
                    FNc, FPinf, Kc = max(0, Rc - Pc), max(0, Pc - Rc), min(Pc, Rc)
                    L = np.sum(fail)
                    self.AE[c] += errs.sum()
                    self.TP[c] += Kc - L
                    self.DE_TP[c] += Kc
                    self.FP[c] += FPinf
                    self.DE_FP[c] += FPinf
                    self.FPs[c] += L
                    lfp += FPinf + L
                    self.FN[c] += FNc
                    self.DE_FN[c] += FNc
                    lfn += FNc
                elif c in gt[f]:
                    lfn += len(gt[f][c])
                    self.FN[c] += len(gt[f][c])
                    self.DE_FN[c] += len(gt[f][c])
                elif c in pred[f]:
                    lfp += len(pred[f][c])
                    self.FP[c] += len(pred[f][c])
                    self.DE_FP[c] += len(pred[f][c])
            self.S += min(lfp, lfn)
            self.D += max(0, lfn - lfp)
            self.I += max(0, lfp - lfn)

    def scores(self):
        import warnings

        ER = (self.S + self.D + self.I) / (self.Nref.sum() + EPS)
        F = self.TP / (EPS + self.TP + self.FPs + 0.5 * (self.FP + self.FN))
        AE = self.AE / (self.DE_TP + EPS)
        AE[self.DE_TP == 0] = np.nan
        RDE = self.RDE / (self.DE_TP + EPS)
        RDE[self.DE_TP == 0] = np.nan
        DE = self.DE / (self.DE_TP + EPS)
        DE[self.DE_TP == 0] = np.nan
        LR = self.DE_TP / (EPS + self.DE_TP + self.DE_FN)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if self.ed:
                seld = np.nanmean([1 - F, AE / 180, RDE], 0)
            else:
                seld = np.nanmean([np.repeat(ER, self.C), 1 - F, AE / 180, 1 - LR], 0)
            return dict(ER=ER, F=F.mean(), LE=np.nanmean(AE), LR=LR.mean(), SELD=seld.mean(),
                        DE=np.nanmean(DE), RDE=np.nanmean(RDE))


def score_2024(ref_paths, pred_paths, eval_dist=True):
    m = Frame2024(eval_dist=eval_dist)
    for rp, pp in zip(ref_paths, pred_paths):
        gt = polar_to_cart(load_rows(rp, cm2m=True))
        n = max(gt.keys())
        pred = polar_to_cart(load_rows(pp))
        if not eval_dist:
            gt = {f: [r[:5] for r in rows] for f, rows in gt.items()}
            pred = {f: [r[:5] for r in rows] for f, rows in pred.items()}
        m.update(organize(pred, n), organize(gt, n))
    return m.scores()
