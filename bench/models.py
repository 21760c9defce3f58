"""Factories for `fastrnn profile --model bench/models.py:NAME`: the seed's applications as
(model, make_input[, loss_fn]), with their default sizes.

    fastrnn profile --model bench/models.py:imdb --batch 64 --memory-budget 4GiB
    fastrnn profile --model bench/models.py:charlm --batch 64
"""
import torch

from fastrnn.apps import charlm as charlm_app, sentiment


def imdb():
    """The IMDB sentiment model (Embedding -> LSTM(128) -> Linear) on token ids [B,T], trained
    with BCE-with-logits."""
    d = sentiment.DEFAULTS
    model = sentiment.SentimentLSTM(d["vocab"], d["embed"], d["hidden"])
    g = torch.Generator().manual_seed(0)

    def make_input(T, B):
        return torch.randint(0, d["vocab"], (B, T), generator=g)

    def loss_fn(logits):  # [B]; the labels matter for the values, not for the cost
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    return model, make_input, loss_fn


VOCAB = 65  # tiny-shakespeare's characters


def charlm():
    """The 2-layer character LSTM (Embedding -> LSTM(256) x 2 -> Linear) on ids [T,B], trained
    to predict each next character."""
    d = charlm_app.DEFAULTS
    model = charlm_app.CharLM(VOCAB, d["embed"], d["hidden"], d["layers"], d["dropout"])
    ids = {}

    def make_input(T, B):
        ids[T, B] = torch.randint(0, VOCAB, (T, B), generator=torch.Generator().manual_seed(0))
        return ids[T, B]

    def loss_fn(output):
        logits, _ = output  # [T,B,V]
        x = ids[tuple(logits.shape[:2])]
        return torch.nn.functional.cross_entropy(logits[:-1].flatten(0, 1), x[1:].flatten())
    return model, make_input, loss_fn
