"""fastrnn under DistributedDataParallel: two CPU processes (gloo), started as torchrun starts
them, each on half the batch; their averaged gradients equal the single-process gradients of
the whole batch, and the parameters stay identical on both ranks over several steps."""
import os
import pathlib
import socket
import subprocess
import sys

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _ddp_worker as worker  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.distributed.is_available()
                                or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is not available here")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_gradients_equal_full_batch_gradients(tmp_path):
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               WORLD_SIZE="2", OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, worker.__file__, str(tmp_path)],
                              env=dict(env, RANK=str(r)), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in range(2)]
    try:
        logs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:  # a hung rank must not outlive the test
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    m = worker.model()
    grads = worker.train(m, *worker.batch())
    for got in ranks:
        for g, ref in zip(got["grads"], grads):
            assert torch.allclose(g, ref, rtol=1e-10, atol=1e-12)
    for a, b, ref in zip(ranks[0]["params"], ranks[1]["params"], m.parameters()):
        assert torch.equal(a, b)
        assert torch.allclose(a, ref.detach(), rtol=1e-10, atol=1e-12)
