"""Property tests: every backend against the float64 reference on random shapes and lengths (one
layer, the functional API), and the modules against torch.nn in float64 on random layer counts,
directions and layouts — 200 examples of each per backend, derandomised so CI sees the same."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastrnn
from _cases import GATES, Case, rel_err

BACKENDS = [b for b in ("native", "numba", "eager") if b in fastrnn.backends()]
PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def layer_cases(draw):
    T, B = draw(st.integers(1, 12)), draw(st.integers(1, 5))
    ragged = draw(st.booleans())
    lengths = [draw(st.integers(0, T)) for _ in range(B)] if ragged else None
    return Case(draw(st.sampled_from(sorted(GATES))), T=T, B=B, I=draw(st.integers(1, 6)),
                H=draw(st.integers(1, 20)), lengths=lengths, bias=draw(st.booleans()),
                seed=draw(st.integers(0, 2**16)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_matches_the_reference(backend):
    @PROPERTY
    @given(layer_cases())
    def check(c):
        ref, got = c.run_reference(), c.run_fastrnn(backend, torch.float64)
        for k in ref:
            assert rel_err(got[k], ref[k]) <= 1e-10, (k, c)

    check()


@st.composite
def module_configs(draw):
    mode = draw(st.sampled_from(["LSTM", "GRU", "RNN"]))
    kw = dict(num_layers=draw(st.integers(1, 3)), bidirectional=draw(st.booleans()),
              batch_first=draw(st.booleans()), bias=draw(st.booleans()))
    if mode == "RNN":
        kw["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    T, B, I, H = (draw(st.integers(1, 8)), draw(st.integers(1, 4)), draw(st.integers(1, 5)),
                  draw(st.integers(1, 12)))
    return mode, kw, T, B, I, H, draw(st.integers(0, 2**16))


@pytest.mark.parametrize("backend", BACKENDS)
def test_modules_match_torch_nn(backend):
    @PROPERTY
    @given(module_configs())
    def check(config):
        mode, kw, T, B, I, H, seed = config
        torch.manual_seed(seed)
        nn = getattr(torch.nn, mode)(I, H, **kw).double()
        fast = getattr(fastrnn, mode)(I, H, backend=backend, **kw).double()
        fast.load_state_dict(nn.state_dict())
        x = torch.randn(B, T, I) if kw["batch_first"] else torch.randn(T, B, I)
        outs = []
        for m in (nn, fast):
            xs = x.double().requires_grad_(True)
            y, h = m(xs)
            h = h[0] if isinstance(h, tuple) else h
            grads = torch.autograd.grad((y.sin().sum() + h.cos().sum()), [xs, *m.parameters()])
            outs.append([y, h, *grads])
        for a, b in zip(*outs):
            assert rel_err(b.detach().numpy(), a.detach().numpy()) <= 1e-10, config

    check()
