"""IMDB sentiment, the seed's model: Embedding(10000, 128) → LSTM → Dense(1, sigmoid), binary
cross-entropy, Adam with gradient-norm clipping; reviews cut to their last `max_len` tokens,
left-padded."""
import time

import torch

from .data import WordVocab, load_imdb

DEFAULTS = dict(vocab=10000, embed=128, hidden=128, max_len=256, batch=64, lr=1e-3, clip=1.0,
                epochs=4, seed=0, impl="fastrnn")


class SentimentLSTM(torch.nn.Module):
    """tokens [B,T] -> logit [B] (the sigmoid lives in the loss, BCEWithLogits)."""

    def __init__(self, vocab, embed, hidden):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, embed)
        self.rnn = torch.nn.LSTM(embed, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, 1)

    def forward(self, tokens):
        _, (h_n, _) = self.rnn(self.embedding(tokens))
        return self.head(h_n[-1]).squeeze(-1)


def encode(splits, config):
    """Token tensors [N, max_len] and labels [N] for both splits; vocabulary from train only."""
    vocab = WordVocab([t for t, _ in splits["train"]], config["vocab"])
    out = {}
    for split, items in splits.items():
        x = torch.tensor([vocab.encode(t, config["max_len"]) for t, _ in items], dtype=torch.long)
        out[split] = (x, torch.tensor([y for _, y in items], dtype=torch.float32))
    return vocab, out


def build(config):
    import fastrnn
    torch.manual_seed(config["seed"])
    model = SentimentLSTM(config["vocab"], config["embed"], config["hidden"])
    if config["impl"] == "fastrnn":
        fastrnn.convert(model)
    elif config["impl"] != "torch":
        raise ValueError(f"--impl: expected 'fastrnn' or 'torch', got {config['impl']!r}")
    return model


@torch.no_grad()
def accuracy(model, x, y, batch=500):
    model.eval()
    hits = sum(((model(x[i:i + batch]) > 0).float() == y[i:i + batch]).sum().item()
               for i in range(0, len(x), batch))
    return hits / len(x)


def train(model, data, config, max_steps=None):
    """Train for config['epochs'] epochs; returns per-epoch records (loss, seconds, accuracy)."""
    from tqdm import tqdm
    (x, y), (xt, yt) = data["train"], data["test"]
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
    g = torch.Generator().manual_seed(config["seed"])
    records, step = [], 0
    for epoch in range(config["epochs"]):
        model.train()
        order, t0, total = torch.randperm(len(x), generator=g), time.perf_counter(), 0.0
        batches = range(0, len(x), config["batch"])
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config['epochs']}", unit="batch", leave=False, disable=None)
        for n, i in enumerate(bar, 1):
            idx = order[i:i + config["batch"]]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            # 256 steps of BPTT now and then give one huge gradient that undoes an epoch of Adam
            torch.nn.utils.clip_grad_norm_(model.parameters(), config["clip"])
            opt.step()
            total += loss.item()
            bar.set_postfix(loss=f"{total / n:.4f}")
            step += 1
            if max_steps and step >= max_steps:
                break
        seconds = time.perf_counter() - t0
        acc = accuracy(model, xt, yt)
        records.append(dict(epoch=epoch + 1, train_loss=total / n, seconds=seconds,
                            test_accuracy=acc))
        print(f"epoch {epoch + 1}: train loss {total / n:.4f}, test accuracy {acc:.4f} "
              f"({len(xt)} reviews), {seconds:.0f} s")
        if max_steps and step >= max_steps:
            break
    return records


def load(path, config):
    return encode(load_imdb(path), config)
