"""`fastrnn train-charlm`: train a character-level LSTM language model on any UTF-8 text file
(the last 10% validates) by truncated BPTT; writes a checkpoint each epoch and a loss curve."""
import json
import os

import torch

from ..apps import charlm
from . import _args


def add_parser(sub, name):
    p = sub.add_parser(name, help="train a character-level language model",
                       description=__doc__.split(":", 1)[1].strip())
    p.add_argument("--data", required=True, help="a UTF-8 text file")
    add_training_args(p)
    p.add_argument("--embed", type=_args.positive_int, default=charlm.DEFAULTS["embed"])
    p.add_argument("--hidden", type=_args.positive_int, default=charlm.DEFAULTS["hidden"])
    p.add_argument("--layers", type=_args.positive_int, default=charlm.DEFAULTS["layers"])
    p.add_argument("--dropout", type=float, default=charlm.DEFAULTS["dropout"])
    p.add_argument("--resume", help="continue from this checkpoint (its configuration is kept)")


def add_training_args(p):
    """The options train-charlm and finetune share."""
    p.add_argument("--epochs", type=_args.positive_int, default=14)
    p.add_argument("--seq-len", type=_args.positive_int, default=charlm.DEFAULTS["seq_len"],
                   help="BPTT chunk length")
    p.add_argument("--batch", type=_args.positive_int, default=charlm.DEFAULTS["batch"])
    p.add_argument("--lr", type=_args.positive_float, default=charlm.DEFAULTS["lr"])
    p.add_argument("--clip", type=_args.positive_float, default=charlm.DEFAULTS["clip"],
                   help="gradient-norm clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--impl", choices=["fastrnn", "torch"], default="fastrnn")
    p.add_argument("--threads", type=_args.positive_int, help="torch threads")
    p.add_argument("--max-steps", type=_args.positive_int, help="stop after this many chunks")
    p.add_argument("--out", type=_args.writable_dir, default="charlm-run",
                   help="folder for the checkpoint, loss curve and results.json")


def run(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    if args.resume:
        model, ckpt, vocab = charlm.load(args.resume)
        config, start, history = ckpt["config"], ckpt["epoch"], ckpt["history"]
        _, train_ids, val_ids = charlm.prepare(args.data, vocab)
        optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
        optimizer.load_state_dict(ckpt["optimizer"])
        print(f"resuming from epoch {start} of {args.resume}")
    else:
        config = {k: getattr(args, k) for k in charlm.DEFAULTS}
        vocab, train_ids, val_ids = charlm.prepare(args.data)
        model = charlm.build(config, len(vocab))
        optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
        start, history = 0, None
    print(f"{len(train_ids)} training and {len(val_ids)} validation characters, vocabulary "
          f"{len(vocab)}, {config['layers']}-layer LSTM H={config['hidden']} on {config['impl']}, "
          f"{torch.get_num_threads()} threads")

    def on_epoch(epoch, hist):
        charlm.save(ckpt_path, model, optimizer, config, vocab, epoch, hist)
        charlm.loss_curve(os.path.join(args.out, "loss.png"), hist,
                          f"char LM on {os.path.basename(args.data)} ({config['impl']})")

    history = charlm.train(model, optimizer, train_ids, val_ids, config, args.epochs, start,
                           history, on_epoch, args.max_steps)
    summary = dict(config=config, data=args.data, val_loss=history["val"][-1][1],
                   best_val_loss=min(v for _, v in history["val"]),
                   epoch_seconds=history["epoch_seconds"], threads=torch.get_num_threads())
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"checkpoint {ckpt_path}; best validation loss {summary['best_val_loss']:.4f} nats/char")
