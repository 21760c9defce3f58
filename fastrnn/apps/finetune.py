"""Fine-tuning a pre-trained character model on domain text with some parts frozen."""
import torch


def parts(model):
    """{part name: its parameters}: 'embedding', 'layer0' … 'layer{L-1}', 'head'."""
    named = {"embedding": list(model.embedding.parameters()), "head": list(model.head.parameters())}
    for k in range(model.rnn.num_layers):
        named[f"layer{k}"] = [p for n, p in model.rnn.named_parameters()
                              if n.split("_l")[-1].split("_")[0] == str(k)]
    return named


def freeze(model, names):
    """Freeze the named parts (requires_grad False); ValueError listing the valid names."""
    table = parts(model)
    for name in names:
        if name not in table:
            raise ValueError(f"--freeze: unknown part {name!r}; valid parts: {', '.join(table)}")
        for p in table[name]:
            p.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def trainable_optimizer(model, lr):
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("--freeze: every part is frozen, nothing is left to train")
    return torch.optim.Adam(params, lr=lr)
