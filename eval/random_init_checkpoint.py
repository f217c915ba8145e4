"""Write an untrained objective as a checkpoint `load_objective` reads: the random-init baseline.

Every SSL table has a "random init" row; this gives it the same evaluation path as a trained model.

    PYTHONPATH=. python eval/random_init_checkpoint.py --backbone resnet18 --out /tmp/random_resnet18.ckpt
"""

from __future__ import annotations

import argparse
import json

import torch

from sslkit.objectives.simclr import SimCLR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="resnet18_cifar", help="timm / sslkit backbone name")
    parser.add_argument("--backbone-kwargs", type=json.loads, default=None, help='JSON, e.g. \'{"img_size": 32}\'')
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    model = SimCLR(backbone=args.backbone, backbone_kwargs=args.backbone_kwargs)
    torch.save(
        {"sslkit_objective": "sslkit.objectives.simclr.SimCLR", "hyper_parameters": dict(model.hparams),
         "state_dict": model.state_dict()},
        args.out,
    )
    print(f"random-init {args.backbone} written to {args.out}")


if __name__ == "__main__":
    main()
