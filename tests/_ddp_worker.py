"""One rank of tests/test_ddp.py, started as torchrun starts one (RANK, WORLD_SIZE, MASTER_ADDR
and MASTER_PORT in the environment): a model with a fastrnn LSTM under DistributedDataParallel
(gloo) trains STEPS steps on this rank's share of a fixed batch; the first step's gradients and
the final parameters go to OUT/rank<r>.pt. Without a process group (single=True) it trains the
same model on the whole batch, for comparison."""
import os
import sys

import torch

import fastrnn

STEPS = 3


class Tagger(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = fastrnn.LSTM(3, 8, num_layers=2, bidirectional=True)
        self.head = torch.nn.Linear(16, 2)

    def forward(self, x):  # x [T,B,3] -> [T,B,2]
        return self.head(self.rnn(x)[0])


def model():
    torch.manual_seed(0)
    return Tagger().double()


def batch():
    """x [T=7, B=4, I=3] and targets [7, 4, 2]."""
    g = torch.Generator().manual_seed(1)
    return (torch.randn(7, 4, 3, generator=g, dtype=torch.float64),
            torch.randn(7, 4, 2, generator=g, dtype=torch.float64))


def train(m, x, target):
    """STEPS steps of SGD on the mean squared error; the first step's gradients."""
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    first = None
    for _ in range(STEPS):
        opt.zero_grad()
        (m(x) - target).square().mean().backward()
        if first is None:
            first = [p.grad.clone() for p in m.parameters()]
        opt.step()
    return first


def main(out):
    import torch.distributed as dist
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    m = torch.nn.parallel.DistributedDataParallel(model())
    x, target = (t.chunk(world, dim=1)[rank] for t in batch())  # equal shares: the mean of the
    grads = train(m, x, target)                                  # ranks' means is the batch's
    torch.save({"grads": grads, "params": [p.detach() for p in m.parameters()]},
               os.path.join(out, f"rank{rank}.pt"))
    dist.barrier()  # neither rank tears down its gloo connections while the other still uses them
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
