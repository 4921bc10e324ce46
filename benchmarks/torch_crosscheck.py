"""Cross-check the numpy baselines of `bitflip compare` against PyTorch (optional extra).

    pip install torch==2.13.0          # not needed by `make test`; the CPU wheel is enough
    .venv/bin/python benchmarks/torch_crosscheck.py --dataset mnist --hidden 937 --epochs 10

For each method it trains the same model twice on the same encoded bits with the same
learning rate, schedule (cosine decay over the budget), batch, initialisation distribution and
epochs: once with host/bitflip/baselines.py (hand-written backward pass) and once with PyTorch
autograd (an independent implementation of the same definitions). Matching test accuracies
say the hand-written gradients, the STE and the optimizers are right, so the rule is compared
with honest baselines. Prints a markdown table; every figure is measured by this run.

The STE model in torch: latent weights W in [-1, 1], forward with sign(W) (sign(0) = +1),
hardtanh straight-through for the activations, weight gradient passed straight through, the
same 1/sqrt(fan_in) (x4 at the output) pre-activation scales and float biases as the numpy
version; latent weights clipped to [-1, 1] after each step.
"""

from __future__ import annotations

import argparse
import itertools
import math
import shlex
import sys
import time
from typing import Any

import numpy as np
from bitflip.data.encoding import parse_encoding
from bitflip.data.registry import load_dataset
from bitflip.measure import baselines as B

try:
    import torch
except ImportError:  # an optional extra: say how to get it, exit 2 like any bad input
    torch = None


def torch_fit(
    method: B.Method, sizes: list[int], x: np.ndarray, y: np.ndarray, lr: float, epochs: int, batch: int, seed: int
) -> Any:
    assert torch is not None
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    Ws, bs = [], []
    for n_in, n_out in itertools.pairwise(sizes):
        if method.binary:
            w = torch.rand(n_out, n_in, generator=g) * 2 - 1
        else:
            w = torch.randn(n_out, n_in, generator=g) * math.sqrt(2.0 / n_in)
        Ws.append(w.requires_grad_())
        bs.append(torch.zeros(n_out, requires_grad=True))
    params = Ws + bs
    opt = (
        torch.optim.SGD(params, lr=lr, momentum=0.9)
        if method.optimizer == "sgd"
        else torch.optim.Adam(params, lr=lr, eps=1e-8)
    )
    top = len(Ws) - 1

    def sign_ste(t: Any) -> Any:  # forward sign (0 -> +1), backward identity
        s = torch.where(t >= 0, 1.0, -1.0)
        return t + (s - t).detach()

    def forward(xb: Any) -> Any:
        h = xb
        for li, (w, b) in enumerate(zip(Ws, bs)):
            wq = sign_ste(w) if method.binary else w
            scale = 1.0
            if method.binary:
                scale = (4.0 if li == top else 1.0) / math.sqrt(sizes[li])
            a = (h @ wq.T) * scale + b
            if li == top:
                return a
            if method.binary:
                # hardtanh STE: sign forward, gradient only inside |a| <= 1
                h = torch.where(a >= 0, 1.0, -1.0) + (a.clamp(-1, 1) - a.clamp(-1, 1).detach())
            else:
                h = torch.relu(a)
        return h

    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    steps_per_epoch = -(-len(x) // batch)
    total, step = epochs * steps_per_epoch, 0
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(forward(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            step += 1
            if method.binary:
                with torch.no_grad():
                    for w in Ws:
                        w.clamp_(-1.0, 1.0)
    return forward


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument(
        "--hidden", type=int, default=937, help="hidden width (937: as many weights as the rule's 400-10x96)"
    )
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr-sgd", type=float, default=0.03, help="mlp-sgd rate (the numpy sweep's pick)")
    ap.add_argument("--lr-ste", type=float, default=0.01, help="ste rate, Adam (the numpy sweep's pick)")
    ap.add_argument("--limit", type=int, default=0, help="first N training samples only")
    args = ap.parse_args(argv)
    if torch is None:
        print("torch_crosscheck: PyTorch is not installed (pip install torch==2.13.0)", file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    ds = load_dataset(args.dataset)
    xtr, ytr = ds.x_train, ds.y_train
    if args.limit:
        xtr, ytr = xtr[: args.limit], ytr[: args.limit]
    enc = parse_encoding(ds.default_encoding, ds.max_value).fit(xtr, ytr, ds.n_classes)  # mi:PCT on training rows
    x, xte = B.to_pm1(enc.bits(xtr)), B.to_pm1(enc.bits(ds.x_test))
    sizes = [x.shape[1], args.hidden, ds.n_classes]
    cfg = B.Config(epochs=args.epochs, seed=args.seed, batch=args.batch)
    rows = []
    for method, lr in (
        (B.Method("mlp-sgd", (args.hidden,), False, "sgd", B.SGD_LRS), args.lr_sgd),
        (B.Method("ste", (args.hidden,), True, "adam", B.ADAM_LRS), args.lr_ste),
    ):
        t0 = time.time()
        model, _ = B.fit(method, sizes, x, ytr, lr, cfg)
        acc_np, t_np = float((model.predict(xte) == ds.y_test).mean()), time.time() - t0
        t0 = time.time()
        fwd = torch_fit(method, sizes, x, ytr, lr, args.epochs, args.batch, args.seed)
        with torch.no_grad():
            pred = fwd(torch.from_numpy(xte)).argmax(dim=1).numpy()
        acc_t, t_t = float((pred == ds.y_test).mean()), time.time() - t0
        rows.append((method.name, lr, acc_np, acc_t, t_np, t_t))
        print(f"# {method.name}: numpy {acc_np:.4f}, torch {acc_t:.4f}", file=sys.stderr)
    cmd = " ".join(["python benchmarks/torch_crosscheck.py"] + [shlex.quote(a) for a in (argv or sys.argv[1:])])
    shape = "-".join(str(s) for s in sizes)
    print(
        f"`{cmd}` — {ds.name}, {enc.spec}, {len(x):,} training samples, {args.epochs} epochs, batch {args.batch}, "
        f"seed {args.seed}, torch {torch.__version__} (measured)\n"
    )
    print("| method | shape | lr | numpy (baselines.py) | PyTorch autograd | difference | numpy s | torch s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, lr, a, b, tn, tt in rows:
        print(
            f"| {name} | {shape} | {lr:g} | {a * 100:.2f} % | {b * 100:.2f} % | {(b - a) * 100:+.2f} | {tn:.0f} | {tt:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
