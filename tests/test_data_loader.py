"""DeviceLoader: epoch order, resume mid-epoch, data-parallel sharding."""

from __future__ import annotations

import pytest
import torch

from convzoo.data import ArrayDataset, Augment, DeviceLoader, ShardSampler, epoch_order
from convzoo.errors import ConfigError


def toy(n: int = 50) -> ArrayDataset:
    """Image i is filled with i % 256 and labelled i, so a batch tells which samples it holds."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 12, 12), dtype=torch.uint8, generator=g)
    return ArrayDataset(images, torch.arange(n), [str(i) for i in range(n)], "toy")


AUG = Augment(size=16, pad_crop=2, flip=True, mean=(0.5,), std=(0.25,))


def test_epoch_covers_every_sample_once_and_order_depends_on_seed_and_epoch():
    ds = toy()
    loader = DeviceLoader(ds, 8, augment=AUG, seed=3)
    labels = torch.cat([y for _, y in loader])
    assert sorted(labels.tolist()) == list(range(50))
    assert len(loader) == 7 and loader.state_dict() == {"epoch": 1, "position": 0, "seed": 3}
    second = torch.cat([y for _, y in loader])  # the loader moved on to epoch 1 by itself
    assert not torch.equal(labels, second)
    assert torch.equal(labels, epoch_order(50, 3, 0))  # a pure function of (seed, epoch)
    assert torch.equal(second, epoch_order(50, 3, 1))
    g = torch.Generator().manual_seed(3 * 1000003 + 1)
    assert torch.equal(second, torch.randperm(50, generator=g))


def test_batches_are_augmented_floats():
    loader = DeviceLoader(toy(), 8, augment=AUG, channels_last=True)
    x, y = next(iter(loader))
    assert x.shape == (8, 1, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.is_contiguous(memory_format=torch.channels_last)
    plain, _ = next(iter(DeviceLoader(toy(), 8, shuffle=False)))
    assert float(plain.min()) >= 0 and float(plain.max()) <= 1
    assert torch.equal(plain, toy().images[:8].float() / 255)


def test_resume_mid_epoch_gives_the_same_batches():
    ds = toy()
    full = DeviceLoader(ds, 8, augment=AUG, seed=7)
    full.set_epoch(2)
    expected = list(full)
    first = DeviceLoader(ds, 8, augment=AUG, seed=7)
    first.set_epoch(2)
    it = iter(first)
    for _ in range(3):
        next(it)
    state = first.state_dict()
    assert state == {"epoch": 2, "position": 3, "seed": 7}
    assert all(type(v) is int for v in state.values())
    resumed = DeviceLoader(ds, 8, augment=AUG, seed=0)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # a trainer re-announcing the current epoch does not rewind it
    rest = list(resumed)
    assert len(rest) == len(expected) - 3
    for (xa, ya), (xb, yb) in zip(rest, expected[3:]):
        assert torch.equal(ya, yb) and torch.equal(xa, xb)
    assert resumed.state_dict()["epoch"] == 3
    with pytest.raises(ConfigError):
        resumed.load_state_dict({"epoch": 0, "position": 99, "seed": 7})


@pytest.mark.parametrize("n,drop_last", [(64, False), (50, False), (50, True), (53, False)])
def test_two_ranks_see_what_one_process_with_twice_the_batch_sees(n, drop_last):
    ds = toy(n)
    one = list(DeviceLoader(ds, 16, augment=AUG, seed=5, drop_last=drop_last))
    r0 = DeviceLoader(ds, 8, augment=AUG, seed=5, rank=0, world_size=2, drop_last=drop_last)
    r1 = DeviceLoader(ds, 8, augment=AUG, seed=5, rank=1, world_size=2, drop_last=drop_last)
    assert len(r0) == len(r1) == len(one)
    for (x, y), (x0, y0), (x1, y1) in zip(one, r0, r1):
        assert torch.equal(torch.cat([y0, y1]), y)
        assert torch.equal(torch.cat([x0, x1]), x)  # the same augmentation draws too


def test_shard_remainder_smaller_than_world_size():
    ds = toy(33)  # 32 + 1: the last global batch has one sample for 2 ranks
    train = DeviceLoader(ds, 16, rank=1, world_size=2)
    assert len(train) == 1  # training drops it: no rank may get an empty batch
    evaluation = [DeviceLoader(ds, 16, rank=r, world_size=2, shuffle=False) for r in (0, 1)]
    labels = torch.cat([y for ld in evaluation for _, y in ld])
    assert sorted(labels.tolist()) == list(range(33))  # evaluation counts every sample once


def test_dataset_shards_and_subset():
    ds = toy(11)
    parts = [ds.shard(r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [4, 4, 3]
    assert torch.equal(torch.cat([p.labels for p in parts]), ds.labels)
    assert ds.subset(4).labels.tolist() == [0, 1, 2, 3] and len(ds.subset(99)) == 11
    with pytest.raises(ConfigError):
        ds.shard(3, 3)


def test_set_epoch_and_batch_access():
    loader = DeviceLoader(toy(), 10, augment=AUG, seed=1)
    x3, y3 = loader.batch(4, 3)
    loader.set_epoch(4)
    batches = list(loader)
    assert torch.equal(batches[3][0], x3) and torch.equal(batches[3][1], y3)
    with pytest.raises(ConfigError):
        DeviceLoader(toy(), 0)
    with pytest.raises(ConfigError):
        DeviceLoader(toy(), 4, rank=2, world_size=2)


def test_folder_sampler_follows_the_same_order():
    sampler = ShardSampler(50, 8, shuffle=True, seed=3)
    flat = [i for b in sampler for i in b]
    assert flat == epoch_order(50, 3, 0).tolist()
    sampler.set_epoch(1)
    sampler.start = 2
    assert len(sampler) == 5 and next(iter(sampler)) == epoch_order(50, 3, 1)[16:24].tolist()


def test_each_batch_and_epoch_gets_its_own_augmentation():
    same = ArrayDataset(torch.randint(0, 256, (1, 1, 12, 12), dtype=torch.uint8).repeat(32, 1, 1, 1),
                        torch.zeros(32, dtype=torch.long), ["a"], "same")  # fmt: skip
    loader = DeviceLoader(same, 16, augment=AUG, shuffle=False)
    (a, _), (b, _) = list(loader)
    (c, _), _ = list(loader)  # epoch 1
    assert not torch.equal(a, b) and not torch.equal(a, c)
