"""Character-level language model: Embedding → LSTM → Linear, trained by truncated BPTT with the
hidden state carried across chunks, gradient-norm clipping and Adam; checkpoints, sampling."""
import time

import torch

from .data import CharVocab, read_text, split_train_val

DEFAULTS = dict(embed=64, hidden=256, layers=2, dropout=0.1, seq_len=128, batch=64, lr=2e-3,
                clip=1.0, seed=0, impl="fastrnn")


class CharLM(torch.nn.Module):
    """x [T,B] character ids -> logits [T,B,V]; time-major like the kernels."""

    def __init__(self, vocab_size, embed, hidden, layers, dropout=0.0):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, embed)
        self.rnn = torch.nn.LSTM(embed, hidden, layers, dropout=dropout if layers > 1 else 0.0)
        self.head = torch.nn.Linear(hidden, vocab_size)

    def forward(self, x, state=None):
        y, state = self.rnn(self.embedding(x), state)
        return self.head(y), state


def build(config, vocab_size):
    """The model for `config`, on fastrnn (converted in place) or torch.nn, seeded."""
    import fastrnn
    torch.manual_seed(config["seed"])
    model = CharLM(vocab_size, config["embed"], config["hidden"], config["layers"],
                   config["dropout"])
    if config["impl"] == "fastrnn":
        fastrnn.convert(model)
    elif config["impl"] != "torch":
        raise ValueError(f"--impl: expected 'fastrnn' or 'torch', got {config['impl']!r}")
    return model


def streams(ids, batch):
    """ids -> [B, N/B]: B contiguous streams, so chunk k+1 of a stream continues chunk k."""
    n = len(ids) // batch
    if n < 2:
        raise ValueError(f"{len(ids)} characters are too few for batch {batch}")
    return torch.tensor(ids[:n * batch], dtype=torch.long).view(batch, n)


def _detach(state):
    return tuple(s.detach() for s in state)


@torch.no_grad()
def evaluate(model, ids, seq_len, batch=16):
    """Mean negative log-likelihood per character (nats) over `ids`."""
    model.eval()
    data = streams(ids, min(batch, max(1, len(ids) // (2 * seq_len)) or 1))
    state, total, count = None, 0.0, 0
    for i in range(0, data.shape[1] - 1, seq_len):
        x = data[:, i:i + seq_len].t()
        y = data[:, i + 1:i + 1 + seq_len].t()
        x = x[:y.shape[0]]
        logits, state = model(x, state)
        total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                   y.reshape(-1), reduction="sum").item()
        count += y.numel()
    return total / count


def train(model, optimizer, train_ids, val_ids, config, epochs, start_epoch=0, history=None,
          on_epoch=None, max_steps=None, desc="train"):
    """Truncated-BPTT training; returns the history {'train': [[step, loss]], 'val': [[epoch,
    loss]], 'epoch_seconds': [...]}. `on_epoch(epoch, history)` runs after each epoch."""
    from tqdm import tqdm
    history = history or {"train": [], "val": [], "epoch_seconds": []}
    data = streams(train_ids, config["batch"])
    T = config["seq_len"]
    chunks = range(0, data.shape[1] - 1, T)
    step = history["train"][-1][0] if history["train"] else 0
    for epoch in range(start_epoch, epochs):
        model.train()
        state, t0 = None, time.perf_counter()
        bar = tqdm(chunks, desc=f"{desc} epoch {epoch + 1}/{epochs}", unit="chunk", leave=False, disable=None)
        for i in bar:
            x, y = data[:, i:i + T].t(), data[:, i + 1:i + 1 + T].t()
            x = x[:y.shape[0]]
            logits, state = model(x, state)
            state = _detach(state)  # carried across chunks, cut from the graph (truncated BPTT)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                     y.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config["clip"])
            optimizer.step()
            step += 1
            history["train"].append([step, loss.item()])
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if max_steps and step >= max_steps:
                break
        history["epoch_seconds"].append(time.perf_counter() - t0)
        val = evaluate(model, val_ids, T)
        history["val"].append([epoch + 1, val])
        print(f"{desc} epoch {epoch + 1}: train loss {history['train'][-1][1]:.4f}, val loss "
              f"{val:.4f} nats/char, {history['epoch_seconds'][-1]:.0f} s")
        if on_epoch:
            on_epoch(epoch + 1, history)
        if max_steps and step >= max_steps:
            break
    return history


def save(path, model, optimizer, config, vocab, epoch, history):
    """A checkpoint of plain types and tensors only: torch.load(weights_only=True) reads it."""
    torch.save({"config": dict(config), "vocab": list(vocab.chars), "epoch": epoch,
                "history": history, "model": model.state_dict(),
                "optimizer": optimizer.state_dict()}, path)


def load(path, impl=None):
    """(model, checkpoint dict, vocab) from a checkpoint; `impl` overrides the saved one."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as e:
        raise ValueError(f"{path}: not a readable fastrnn checkpoint ({e})") from None
    config = dict(ckpt["config"]) | ({"impl": impl} if impl else {})
    vocab = CharVocab.from_list(ckpt["vocab"])
    model = build(config, len(vocab))
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt | {"config": config}, vocab


def loss_curve(path, history, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    steps, losses = zip(*history["train"]) if history["train"] else ([], [])
    ax.plot(steps, losses, lw=0.8, alpha=0.6, label="train (per chunk)")
    if history["val"] and steps:
        per_epoch = max(1, steps[-1] // max(1, len(history["val"])))
        ax.plot([e * per_epoch for e, _ in history["val"]], [v for _, v in history["val"]], "o-",
                label="validation (per epoch)")
    ax.set(xlabel="step", ylabel="cross-entropy (nats/char)", title=title)
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def prepare(path, vocab=None):
    """Text file -> (vocab, train ids, val ids): the last 10% validates."""
    text = read_text(path)
    vocab = vocab or CharVocab(text)
    train_ids, val_ids = split_train_val(vocab.encode(text))
    return vocab, train_ids, val_ids


@torch.no_grad()
def generate(model, vocab, prompt, length, temperature=0.8, seed=0):
    """Sample `length` characters after `prompt`; the same seed gives the same text."""
    if temperature <= 0:
        raise ValueError(f"temperature: expected a positive number, got {temperature}")
    model.eval()
    g = torch.Generator().manual_seed(seed)
    ids = vocab.encode(prompt) or [0]
    logits, state = model(torch.tensor(ids)[:, None])
    out = []
    for _ in range(length):
        p = torch.softmax(logits[-1, 0] / temperature, -1)
        nxt = torch.multinomial(p, 1, generator=g).item()
        out.append(nxt)
        logits, state = model(torch.tensor([[nxt]]), state)
    return prompt + vocab.decode(out)
