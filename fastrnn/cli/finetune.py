"""`fastrnn finetune`: continue training a pre-trained character model on domain text with some
parts frozen (embedding, layer0, layer1, …, head); characters unseen in pre-training map to the
unknown symbol. Reports the domain validation loss before and after."""
import json
import os

import torch

from ..apps import charlm, finetune
from . import _args
from .train_charlm import add_training_args


def add_parser(sub, name):
    p = sub.add_parser(name, help="fine-tune a pre-trained character model on domain text",
                       description=__doc__.split(":", 1)[1].strip())
    p.add_argument("--checkpoint", required=True, help="the pre-trained model")
    p.add_argument("--data", required=True, help="domain text (UTF-8); the last 10%% validates")
    p.add_argument("--freeze", type=_args.name_list, default=[],
                   help="parts to freeze, e.g. embedding,layer0")
    add_training_args(p)
    p.set_defaults(epochs=2, out="finetune-run", lr=1e-3)


def run(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    model, ckpt, vocab = charlm.load(args.checkpoint, args.impl)
    config = ckpt["config"] | {k: getattr(args, k) for k in ("seq_len", "batch", "lr", "clip",
                                                                "seed", "impl")}
    _, train_ids, val_ids = charlm.prepare(args.data, vocab)
    unknown = sum(i == 0 for i in train_ids + val_ids)
    finetune.freeze(model, args.freeze)
    optimizer = finetune.trainable_optimizer(model, config["lr"])
    before = charlm.evaluate(model, val_ids, config["seq_len"])
    print(f"domain validation loss before fine-tuning: {before:.4f} nats/char "
          f"({unknown} characters unseen in pre-training map to the unknown symbol; "
          f"frozen: {', '.join(args.freeze) or 'nothing'})")
    ckpt_path = os.path.join(args.out, "checkpoint.pt")

    def on_epoch(epoch, hist):
        charlm.save(ckpt_path, model, optimizer, config, vocab, epoch, hist)
        charlm.loss_curve(os.path.join(args.out, "loss.png"), hist, "fine-tuning")

    history = charlm.train(model, optimizer, train_ids, val_ids, config, args.epochs,
                           on_epoch=on_epoch, max_steps=args.max_steps, desc="finetune")
    after = history["val"][-1][1]
    print(f"domain validation loss: {before:.4f} before, {after:.4f} after fine-tuning")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(dict(before=before, after=after, frozen=args.freeze,
                       epoch_seconds=history["epoch_seconds"], checkpoint=args.checkpoint,
                       data=args.data), f, indent=1)
