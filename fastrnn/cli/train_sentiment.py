"""`fastrnn train-sentiment`: the seed's IMDB classifier (Embedding 128 → LSTM → Dense(1) with
sigmoid, binary cross-entropy, Adam) on an aclImdb folder or archive; test accuracy on the whole
test split after each epoch."""
import json
import os
import time

import torch

from ..apps import sentiment
from . import _args


def add_parser(sub, name):
    p = sub.add_parser(name, help="train the IMDB sentiment classifier",
                       description=__doc__.split(":", 1)[1].strip())
    p.add_argument("--data", required=True, help="aclImdb folder or aclImdb*.tar.gz")
    d = sentiment.DEFAULTS
    p.add_argument("--epochs", type=_args.positive_int, default=d["epochs"])
    p.add_argument("--hidden", type=_args.positive_int, default=d["hidden"])
    p.add_argument("--max-len", type=_args.positive_int, default=d["max_len"],
                   help="keep each review's last N tokens")
    p.add_argument("--batch", type=_args.positive_int, default=d["batch"])
    p.add_argument("--lr", type=_args.positive_float, default=d["lr"])
    p.add_argument("--clip", type=_args.positive_float, default=d["clip"], help="gradient-norm clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--impl", choices=["fastrnn", "torch"], default="fastrnn")
    p.add_argument("--threads", type=_args.positive_int, help="torch threads")
    p.add_argument("--max-steps", type=_args.positive_int, help="stop after this many batches")
    p.add_argument("--out", type=_args.writable_dir, default="sentiment-run")


def run(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    names = ("epochs", "hidden", "max_len", "batch", "lr", "clip", "seed", "impl")
    config = sentiment.DEFAULTS | {k: getattr(args, k) for k in names}
    t0 = time.perf_counter()
    vocab, data = sentiment.load(args.data, config)
    print(f"{len(data['train'][0])} training and {len(data['test'][0])} test reviews, vocabulary "
          f"{len(vocab)}, loaded in {time.perf_counter() - t0:.0f} s; LSTM H={config['hidden']} "
          f"on {config['impl']}, {torch.get_num_threads()} threads")
    model = sentiment.build(config)
    records = sentiment.train(model, data, config, args.max_steps)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(dict(config=config, epochs=records, threads=torch.get_num_threads()), f, indent=1)
    torch.save({"config": config, "vocab": vocab.words, "model": model.state_dict()},
               os.path.join(args.out, "model.pt"))
    print(f"final test accuracy {records[-1]['test_accuracy']:.4f}")
