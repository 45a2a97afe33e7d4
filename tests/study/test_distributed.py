"""mirl.study.distributed: one process (no process group) and two gloo processes started the torchrun way."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as td
import torch.multiprocessing as mp

from mirl.errors import MirlError
from mirl.study.distributed import DistInfo, _assert_same_across_ranks, broadcast_mask, init_distributed


@pytest.mark.parametrize("rank, world, main, enabled", [(0, 1, True, False), (0, 4, True, True), (3, 4, False, True)])
def test_dist_info_says_who_writes_and_whether_ranks_talk(rank: int, world: int, main: bool, enabled: bool) -> None:
    info = DistInfo(rank=rank, world_size=world)
    assert (info.is_main, info.enabled) == (main, enabled)


@pytest.mark.parametrize("world", [None, "1", "0"])
def test_without_torchrun_everything_is_one_process_and_no_group_is_joined(monkeypatch: pytest.MonkeyPatch,
                                                                            world: str | None) -> None:
    if world is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", world)
    info = init_distributed()
    assert info == DistInfo(rank=0, world_size=1) and info.is_main and not info.enabled
    assert not td.is_initialized()
    info.barrier()  # nothing to wait for: no process group is needed


def test_one_process_keeps_its_own_mask() -> None:
    mask = {"b.weight": torch.tensor([True, False]), "a.weight": torch.zeros(2, 3, dtype=torch.bool)}
    out = broadcast_mask(mask, DistInfo(), torch.device("cpu"))
    assert out is mask and list(out) == ["b.weight", "a.weight"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, out: str) -> None:
    """One torchrun-like process: env settings, init_distributed, rank 1 holds another mask."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist = init_distributed()
    g = torch.Generator().manual_seed(100 + rank)  # every rank computes a different mask
    mask = {"z.weight": torch.rand(5, 4, generator=g) < 0.5, "a.weight": torch.rand(7, generator=g) < 0.5}
    got = broadcast_mask(mask, dist, torch.device("cpu"))
    refused = []
    # rank 1 holds: every bit flipped; the same count at other positions whose index sums agree
    swapped = torch.tensor([True, False, False, True]) if rank == 0 else torch.tensor([False, True, True, False])
    for tampered in ({n: (m if rank == 0 else ~m) for n, m in got.items()}, {"a.weight": swapped}):
        try:
            _assert_same_across_ranks(tampered, torch.device("cpu"))
            refused.append("")
        except MirlError as exc:
            refused.append(str(exc))
    dist.barrier()
    torch.save({"info": (dist.rank, dist.world_size, dist.is_main), "sent": mask, "got": got, "refused": refused},
               Path(out) / f"rank{rank}.pt")
    td.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """What each of two spawned gloo processes saw."""
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(_rank_main, args=(_free_port(), str(out)), nprocs=2, join=True)
    return tuple(torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))  # type: ignore[return-value]


def test_two_ranks_end_with_rank_0s_mask_and_a_flipped_mask_is_caught(two_ranks: tuple[dict, dict]) -> None:
    r0, r1 = two_ranks
    assert r0["info"] == (0, 2, True) and r1["info"] == (1, 2, False)
    assert not torch.equal(r0["sent"]["z.weight"], r1["sent"]["z.weight"])
    for result in (r0, r1):
        assert list(result["got"]) == ["z.weight", "a.weight"]  # the caller's order, not the broadcast's
        for name, mask in result["got"].items():
            assert mask.dtype == torch.bool and mask.device.type == "cpu"
            assert torch.equal(mask, r0["sent"][name]), name
        assert "ranks hold different masks" in result["refused"][0] and "report it" in result["refused"][0]


def test_a_mask_with_the_same_count_at_other_positions_is_caught(two_ranks: tuple[dict, dict]) -> None:
    """``_assert_same_across_ranks`` promises to fail loudly if any rank holds a different mask."""
    assert all("ranks hold different masks" in result["refused"][1] for result in two_ranks)
