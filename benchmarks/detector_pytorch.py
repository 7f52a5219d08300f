#!/usr/bin/env python3
"""gidedge's RetinaNet detectors in PyTorch, for comparison with
`gidedge bench engine --model retinanet-student|retinanet-teacher`.

The networks are rebuilt layer for layer from models/configs/*.json as
package models builds them (models/backbone.go, fpn.go, head.go):

retinanet-student  MobileNetV2 backbone (stem 16; inverted residuals
                   16x1 e1, 24x2, 32x2, 64x2, 96x1, 160x2, expansion 4,
                   ReLU6), FPN of 48 channels on C3-C5 with depthwise-
                   separable output blocks, head towers of 2 depthwise-
                   separable layers x 48 (ReLU6) shared by the levels with
                   batch norm per level: 0.514 M parameters at 6 classes.
retinanet-teacher  ResNet backbone (stem 24, 32; basic blocks 32x1, 80x2,
                   160x3, 256x2, ReLU), FPN of 128 channels with 3x3 output
                   convs, head towers of 2 3x3 convs x 128 (ReLU): 4.893 M.

Both: 9 anchors per position (3 ratios x 3 scales), no bias in conv+BN
layers, 3x3 output convs with bias. The parameter count is printed and the
comparison script checks it against gidedge's.

The training step is the one `gidedge train` runs: forward in training
mode, sigmoid focal loss (alpha 0.25, gamma 2) over every position and
class divided by the number of positives, smooth-L1 (beta 0.11) on the
positives' box deltas divided by the same, backward, gradient clipping at
norm 10, AdamW (lr 0.002, weight decay 0.05 on weights, none on biases and
batch-norm parameters) and zero_grad. The assignment is synthetic and fixed
(POSITIVES positives per image at seeded random anchors with random classes
and deltas); gidedge assigns anchors to boxes on the host every step. The
forward time is inference: eval mode, no autograd.

Usage:
  /usr/bin/python3 benchmarks/detector_pytorch.py --model retinanet-student \
      --size 160 --batch 8 --steps 20 --threads 2 --device cpu --json

Prints one JSON object (--json) or a few lines: forward_ms (median),
train_step_ms (median) with its forward/backward/update split,
cpu_ms_per_step (process CPU time over all threads per training step) and
params. On a shared machine set OMP_WAIT_POLICY=PASSIVE (the comparison
script does): spinning OpenMP threads otherwise make both the wall and the
CPU time meaningless. With --device cuda the steps are synchronised before
each clock read.

Needs torch: Debian's python3-torch 1.13 (apt-get install python3-torch; run
it with /usr/bin/python3). It is a benchmark dependency, not installed by
scripts/setup.sh.
"""
import argparse
import json
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

NUM_ANCHORS = 9
POSITIVES = 24


class ConvBNAct(nn.Module):
    """conv (no bias) -> batch norm -> activation, as nn.ConvBNAct."""

    def __init__(self, cin, cout, k, stride=1, groups=1, act=None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.act(x) if self.act is not None else x


def activation(name):
    return {"relu": F.relu, "relu6": F.relu6}[name]


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand, act):
        super().__init__()
        hidden = cin * expand
        self.expand = ConvBNAct(cin, hidden, 1, act=act) if expand != 1 else None
        self.dw = ConvBNAct(hidden, hidden, 3, stride=stride, groups=hidden, act=act)
        self.project = ConvBNAct(hidden, cout, 1)
        self.residual = stride == 1 and cin == cout
        if self.residual:
            nn.init.zeros_(self.project.bn.weight)

    def forward(self, x):
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.dw(y))
        return y + x if self.residual else y


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, act):
        super().__init__()
        self.conv1 = ConvBNAct(cin, cout, 3, stride=stride, act=act)
        self.conv2 = ConvBNAct(cout, cout, 3)
        nn.init.zeros_(self.conv2.bn.weight)
        self.shortcut = ConvBNAct(cin, cout, 1, stride=stride) if stride != 1 or cin != cout else None
        self.act = act

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        s = self.shortcut(x) if self.shortcut is not None else x
        return self.act(y + s)


class Backbone(nn.Module):
    """Stem convolutions, then blocks; C3, C4, C5 are the last outputs at strides 8, 16, 32."""

    def __init__(self, cfg):
        super().__init__()
        act = activation(cfg["act"])
        self.stem = nn.ModuleList()
        cin = 3
        for w in cfg["stem"]:
            self.stem.append(ConvBNAct(cin, w, 3, stride=2, act=act))
            cin = w
        stride = 2 ** len(cfg["stem"])
        self.blocks = nn.ModuleList()
        self.taps, self.channels = [0, 0, 0], [0, 0, 0]
        for st in cfg["stages"]:
            for d in range(st["depth"]):
                bs = st["stride"] if d == 0 else 1
                if cfg["type"] == "resnet":
                    self.blocks.append(BasicBlock(cin, st["out"], bs, act))
                else:
                    self.blocks.append(InvertedResidual(cin, st["out"], bs, st["expand"], act))
                stride *= bs
                cin = st["out"]
            for k, want in enumerate((8, 16, 32)):
                if stride == want:
                    self.taps[k] = len(self.blocks) - 1
                    self.channels[k] = cin

    def forward(self, x):
        for c in self.stem:
            x = c(x)
        out = [None, None, None]
        for i, b in enumerate(self.blocks):
            x = b(x)
            for k, t in enumerate(self.taps):
                if t == i:
                    out[k] = x
        return out


class SepConv(nn.Module):
    def __init__(self, cin, cout, separable):
        super().__init__()
        if separable:
            self.layers = nn.Sequential(ConvBNAct(cin, cin, 3, groups=cin), ConvBNAct(cin, cout, 1))
        else:
            self.layers = ConvBNAct(cin, cout, 3)

    def forward(self, x):
        return self.layers(x)


class FPN(nn.Module):
    def __init__(self, channels_in, cfg):
        super().__init__()
        c = cfg["channels"]
        self.lateral = nn.ModuleList(ConvBNAct(ch, c, 1) for ch in channels_in)
        self.output = nn.ModuleList(SepConv(c, c, cfg.get("depthwise", False)) for _ in channels_in)
        if len(cfg["levels"]) != 3:
            raise SystemExit("detector_pytorch: only FPN levels P3-P5 are replicated")

    def forward(self, cs):
        lat = [l(c) for l, c in zip(self.lateral, cs)]
        for i in (1, 0):
            lat[i] = lat[i] + F.interpolate(lat[i + 1], size=lat[i].shape[2:], mode="nearest")
        return [o(x) for o, x in zip(self.output, lat)]


class TowerLayer(nn.Module):
    """A head tower layer: weights shared by the levels, batch norm per level."""

    def __init__(self, cin, cout, levels, depthwise, act):
        super().__init__()
        self.act = act
        self.dw = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False) if depthwise else None
        self.dw_norm = nn.ModuleList(nn.BatchNorm2d(cin) for _ in range(levels)) if depthwise else None
        self.conv = nn.Conv2d(cin, cout, 1 if depthwise else 3, padding=0 if depthwise else 1, bias=False)
        self.norm = nn.ModuleList(nn.BatchNorm2d(cout) for _ in range(levels))

    def forward(self, level, x):
        if self.dw is not None:
            x = self.act(self.dw_norm[level](self.dw(x)))
        return self.act(self.norm[level](self.conv(x)))


class Head(nn.Module):
    def __init__(self, cfg, classes):
        super().__init__()
        h, levels = cfg["head"], len(cfg["fpn"]["levels"])
        act = activation(h["act"])
        cin = cfg["fpn"]["channels"]
        self.cls_tower, self.reg_tower = nn.ModuleList(), nn.ModuleList()
        for _ in range(h["convs"]):
            self.cls_tower.append(TowerLayer(cin, h["channels"], levels, h.get("depthwise", False), act))
            self.reg_tower.append(TowerLayer(cin, h["channels"], levels, h.get("depthwise", False), act))
            cin = h["channels"]
        self.cls_out = nn.Conv2d(cin, NUM_ANCHORS * classes, 3, padding=1)
        self.reg_out = nn.Conv2d(cin, NUM_ANCHORS * 4, 3, padding=1)
        for conv in (self.cls_out, self.reg_out):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        p = h["prior_prob"]
        nn.init.constant_(self.cls_out.bias, -torch.log(torch.tensor((1 - p) / p)).item())

    def forward(self, feats):
        cls, reg = [], []
        for level, f in enumerate(feats):
            c, r = f, f
            for ct, rt in zip(self.cls_tower, self.reg_tower):
                c, r = ct(level, c), rt(level, r)
            cls.append(self.cls_out(c))
            reg.append(self.reg_out(r))
        return cls, reg


class Detector(nn.Module):
    def __init__(self, cfg, classes):
        super().__init__()
        self.backbone = Backbone(cfg["backbone"])
        self.fpn = FPN(self.backbone.channels, cfg["fpn"])
        self.head = Head(cfg, classes)

    def forward(self, x):
        return self.head(self.fpn(self.backbone(x)))


def flatten_levels(maps, anchors):
    """Per-level [N, A*C, H, W] -> [N, sum(H*W*A), C], ordered (level, y, x, anchor) as models.Flatten."""
    parts = []
    for m in maps:
        n, ch, h, w = m.shape
        c = ch // anchors
        parts.append(m.reshape(n, anchors, c, h * w).permute(0, 3, 1, 2).reshape(n, h * w * anchors, c))
    return torch.cat(parts, 1)


def sigmoid_focal_loss(x, t, alpha, gamma):
    """torchvision's sigmoid_focal_loss, elementwise (as gidedge's)."""
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    return (alpha * t + (1 - alpha) * (1 - t)) * loss


def load_config(name):
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "models", "configs", name + ".json")
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise SystemExit(f"detector_pytorch: config {name!r}: {e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="retinanet-student", choices=["retinanet-student", "retinanet-teacher"])
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--classes", type=int, default=6)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch < 1 or args.size < 32:
        raise SystemExit("detector_pytorch: --steps ≥ 1, --warmup ≥ 0, --batch ≥ 1 and --size ≥ 32")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("detector_pytorch: --device cuda: torch sees no CUDA device")
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    dev = torch.device(args.device)
    cfg = load_config(args.model)
    loss_cfg, train_cfg = cfg["loss"], cfg["train"]
    net = Detector(cfg, args.classes).to(dev)
    params = sum(p.numel() for p in net.parameters())
    decay = [p for p in net.parameters() if p.dim() > 1]
    no_decay = [p for p in net.parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": train_cfg["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=train_cfg["lr"], betas=(0.9, 0.999), eps=1e-8)
    x = torch.randn(args.batch, 3, args.size, args.size, device=dev)

    # The fixed synthetic assignment: rows of the flattened outputs.
    with torch.no_grad():
        net.eval()
        cls0, _ = net(x)
        net.train()
    rows = sum(m.shape[2] * m.shape[3] for m in cls0) * NUM_ANCHORS
    gen = torch.Generator().manual_seed(2)
    cls_target = torch.zeros(args.batch, rows, args.classes)
    pos = []
    for i in range(args.batch):
        for r in torch.randperm(rows, generator=gen)[:POSITIVES].tolist():
            cls_target[i, r, torch.randint(args.classes, (1,), generator=gen).item()] = 1
            pos.append(i * rows + r)
    cls_target = cls_target.to(dev)
    pos_rows = torch.tensor(pos, device=dev)
    deltas = (torch.randn(len(pos), 4, generator=gen) * 0.5).to(dev)
    num_pos = float(max(1, len(pos)))

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def train_step():
        sync()
        t0 = time.perf_counter()
        cls, reg = net(x)
        cls, reg = flatten_levels(cls, NUM_ANCHORS), flatten_levels(reg, NUM_ANCHORS)
        focal = sigmoid_focal_loss(cls, cls_target, loss_cfg["focal_alpha"], loss_cfg["focal_gamma"]).sum() / num_pos
        reg_pos = reg.reshape(-1, 4).index_select(0, pos_rows)
        box = F.smooth_l1_loss(reg_pos, deltas, reduction="sum", beta=loss_cfg["smooth_l1_beta"]) / num_pos
        loss = focal + loss_cfg["box_weight"] * box
        loss_value = loss.item()  # gidedge reads the loss each step too
        sync()
        t1 = time.perf_counter()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(net.parameters(), train_cfg["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=False)
        sync()
        t3 = time.perf_counter()
        return [(t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t3 - t0) * 1e3], loss_value

    for _ in range(args.warmup):
        train_step()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    times = []
    for _ in range(args.steps):
        t, loss_value = train_step()
        times.append(t)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_ms = ((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)) * 1e3 / args.steps

    net.eval()
    fwd = []
    with torch.no_grad():
        for i in range(args.warmup + args.steps):
            sync()
            t0 = time.perf_counter()
            net(x)
            sync()
            if i >= args.warmup:
                fwd.append((time.perf_counter() - t0) * 1e3)

    def col(k):
        return statistics.median(t[k] for t in times)

    res = {
        "model": args.model,
        "torch": torch.__version__,
        "device": args.device,
        "threads": args.threads,
        "input": [args.batch, 3, args.size, args.size],
        "classes": args.classes,
        "params": params,
        "positives": len(pos),
        "forward_ms": round(statistics.median(fwd), 3),
        "train_step_ms": round(col(3), 3),
        "train_step_min_ms": round(min(t[3] for t in times), 3),
        "train_forward_ms": round(col(0), 3),
        "backward_ms": round(col(1), 3),
        "update_ms": round(col(2), 3),
        # CPU time over all threads: with OMP_WAIT_POLICY=PASSIVE it is the
        # work done, less distorted than wall time on a shared machine.
        "cpu_ms_per_step": round(cpu_ms, 1),
        "steps": args.steps,
        "final_loss": loss_value,
    }
    if args.json:
        print(json.dumps(res))
        return
    print(f"{args.model} (PyTorch {torch.__version__}, {args.device}, {args.threads} threads): "
          f"{params} parameters, input {res['input']}")
    print(f"  forward (inference)  {res['forward_ms']:8.2f} ms")
    print(f"  train step           {res['train_step_ms']:8.2f} ms  (forward {res['train_forward_ms']:.2f}, "
          f"backward {res['backward_ms']:.2f}, update {res['update_ms']:.2f}; CPU {res['cpu_ms_per_step']:.1f} ms)")


if __name__ == "__main__":
    sys.exit(main())
