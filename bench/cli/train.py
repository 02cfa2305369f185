"""`python -m bench train`: train one model, write its checkpoint, metrics.json and test-set masks."""

from __future__ import annotations

import argparse

import torch

from bench.plan.cases import check_threads
from bench.cli.common import (UserError, bounded_float, bounded_floats, bounded_int, bounded_int_list, path_arg,
                               writable_folder)
from bench.measure.train import check_fits
from bench.plan.suite import MAX_BATCH, MAX_EPOCHS, MAX_FEATURES, MAX_LR, MAX_SEED, MAX_THREADS, MAX_WEIGHT, MIN_LR
from condcore.data import DATASETS, DatasetNotFound, load_dataset
from condcore.data.formats import DataFormatError
from condcore.mask_export import export_masks
from condcore.models import CondNet, CondNetConfig
from condcore.models.condnet import ACTIVATIONS, tau_fields
from condcore.policies import INFERENCE_MODES, POLICIES
from condcore.policies.reinforce import Baseline
from condcore.train import LOSS_REDUCTIONS, OPTIMIZERS, PRECISIONS, TrainConfig, save_checkpoint, train


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train one CondNet (or a baseline) and save it")
    p.add_argument("--dataset", choices=DATASETS, default="digits")
    p.add_argument("--data-dir", type=path_arg, help="folder holding the file-based datasets")
    p.add_argument("--policy", choices=list(POLICIES), default="reinforce")
    p.add_argument("--tau", type=bounded_floats(0.0, 1.0), default=0.25,
                   help="target fraction of active blocks, or one per hidden layer (0.25,0.03125,0.03125)")
    p.add_argument("--activation", choices=list(ACTIVATIONS), default="relu", help="of the hidden layers")
    # The defaults are the default suite's model (suites/cpu.yaml), so a model trained here is one it times.
    p.add_argument("--hidden", type=bounded_int_list(1, MAX_FEATURES), default=[2048, 2048],
                   help="hidden widths, e.g. 512,512")
    p.add_argument("--block-size", type=bounded_int(1, MAX_FEATURES), default=128)
    p.add_argument("--epochs", type=bounded_int(1, MAX_EPOCHS), default=20)
    p.add_argument("--batch-size", type=bounded_int(1, MAX_BATCH), default=128)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=TrainConfig.optimizer)
    p.add_argument("--lr", type=bounded_float(MIN_LR, MAX_LR), default=0.002)
    p.add_argument("--momentum", type=bounded_float(0.0, 0.999), default=TrainConfig.momentum, help="sgd only")
    weights = bounded_floats(0.0, MAX_WEIGHT)  # one number, or one per hidden layer
    p.add_argument("--policy-lr-mult", type=weights, default=TrainConfig.policy_lr_mult,
                   help="the policies' learning rate over the network's, or one per hidden layer")
    p.add_argument("--lambda-s", type=weights, default=TrainConfig.lambda_s, help="weight of L_b + L_e (or per layer)")
    p.add_argument("--lambda-v", type=weights, default=TrainConfig.lambda_v, help="weight of L_v (or per layer)")
    p.add_argument("--l2", type=bounded_float(0.0, MAX_WEIGHT), default=TrainConfig.l2)
    p.add_argument("--policy-l2", type=bounded_float(0.0, MAX_WEIGHT), default=TrainConfig.policy_l2,
                   help="L2 on the policies' weights (weight decay)")
    p.add_argument("--loss-reduction", choices=LOSS_REDUCTIONS, default=TrainConfig.loss_reduction,
                   help="of the cross-entropy over a minibatch (sum: as the paper's code)")
    p.add_argument("--baseline", choices=Baseline.KINDS, default=TrainConfig.baseline, help="REINFORCE baseline")
    p.add_argument("--inference-mode", choices=INFERENCE_MODES, default=TrainConfig.inference_mode)
    p.add_argument("--seed", type=bounded_int(0, MAX_SEED), default=0)
    p.add_argument("--precision", choices=PRECISIONS, default=TrainConfig.precision,
                   help="training GEMMs: bf16 under autocast (fp32 weights), fp32, or auto (bf16 where native)")
    p.add_argument("--threads", type=bounded_int(1, MAX_THREADS), default=2)
    p.add_argument("--out", type=path_arg, required=True, help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_threads(args.threads, "--threads")
    check_fits(args.dataset, args.hidden, args.batch_size, "--hidden")
    torch.set_num_threads(args.threads)
    try:
        data = load_dataset(args.dataset, args.data_dir, seed=args.seed)
    except (DatasetNotFound, DataFormatError) as exc:
        raise UserError(str(exc)) from None
    taus = 1.0 if args.policy == "dense" else args.tau
    try:
        model_cfg = CondNetConfig(data.n_features, data.n_classes, hidden=args.hidden, block_size=args.block_size,
                                  policy=args.policy, activation=args.activation, **tau_fields(taus))
        train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                                momentum=args.momentum, policy_lr_mult=args.policy_lr_mult, l2=args.l2,
                                policy_l2=args.policy_l2, lambda_s=args.lambda_s, lambda_v=args.lambda_v,
                                baseline=args.baseline, loss_reduction=args.loss_reduction, inference_mode=args.inference_mode, seed=args.seed,
                                precision=args.precision)
        model_cfg.validate()
        train_cfg.validate()
        for name in ("lambda_s", "lambda_v", "policy_lr_mult"):
            train_cfg.per_layer(name, len(args.hidden))  # a list must have one value per hidden layer
    except ValueError as exc:
        raise UserError(str(exc)) from None
    writable_folder(args.out, "--out")
    torch.manual_seed(args.seed)
    result = train(CondNet(model_cfg), data, train_cfg, progress=not args.quiet)
    metrics = save_checkpoint(result, data, train_cfg, args.out)
    export_masks(result.model, data.test, train_cfg.inference_mode, args.out / "masks.npz", dataset=data.name)
    density = ", ".join(f"{d:.3f}" for d in metrics["density"])
    print(f"{data.name} {args.policy} tau={taus}: test accuracy {metrics['test_accuracy']:.4f}, "
          f"density per layer [{density}] ({train_cfg.inference_mode}), {result.seconds:.1f}s in {result.precision} "
          f"-> {args.out}")
    return 0
