"""Why a DINO-family row does (not) learn: ``bench/objectives.py``'s DINO / iBOT rows, or variants of
them, with per-step diagnostics of the image-level and patch-level terms.

    python bench/dino_collapse.py --methods iBOT-old --threads 1 --num-workers 1 --out runs/dino_collapse/ibot_old
    python bench/dino_collapse.py --methods iBOT DINO --threads 1 --num-workers 1 --out runs/dino_collapse/now

``iBOT`` / ``DINO`` are the committed rows; ``*-old`` the settings before 2026-12-01 (lr 1e-3, teacher
temperature 0.04 -> 0.07), which collapse to a uniform teacher at 500 steps (docs/benchmarks.md, "Why DINO
and iBOT did not move"); further variants below. Every other option is ``bench/objectives.py``'s; the
kNN table is its, and the diagnostics (every ``EVERY`` steps) go to ``<out>/diag.json``:

  t_H      mean per-row entropy of the centred, sharpened teacher probabilities (uniform collapse: ~log K)
  t_Hmarg  entropy of the batch-mean teacher distribution (one-hot collapse: ~0)
  t_pmax   mean max teacher probability;  t_nargmax  distinct argmax prototypes in the batch
  s_H      mean per-row student entropy (student_temp 0.1); s_Hmarg likewise for the batch mean
  ce       the student-teacher cross-entropy (the loss term); kl = ce - t_H (what the student can still learn)
  tp_*     the same for the iBOT patch term's teacher; ce_p its loss
  rank     RankMe of the teacher's pooled features on this batch (2B x 192)
  logit_std  std over the K dims of the teacher logits (mean over rows), centre norm

``python bench/dino_collapse.py --show <out>/diag.json [EVERY]`` prints the table of one run.
"""
import json
import math
import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import objectives as ob  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import sslkit.objectives.dinov2 as d2mod  # noqa: E402

EVERY = 5
DIAG: dict[str, list] = {}
CUR = {"name": None, "model": None, "row": None, "first_head_in": None}


def _ent(p):
    return float(-(p * (p.clamp_min(1e-30)).log()).sum(-1).mean())


def _rankme(z):
    s = torch.linalg.svdvals(z.float())
    p = s / s.sum() + 1e-7
    return float(torch.exp(-(p * p.log()).sum()))


def _stats(prefix, probs, logits=None):
    out = {f"{prefix}_H": _ent(probs), f"{prefix}_Hmarg": _ent(probs.mean(0, keepdim=True))}
    if prefix.startswith("t"):
        out[f"{prefix}_pmax"] = float(probs.max(-1).values.mean())
        out[f"{prefix}_nargmax"] = int(probs.argmax(-1).unique().numel())
        if logits is not None:
            out[f"{prefix}_logit_std"] = float(logits.float().std(-1).mean())
    return out


def _want():
    m = CUR["model"]
    return m is not None and m.training and m.global_step % EVERY == 0


def _row():
    m = CUR["model"]
    if CUR["row"] is None or CUR["row"]["step"] != m.global_step:
        CUR["row"] = {"step": int(m.global_step)}
        DIAG.setdefault(CUR["name"], []).append(CUR["row"])
    return CUR["row"]


def _hook_head(model, head_name):
    def pre(mod, args):
        if _want() and CUR["first_head_in"] != model.global_step:
            CUR["first_head_in"] = model.global_step
            _row()["rank"] = round(_rankme(args[0].detach()), 2)
    getattr(model, head_name).register_forward_pre_hook(pre)


def _attach_dinov2(model):
    CUR["model"], CUR["row"], CUR["first_head_in"] = model, None, None
    _hook_head(model, "teacher_projection_head")
    for tag, cent in (("t", model.dino_centering), ("tp", model.ibot_centering)):
        orig = cent.forward

        def fwd(logits, temp, _orig=orig, _tag=tag, _cent=cent):
            probs = _orig(logits, temp)
            if _want():
                r = _row()
                r.update(_stats(_tag, probs, logits))
                r["temp"] = float(temp)
                if _tag == "t":
                    r["center_norm"] = float(_cent.center.value.norm())
            return probs
        cent.forward = fwd
    return model


_orig_dino_loss, _orig_ibot_loss = d2mod.dino_image_loss, d2mod.ibot_patch_loss


def _dino_loss(t_probs, s_logits, student_temp=0.1):
    loss = _orig_dino_loss(t_probs, s_logits, student_temp)
    if _want():
        r = _row()
        s = F.softmax(torch.cat(s_logits[:2]).detach().float() / student_temp, -1)
        r.update(_stats("s", s))
        r["ce"] = float(loss)
        r["kl"] = r["ce"] - r.get("t_H", float("nan"))
    return loss


def _ibot_loss(t_probs, s_logits, masks, student_temp=0.1):
    loss = _orig_ibot_loss(t_probs, s_logits, masks, student_temp)
    if _want():
        r = _row()
        s = F.softmax(s_logits.detach().float() / student_temp, -1)
        r.update(_stats("sp", s))
        r["ce_p"] = float(loss)  # note: mean over all 2B images (unmasked images count 0)
    return loss


d2mod.dino_image_loss, d2mod.ibot_patch_loss = _dino_loss, _ibot_loss


def _attach_dino(model):
    CUR["model"], CUR["row"], CUR["first_head_in"] = model, None, None
    _hook_head(model, "teacher_projection_head")
    crit = model.criterion
    orig = crit.forward

    def fwd(teacher_out, student_out, teacher_temp=None, epoch=None):
        want = _want()
        if want:
            t = torch.cat([x.detach().float() for x in teacher_out])
            tp = F.softmax((t - crit.center.reshape(1, -1)) / teacher_temp, -1)
            r = _row()
            r.update(_stats("t", tp, t))
            r["temp"] = float(teacher_temp)
            r["center_norm"] = float(crit.center.norm())
            s = F.softmax(torch.cat([x.detach().float() for x in student_out[:2]]) / crit.student_temp, -1)
            r.update(_stats("s", s))
        loss = orig(teacher_out, student_out, teacher_temp=teacher_temp, epoch=epoch)
        if want:
            r["ce"] = float(loss)
            r["kl"] = r["ce"] - r["t_H"]
        return loss
    crit.forward = fwd
    return model


def _variant(name, cls_name, attach, build_row, **over):
    """A bench row built by ``build_row`` with ``ob.<cls_name>``'s arguments overridden and hooks attached."""
    def build(s):
        CUR["name"] = name
        kw_over = dict(over)
        if "lr" in kw_over and "min_lr" not in kw_over:
            kw_over["min_lr"] = kw_over["lr"] / 100
        cls = getattr(ob, cls_name)
        setattr(ob, cls_name, lambda **kw: attach(cls(**{**kw, **kw_over})))
        try:
            return build_row(s)
        finally:
            setattr(ob, cls_name, cls)
    return build


def ibot(name, **over):
    return _variant(name, "DINOv2", _attach_dinov2, lambda s: ob.build_dinov2(s, ibot=True), **over)


def dino(name, **over):
    return _variant(name, "DINO", _attach_dino, ob.build_dino, **over)


OLD = {"lr": 1e-3, "teacher_temp": 0.07}  # the rows' settings before 2026-12-01
VARIANTS = {
    "iBOT": ibot("iBOT"), "DINO": dino("DINO"),
    "iBOT-old": ibot("iBOT-old", **OLD), "DINO-old": dino("DINO-old", **OLD),
    "iBOT-lr2.5e-4": ibot("iBOT-lr2.5e-4", teacher_temp=0.07),  # the lower lr only
    "iBOT-lr5e-4": ibot("iBOT-lr5e-4", lr=5e-4, teacher_temp=0.07),
    "DINO-lr2.5e-4": dino("DINO-lr2.5e-4", teacher_temp=0.07),
    "iBOT-lr2.5e-4-fz1": ibot("iBOT-lr2.5e-4-fz1", teacher_temp=0.07, freeze_last_layer_epochs=1),
    "iBOT-lr2.5e-4-ema996": ibot("iBOT-lr2.5e-4-ema996", teacher_temp=0.07, ema_momentum=0.996,
                                 ema_momentum_end=0.996),
}


def show(path: str, every: int = 25) -> None:
    d = json.load(open(path))
    keys = ["temp", "t_H", "t_Hmarg", "t_pmax", "t_nargmax", "t_logit_std", "s_H", "ce", "kl", "tp_H", "tp_Hmarg",
            "ce_p", "rank", "center_norm"]
    print("log K", round(d["logK"], 3))
    for name, rows in d["diag"].items():
        print(name)
        print("step " + " ".join(f"{k:>9}" for k in keys))
        for r in rows:
            if r["step"] % every == 0 or r is rows[-1]:
                print(f"{r['step']:>4} " + " ".join(f"{r.get(k, float('nan')):>9.4g}" for k in keys))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--show"]:
        show(sys.argv[2], *map(int, sys.argv[3:4]))
        sys.exit(0)
    sys.argv += [] if "--out" in sys.argv else ["--out", "runs/dino_collapse"]
    ob.METHODS.clear()  # only this script's rows: --methods chooses among them
    ob.METHODS.update(VARIANTS)
    rc = ob.main()
    out = sys.argv[sys.argv.index("--out") + 1]
    with open(f"{out}/diag.json", "w") as f:
        json.dump({"logK": math.log(4096), "diag": DIAG}, f)
    sys.exit(rc)
