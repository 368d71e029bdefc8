"""The roofline benchmark's byte count: an operator reads its inputs and writes its outputs;
a view moves nothing; an in-place update reads and writes its tensor."""

import torch

from benchmarks.bench_flops import ByteCounter


def test_bytes_of_known_operators():
    a, b = torch.ones(1000), torch.ones(1000)
    with ByteCounter() as counter:
        c = a + b  # reads 2 × 4000 bytes, writes 4000
    assert counter.bytes == 12_000
    with ByteCounter() as counter:
        c.view(10, 100).t()  # views: no traffic
    assert counter.bytes == 0
    with ByteCounter() as counter:
        c.mul_(2.0)  # reads and writes c
    assert counter.bytes == 8_000
    x, w = torch.ones(5, 3), torch.ones(4, 3)
    with ByteCounter() as counter:
        x @ w.T  # the weight is read every time it is used
        x @ w.T
    assert counter.bytes == 2 * 4 * (15 + 12 + 20)
    with ByteCounter() as counter:
        torch.zeros(10)  # a new tensor is written
    assert counter.bytes == 40
